/*
 * threadsrv - the thread-per-connection server shared by the thread,
 * procpool and isolate models, which differ only in who computes.
 *
 *	main:    accept -> spawn a thread -> accept ...
 *	thread:  ops->serve(fd) until the client leaves, then close fd
 *
 * A connection beyond --max-conns, or one no thread can be made for, gets
 * "ERR server busy" and is closed. On a stop the listener is shut, every
 * connection answers what it has read (see serve.h), and threadsrv_run()
 * returns once the last connection thread is done.
 */
#ifndef FIBD_CORE_THREADSRV_H
#define FIBD_CORE_THREADSRV_H

#include "server.h"

/* Naive fib recursion needs little stack; GMP's temporaries go to the heap. */
#define THREADSRV_STACK_SIZE (256 * 1024)

struct threadsrv_ops {
	/*
	 * Serves one connection on its own thread, usually through
	 * serve_blocking(). Must not close fd: threadsrv does, afterwards.
	 */
	void (*serve)(int fd, const struct server_cfg *cfg, void *ctx);
	void *ctx; /* passed to serve, shared by every connection */
};

/*
 * Listens on cfg->host:port and serves until a stop. Returns 0 after a
 * stop, or a negative errno when it cannot listen.
 */
int threadsrv_run(const struct server_cfg *cfg,
		  const struct threadsrv_ops *ops);

#endif
