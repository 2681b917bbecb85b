/*
 * evconn - the request core: one fib/1 or HTTP connection's bytes in,
 * requests out, replies back in order. It does no I/O: a driver moves the
 * bytes and keeps the clocks, and asks the core everything else.
 *
 * The drivers. The event-driven models keep many connections on one
 * thread, each its own way: src/models/reactor.c reads and writes when
 * epoll says it may, src/models/uring.c through io_uring's completions
 * (both over src/core/loop.h). The blocking driver (src/core/serve.c)
 * serves one connection per thread or coroutine. Each owns the socket and
 * moves the bytes its way.
 *
 * A request's life through the core:
 *
 *   1. In. The driver reads at most evconn_read_size() bytes into c->in
 *      (where evconn_read_room() says) and calls evconn_take().
 *   2. What it speaks. The first bytes decide, once (http_sniff()): HTTP/1.1
 *      or the line protocol (EVCONN_SNIFF until they do).
 *   3. Framing. A line ends in '\n' (proto_frame()), or with --framing read
 *      each read is one request (proto_parse_read()); an HTTP request is
 *      its head (http_next()). A line too long is answered with its ERR and
 *      ends the connection (FAILING), as does an HTTP response that says
 *      "Connection: close".
 *   4. Compute. An error or a route other than /fib/N is answered at once.
 *      fib(n) is computed: by cfg->compute, when the driver gave one (it
 *      fills the reply before it returns, from the caller's point of view:
 *      procpool and isolate ask a worker, async parks a task on a future);
 *      else inline when it is cheap or there is no pool; else in the pool,
 *      whose job comes back through evconn_job_ready(). A compute that is
 *      not cheap, on the driver's thread, waits until the replies before
 *      it are sent: the core stops as a cap stops it (evconn_take() says
 *      true), the driver sends, and takes again.
 *   5. Order. A reply that exists while nothing is ahead of it goes
 *      straight to c->out: the common case (fib(1), nothing in the pool)
 *      allocates nothing. Otherwise it waits in a slot of the reply FIFO,
 *      and bytes leave only from the FIFO's head, framed as an HTTP
 *      response on an HTTP connection.
 *   6. Out. The driver sends c->out its way, and consumes what it sent.
 *   7. The end. The client's EOF (evconn_eof()): a last line without '\n'
 *      is still a request (printf 30 | nc), unless a stop shut the read
 *      side (cfg->stopping); the front of an HTTP request is dropped.
 *      OPEN becomes DRAINING: finish every reply, then DONE. FAILING ends
 *      in the polite close: once every reply is out the driver sends FIN
 *      and drops what the client still sends (evconn_lingered()) for up to
 *      c->linger_ms, so that closing does not RST the last reply away.
 *
 * The clocks are the driver's, with the core's help: evconn_partial() says
 * a request has begun and not arrived whole (the --header-timeout clock
 * runs); when it runs out, evconn_timeout() queues
 * the one "request timed out" answer. A serial server that sheds a client
 * mid-request gives it the one "busy" answer (evconn_shed()).
 *
 * Backpressure. A connection takes new requests only while it has fewer than
 * EVCONN_SLOTS_MAX slots, fewer than cfg->jobs_max jobs in the pool, and less
 * than EVCONN_OUT_MAX reply bytes waiting (output buffer plus finished
 * slots). Otherwise it stops parsing (evconn_take() returns true) and the
 * driver stops reading, so a client that never reads costs at most about
 *   max_line + EVCONN_READ_CHUNK                       input
 *   EVCONN_OUT_MAX + (jobs_max + 1) * largest reply    output
 *   EVCONN_SLOTS_MAX * sizeof(struct evconn_slot)      bookkeeping
 * and the kernel's socket buffers hold the rest. The blocking driver writes
 * c->out whenever the cap stops the core, and takes the rest.
 *
 * Lifetime. A connection closed while jobs are in the pool (the client reset
 * it, say) becomes EVCONN_CLOSED: its descriptor and buffers are gone, and the
 * struct lives on until the last job comes back (evconn_job_ready() returns
 * it, and evconn_is_dead() then says it may be freed). A job therefore never
 * points at freed memory.
 */
#ifndef FIBD_CORE_EVCONN_H
#define FIBD_CORE_EVCONN_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "metrics.h"
#include "proto.h"
#include "tpool.h"

#define EVCONN_READ_CHUNK 16384 /* bytes asked of each read() */
#define EVCONN_OUT_MAX	  65536 /* reply bytes held before reading pauses */
#define EVCONN_SLOTS_MAX  256	/* requests in flight before reading pauses */
#define EVCONN_LINGER_MS  1000	/* how long a polite close waits for EOF */
#define EVCONN_LINGER_MAX (1u << 20) /* input dropped before a polite close */

