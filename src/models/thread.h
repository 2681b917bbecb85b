/*
 * thread - the talk's thread_server loop, for thread and for the models the
 * talk builds on it: procpool (plus a pool of processes) and isolate (plus
 * a private worker behind a channel), which differ only in who computes.
 */
#ifndef FIBD_MODELS_THREAD_H
#define FIBD_MODELS_THREAD_H

#include "../core/server.h"

/* Naive fib recursion needs little stack; GMP's temporaries go to the heap. */
#define THREAD_STACK_SIZE (256 * 1024)

struct thread_ops {
	/*
	 * Serves one connection on its own thread, usually through
	 * serve_blocking(). Must not close fd: the loop does, afterwards.
	 */
	void (*serve)(int fd, const struct server_cfg *cfg, void *ctx);
	void *ctx; /* passed to serve, shared by every connection */
};

/*
 * Listens on cfg->host:port and serves until a stop: accept, spawn a
 * thread that runs ops->serve(), accept the next. A connection beyond
 * --max-conns, or one no thread can be made for, gets "ERR server busy"
 * and is closed. On a stop the clients already in the accept queue are
 * taken too, every connection answers what it has read (serve.h), and the
 * call returns 0 once the last connection thread is done; a negative
 * errno when it cannot listen.
 */
int thread_serve(const struct server_cfg *cfg, const struct thread_ops *ops);

#endif
