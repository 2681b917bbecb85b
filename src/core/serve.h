/*
 * serve - the blocking driver of the request core (src/core/evconn.h), for
 * the models that give each connection a thread, a process or a coroutine
 * (single, thread, procpool, isolate, many; coro and async, whose I/O parks
 * a coroutine instead of its thread); their accept loop's accept
 * (serve_accept()); and the registry of live connections that lets a stop
 * wake them. The models' control flow is their own: src/models/single.c,
 * thread.c.
 *
 * The driver reads into the core's input, lets the core answer every whole
 * request (framing, HTTP, errors, limits, metrics: all the core's), and
 * writes what the core queued, in one write per read: a pipelined burst
 * costs one write. When the core's output cap stops it, the driver writes
 * and lets it take the rest, so memory per connection stays bounded
 * whatever the client sends; a client that does not read blocks only its
 * own thread. What is the driver's: the reads and writes, the clocks (the
 * idle timeout, and the header clock the core tells it about), and the
 * polite close's waiting.
 */
#ifndef FIBD_CORE_SERVE_H
#define FIBD_CORE_SERVE_H

#include <stdint.h>
#include <sys/types.h>

#include "evconn.h"
#include "proto.h"
#include "server.h"

/*
 * Who computes: the core's compute callback (evconn_compute_fn). compute
 * must fill r exactly as proto_compute() would, or with an error line
 * (PROTO_INTERNAL) when it cannot. A NULL hook means "compute inline on
 * this thread".
 */
struct serve_hook {
	evconn_compute_fn *compute;
	void *ctx;
};

/*
 * How the driver moves bytes: plain blocking calls for threads and processes,
 * or calls that park a coroutine instead of its thread (coro, async):
 * the same driver reads the same either way.
 *
 * read() returns bytes read, 0 at EOF, or -errno; with timeout_ms > 0 it
 * fails with -EAGAIN once that long passed with nothing to read. It may
 * fail with -EBUSY to shed the client (a serial server does, when others
 * wait): the driver then tells a client whose request is unfinished that
 * the server is busy (see serve_conn()).
 * write() writes all of buf and returns 0, or -errno.
 * wait(), if set, returns 0 once fd is readable (or at EOF, or an error to
 * read), or -EAGAIN as read() would, or -errno. The driver calls it before
 * it reads into an empty input, so that a connection waiting for its next
 * request holds no input buffer: 10 000 parked coroutines held 10 000 of
 * them, about a fifth of coro's peak RSS at 10 000 connections.
 * unfinished(), if set, hears since when (a serve_now_ms() time) the input
 * has held the front of a request that has not arrived whole, an HTTP head
 * without its blank line or a line without its newline, or 0 once none is.
 */
struct serve_io {
	ssize_t (*read)(void *ctx, int fd, void *buf, size_t len,
			unsigned timeout_ms);
	int (*write)(void *ctx, int fd, const void *buf, size_t len);
	int (*wait)(void *ctx, int fd, unsigned timeout_ms);
	void *ctx;
	void (*unfinished)(void *ctx, uint64_t since_ms);
};

/*
 * A request must arrive whole within --header-timeout of its first byte
 * (or, with --header-timeout 0, within --idle-timeout). One that
 * does not gets the core's "request timed out" answer (evconn_timeout()),
 * and the connection closes. A client shed mid-request (read() said
 * -EBUSY) gets the core's "busy" answer (evconn_shed()).
 */

/*
 * serve_blocking() over the given I/O calls. Returns 0 when the client left
 * cleanly, -ETIMEDOUT when its request did not arrive in time, -EBUSY when
 * read() shed it, or another negative errno.
 */
int serve_conn(int fd, const struct server_cfg *cfg,
	       const struct serve_hook *hook, const struct serve_io *io);

/*
 * Serves one connection until the client closes its side (every reply is
 * written first), a read or write fails, the idle timeout passes, a request
 * takes too long to arrive, or a line is too long (its error is written
 * first). Does not close fd. Returns as serve_conn() does.
 */
int serve_blocking(int fd, const struct server_cfg *cfg,
		   const struct serve_hook *hook);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t serve_now_ms(void);

/*
 * Sets fd's SO_RCVTIMEO and SO_SNDTIMEO to ms (0: none): a blocking read or
 * write that waits that long fails with EAGAIN.
 */
void serve_set_timeouts(int fd, unsigned ms);

/*
 * The accept of a blocking accept loop, on a non-blocking listener: waits
 * for a client or a stop (stop_eventfd()). After a stop it still returns
 * the clients already in the listener's accept queue, so that everything
 * sent before the stop is answered (shutting the listener would reset
 * them), then -ESHUTDOWN: close the listener then. The accepted socket is
 * blocking. Returns the fd or -errno.
 */
int serve_accept(int lfd);

/*
 * The registry. serve_track() adds a connection; once a stop has begun it
 * also shuts the connection's read side at once, so nothing slips through.
 * serve_untrack() removes it, before the caller closes it.
 * serve_stop_all() shuts the read side of every tracked connection: each
 * blocked reader wakes, answers what it already read, and leaves.
 * serve_wait_idle() returns when no connection is tracked.
 * serve_tracked() is the current count (for --max-conns).
 */
void serve_track(int fd);
void serve_untrack(int fd);
void serve_stop_all(void);
void serve_wait_idle(void);
unsigned serve_tracked(void);

#endif