/*
 * Requests at or below these n are computed on the loop: they cost less than
 * a pool round trip. bench/async_inline measures both (docs/models/async.md
 * has the numbers): naive fib(18) is ~5-7 us and fast fib(5000) ~4.7 us,
 * while a round trip costs the loop 2-26 us of CPU and the request 5-70 us
 * of wall time on these 2 cores.
 *
 * Inline work stalls every other connection, so one connection gets at most
 * EVCONN_INLINE_BUDGET such requests per event (about 0.5 ms); beyond it they
 * go to the pool, and its jobs cap throttles the pipeline. Requests at or
 * below the *_FREE_N levels (under 0.5 us) are not counted: a pipeline of
 * fib(1) stays on the loop, where it is cheapest.
 */
#ifndef EVCONN_INLINE_NAIVE_MAX_N /* -D...=0 sends fib(1) and up to the pool   \
				   */
#define EVCONN_INLINE_NAIVE_MAX_N 18
#endif
#define EVCONN_INLINE_FAST_MAX_N   5000
#define EVCONN_INLINE_NAIVE_FREE_N 12
#define EVCONN_INLINE_FAST_FREE_N  500
#define EVCONN_INLINE_BUDGET	   64

/*
 * A driver's own compute: fills r exactly as proto_compute() would, or with
 * an error line (PROTO_INTERNAL) when it cannot, before it returns.
 */
typedef void evconn_compute_fn(void *ctx, const struct proto_limits *lim,
			       uint64_t n, struct reply *r);

/*
 * What the connections of one driver share: one loop's, or one blocking
 * connection's own. The driver owns it. Set compute or pool, or neither.
 */
struct evconn_cfg {
	const struct proto_limits *lim;
	evconn_compute_fn *compute; /* every fib; NULL: inline or the pool */
	void *compute_ctx;
	struct tpool *pool;	/* NULL: compute everything inline */
	struct tpool_cq *cq;	/* where its jobs come back; NULL: the pool's */
	uint64_t inline_max_n;	/* n above this go to the pool */
	uint64_t inline_free_n; /* n up to this cost the loop next to nothing */
	unsigned jobs_max;	/* pool jobs in flight per connection */
	bool stopping;		/* a stop began: healthz, evconn_eof() see it */
	struct metrics_batch mb; /* the current batch of requests */
};

/*
 * Fills in inline_max_n for lim's algorithm and jobs_max from workers; no
 * compute callback, not stopping, an empty batch.
 */
void evconn_cfg_init(struct evconn_cfg *cfg, const struct proto_limits *lim,
		     struct tpool *pool, unsigned workers);

enum evconn_state {
	/* Reading requests and answering them in order. Reading pauses (no
	 * EPOLLIN) while the backpressure caps are reached. */
	EVCONN_OPEN,
	/* No more input will come (the client half-closed, or a stop shut
	 * the read side): finish every reply, then DONE. */
	EVCONN_DRAINING,
	/* The last reply is queued (a line too long, a response that
	 * closes, a timeout, a shed): once everything is written, send FIN
	 * and go to LINGER. */
	EVCONN_FAILING,
	/* FIN sent after the last reply: read and drop input until EOF,
	 * EVCONN_LINGER_MAX bytes or linger_ms, so closing does not RST the
	 * last reply away. */
	EVCONN_LINGER,
	/* Finished (or broken): the loop should evconn_close() it now. */
	EVCONN_DONE,
	/* Socket closed; the struct waits for its jobs still in the pool. */
	EVCONN_CLOSED,
};

/* One request's place in the reply order. */
struct evconn_slot {
	struct tpool_job job;	  /* first: the pool hands this back */
	struct evconn_slot *next; /* the next request to arrive */
	struct evconn *conn;
	const struct proto_limits *lim; /* read by the worker */
	uint64_t n;			/* what the worker computes */
	bool ready;			/* r holds the reply */
	struct http_resp http; /* how to frame r; status 0: a fib/1 line */
	uint64_t t0;	       /* when it went to the pool (metrics) */
	struct reply r;
};

/* What a connection speaks, decided by its first bytes (http_sniff()). */
enum evconn_mode {
	EVCONN_SNIFF, /* too few bytes yet to tell */
	EVCONN_LINE,  /* fib/1 */
	EVCONN_HTTP,  /* HTTP/1.x: each request is one slot */
};

struct evconn {
	int fd;
	enum evconn_state state;
	enum evconn_mode mode;
	struct evconn_cfg *cfg;
	struct buf in;			 /* bytes read, not yet framed */
	struct buf out;			 /* reply bytes not yet written */
	struct evconn_slot *head, *tail; /* the reply FIFO */
	unsigned nslots;		 /* slots in the FIFO */
	unsigned njobs;			 /* of which in the pool */
	size_t held;			 /* reply bytes in ready slots */
	size_t lingered;		 /* bytes dropped in LINGER */
	unsigned budget; /* inline requests left in this event */
	bool progress; /* a request arrived or bytes left; the loop clears it */
	unsigned linger_ms; /* how long the polite close waits for EOF */

	/* Owned by the loop: its epoll and timeout bookkeeping. */
	unsigned armed;	      /* epoll events now registered */
	struct evconn_tq *tq; /* the queue it is in, or NULL */
	struct evconn *tq_prev, *tq_next;
	uint64_t deadline_ms;
};

