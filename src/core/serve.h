/*
 * serve - the blocking connection loop shared by the blocking models
 * (single, thread, procpool, isolate, many), and the registry of live
 * connections that lets a stop wake them.
 *
 * The loop reads, frames every complete line, asks the model's compute hook
 * for each n (or computes inline), and writes the replies in request order,
 * batched: a pipelined burst costs one write. Output is flushed before it
 * passes SERVE_OUT_FLUSH bytes, so memory per connection stays bounded
 * whatever the client sends; a client that does not read blocks only its
 * own thread. With --framing read, each read (at most max_line bytes) is
 * one request instead of a line. A connection whose first bytes open an
 * HTTP request is served as HTTP/1.1 by the same loop (src/core/http.h),
 * whatever the framing: each request is decided there, computed through
 * the same hook, and its response written in order.
 */
#ifndef FIBD_CORE_SERVE_H
#define FIBD_CORE_SERVE_H

#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "server.h"

#define SERVE_READ_CHUNK 16384	    /* bytes asked of each read() */
#define SERVE_OUT_FLUSH	 65536	    /* write out once this much is buffered */
#define SERVE_LINGER_MAX (1u << 20) /* input dropped before a polite close */
#define SERVE_LINGER_MS	 1000	    /* how long a polite close waits for EOF */

/*
 * Who computes. compute(ctx, n, r) must fill r exactly as proto_compute()
 * would, or with an error line (PROTO_INTERNAL) when it cannot.
 * A NULL hook means "compute inline on this thread".
 */
struct serve_hook {
	void (*compute)(void *ctx, const struct proto_limits *lim, uint64_t n,
			struct reply *r);
	void *ctx;
};

/*
 * How the loop moves bytes: plain blocking calls for threads and processes,
 * or calls that park a coroutine instead of its thread (the coro model):
 * the same loop reads the same either way.
 *
 * read() returns bytes read, 0 at EOF, or -errno; with timeout_ms > 0 it
 * fails with -EAGAIN once that long passed with nothing to read.
 * write() writes all of buf and returns 0, or -errno.
 * wait(), if set, returns 0 once fd is readable (or at EOF, or an error to
 * read), or -EAGAIN as read() would, or -errno. The loop calls it before
 * it reads into an empty input, so that a connection waiting for its next
 * request holds no input buffer: 10 000 parked coroutines held 10 000 of
 * them, about a fifth of coro's peak RSS at 10 000 connections.
 */
struct serve_io {
	ssize_t (*read)(void *ctx, int fd, void *buf, size_t len,
			unsigned timeout_ms);
	int (*write)(void *ctx, int fd, const void *buf, size_t len);
	int (*wait)(void *ctx, int fd, unsigned timeout_ms);
	void *ctx;
};

/* serve_blocking() over the given I/O calls. */
int serve_conn(int fd, const struct server_cfg *cfg,
	       const struct serve_hook *hook, const struct serve_io *io);

/*
 * Serves one connection until the client closes its side (every reply is
 * written first), a read or write fails, the idle timeout passes, or a line
 * is too long (its error is written first). Does not close fd.
 * Returns 0 when the client left cleanly, or a negative errno.
 */
int serve_blocking(int fd, const struct server_cfg *cfg,
		   const struct serve_hook *hook);

/*
 * A serial server sheds a client that stalls this long while others wait
 * in its listen backlog: a write that makes no progress (the client does
 * not read its replies), or a request line left unfinished.
 */
#define SERVE_STALL_MS 1000

/*
 * The one_server loop: accept a client, serve it to the end, accept the
 * next, until a stop. Single-threaded: the client being served is watched
 * (stop_watch()) so that a stop wakes its read. Used by single and by each
 * process of many.
 *
 * A well-behaved client keeps the server as long as it likes; the others
 * wait. But while it serves, the loop also watches the listener, and once
 * someone waits there it sheds the client being served if that client
 * stalls for SERVE_STALL_MS (see above), or, when idle_shed_ms is not 0,
 * sits idle between requests for idle_shed_ms. A shed client is closed
 * (one shed mid-line gets "ERR server busy" first) and the next one is
 * accepted. Without anyone waiting only --idle-timeout applies.
 * Returns 0.
 */
int serve_serial(int lfd, const struct server_cfg *cfg, unsigned idle_shed_ms);

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