/*
 * Starts serving fd (already connected; non-blocking for an event loop).
 * Counts the connection open; evconn_close() or evconn_release() closes it.
 */
void evconn_init(struct evconn *c, int fd, struct evconn_cfg *cfg);

/*
 * The I/O-free core, for any driver.
 *
 * evconn_read_size() is how much the next read may ask for: in read
 * framing the read is the request (at most max_line), else a chunk.
 * evconn_read_room() reserves that much at the end of c->in and returns
 * where to read, or NULL without memory; the driver then adds what it read
 * to c->in.len (an io_uring loop appends its completions to c->in instead).
 *
 * evconn_take() answers every whole request buffered that the caps allow,
 * into c->out or the FIFO (and hands the rest to the pool), and counts them
 * (metrics). It returns true when a cap stopped it with requests perhaps
 * still buffered: send c->out, then take again. evconn_take_more() is the
 * same within the inline budget left from the last evconn_take().
 *
 * Once the client's EOF has come and evconn_take() left no whole request
 * behind, evconn_eof() answers a last partial line and moves OPEN to
 * DRAINING. evconn_job_ready() takes a finished pool job back: the
 * replies that order allows move to c->out, for the driver to send.
 *
 * evconn_lingered() counts n bytes dropped in the polite close; false once
 * EVCONN_LINGER_MAX were (then DONE): stop reading and close.
 *
 * evconn_release() frees the buffers and the finished slots, leaves fd
 * alone, counts the connection closed and makes it CLOSED (slots still in
 * the pool are freed when they come back).
 */
static inline size_t evconn_read_size(const struct evconn *c)
{
	/* In read framing the read is the request; HTTP frames itself. */
	return c->mode == EVCONN_HTTP
		   ? EVCONN_READ_CHUNK
		   : proto_read_max(c->cfg->lim, EVCONN_READ_CHUNK);
}

static inline char *evconn_read_room(struct evconn *c)
{
	if (buf_reserve(&c->in, evconn_read_size(c)))
		return NULL;
	return c->in.data + c->in.len;
}

bool evconn_can_take(const struct evconn *c);
bool evconn_take(struct evconn *c);
bool evconn_take_more(struct evconn *c);
void evconn_eof(struct evconn *c);
struct evconn *evconn_job_ready(struct tpool_job *job);
bool evconn_lingered(struct evconn *c, size_t n);
void evconn_release(struct evconn *c);

/*
 * Header timeout. Is part of a request buffered, waiting for the rest from
 * the client? (Not when a cap holds whole requests back: then the client
 * waits for us.) The driver starts the --header-timeout clock when this
 * becomes true or a request was taken (progress), and stops it when it
 * turns false.
 */
bool evconn_partial(const struct evconn *c);

/*
 * The request did not come whole in time: drop it, answer "HTTP/1.1 408
 * Request Timeout" (an HTTP connection, or one whose first bytes are a
 * method) or PROTO_TIMEOUT_LINE, after every reply owed before it, then
 * close politely (FAILING). Writes nothing: the driver sends c->out its
 * own way.
 */
void evconn_timeout(struct evconn *c);

/*
 * A serial server sheds the client mid-request, to serve others: as
 * evconn_timeout(), but the line is "ERR server busy", the connection is
 * counted rejected, and the polite close drops only what has arrived
 * (linger_ms 0): the server has others waiting.
 */
void evconn_shed(struct evconn *c);

/* Gives up on the connection now (an epoll error, a timeout): DONE. */
void evconn_abort(struct evconn *c);

/* Closed and no job refers to it any more: free it. */
static inline bool evconn_is_dead(const struct evconn *c)
{
	return c->state == EVCONN_CLOSED && c->njobs == 0;
}

/*
 * The only system calls the core makes on its socket, the same for every
 * driver. evconn_stop(): a stop began; shut the read side, and what was
 * read is still answered. evconn_close(): closes the socket (unless fd is
 * -1) and evconn_release()s the rest; true when the struct may be freed.
 */
void evconn_stop(struct evconn *c);
bool evconn_close(struct evconn *c);

/*
 * A timeout queue: connections ordered by deadline. Every member of one
 * queue has the same timeout, so appending keeps it sorted and every
 * operation is O(1) (libev's trick for many timers of one length).
 * timeout_ms 0 means "never": members get no deadline.
 */
struct evconn_tq {
	struct evconn *head, *tail;
	uint64_t timeout_ms;
};

/* Moves c to the tail of q with deadline now + q->timeout_ms. */
void evconn_tq_touch(struct evconn_tq *q, struct evconn *c, uint64_t now_ms);

/*
 * The header clock's timeout: --header-timeout, or --idle-timeout when that
 * is shorter (a slow request is also a silent one); 0 when there is none.
 */
static inline unsigned evconn_header_ms(unsigned header_ms, unsigned idle_ms)
{
	return header_ms && idle_ms && idle_ms < header_ms ? idle_ms
							   : header_ms;
}

/* Takes c out of its queue, if any. */
void evconn_tq_remove(struct evconn *c);

#endif
