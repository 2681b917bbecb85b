/*
 * evconn - one non-blocking fib/1 connection, driven by an event loop.
 *
 * The loop owns the socket and the epoll set; evconn owns everything else:
 * the input and output buffers, framing, the ordered reply slots, the hand-off
 * of expensive requests to a worker pool, backpressure and the polite close.
 * The loop calls evconn_on_readable()/evconn_on_writable() when epoll says
 * so and evconn_job_done() when the pool hands a job back, then asks
 * evconn_events() what to wait for next. When the state reaches EVCONN_DONE
 * the loop calls evconn_close().
 *
 * Ordering. Every request gets its place in a FIFO of reply slots in arrival
 * order; a slot is filled when its reply exists (at once for errors and cheap
 * requests, later for pool jobs) and bytes leave only from the head of the
 * FIFO. When the FIFO is empty a cheap reply skips it and goes straight to
 * the output buffer: the common IO-bound case allocates nothing.
 *
 * HTTP. A connection whose first bytes open an HTTP request (http_sniff())
 * is HTTP/1.1 for good: each request is one slot, decided by http_next(),
 * computed like a line (inline or in the pool), and its reply framed as a
 * response when it leaves the FIFO. A response that closes the connection
 * is its last: the state becomes FAILING, as after a line too long.
 *
 * Backpressure. A connection takes new requests only while it has fewer than
 * EVCONN_SLOTS_MAX slots, fewer than cfg->jobs_max jobs in the pool, and less
 * than EVCONN_OUT_MAX reply bytes waiting (output buffer plus finished
 * slots). Otherwise it stops parsing and stops reading, so a client that
 * never reads costs at most about
 *   max_line + EVCONN_READ_CHUNK                       input
 *   EVCONN_OUT_MAX + (jobs_max + 1) * largest reply    output
 *   EVCONN_SLOTS_MAX * sizeof(struct evconn_slot)      bookkeeping
 * and the kernel's socket buffers hold the rest.
 *
 * Lifetime. A connection closed while jobs are in the pool (the client reset
 * it, say) becomes EVCONN_CLOSED: its descriptor and buffers are gone, and the
 * struct lives on until the last job comes back (evconn_job_done() then says
 * it may be freed). A job therefore never points at freed memory.
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

/* What every connection of one loop shares; the loop owns it. */
struct evconn_cfg {
	const struct proto_limits *lim;
	struct tpool *pool;	/* NULL: compute everything inline */
	struct tpool_cq *cq;	/* where its jobs come back; NULL: the pool's */
	uint64_t inline_max_n;	/* n above this go to the pool */
	uint64_t inline_free_n; /* n up to this cost the loop next to nothing */
	unsigned jobs_max;	/* pool jobs in flight per connection */
	bool stopping;		/* a stop began: drop a final partial line */
	struct metrics_batch mb; /* the loop's current batch of requests */
};

/* Fills in inline_max_n for lim's algorithm and jobs_max from workers. */
void evconn_cfg_init(struct evconn_cfg *cfg, const struct proto_limits *lim,
		     struct tpool *pool, unsigned workers);

enum evconn_state {
	/* Reading requests and answering them in order. Reading pauses (no
	 * EPOLLIN) while the backpressure caps are reached. */
	EVCONN_OPEN,
	/* No more input will come (the client half-closed, or a stop shut
	 * the read side): finish every reply, then DONE. */
	EVCONN_DRAINING,
	/* A line was too long: its ERR is the last reply. Once everything
	 * is written, send FIN and go to LINGER. */
	EVCONN_FAILING,
	/* FIN sent after an error: read and drop input until EOF, a cap or
	 * EVCONN_LINGER_MS, so closing does not RST the error away. */
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

	/* Owned by the loop: its epoll and timeout bookkeeping. */
	unsigned armed;	      /* epoll events now registered */
	struct evconn_tq *tq; /* the queue it is in, or NULL */
	struct evconn *tq_prev, *tq_next;
	uint64_t deadline_ms;
};

/* Starts serving fd (non-blocking, already connected). */
void evconn_init(struct evconn *c, int fd, struct evconn_cfg *cfg);

/* EPOLLIN (or EPOLLRDHUP/EPOLLHUP): read and answer what can be answered. */
void evconn_on_readable(struct evconn *c);

/* EPOLLOUT: write what is waiting, then take buffered requests again. */
void evconn_on_writable(struct evconn *c);

/*
 * The pool finished job (a struct evconn_slot). Returns its connection; if
 * that is EVCONN_CLOSED with no jobs left (evconn_is_dead()) the caller
 * frees it, otherwise the reply is queued and written as far as order allows.
 */
struct evconn *evconn_job_done(struct tpool_job *job);

/* A stop began: shut the read side; queued input is still answered. */
void evconn_stop(struct evconn *c);

/* The epoll events to wait for: EPOLLIN, EPOLLOUT, both or none. */
unsigned evconn_events(const struct evconn *c);

/*
 * Header timeout. Is part of a request buffered, waiting for the rest from
 * the client? (Not when a cap holds whole requests back: then the client
 * waits for us.) The loop starts the --header-timeout clock when this
 * becomes true or a request was taken (progress), and stops it when it
 * turns false.
 */
bool evconn_partial(const struct evconn *c);

/*
 * The request did not come whole in time: drop it, answer "HTTP/1.1 408
 * Request Timeout" (an HTTP connection, or one whose first bytes are a
 * method) or PROTO_TIMEOUT_LINE, after every reply owed before it, then
 * close politely (FAILING). Writes nothing: the loop then sends c->out
 * its own way (evconn_on_writable(), or uconn's send).
 */
void evconn_timeout(struct evconn *c);

/* Gives up on the connection now (an epoll error, a timeout): DONE. */
void evconn_abort(struct evconn *c);

/*
 * Closes the socket and frees everything but the struct and the slots still
 * in the pool. Returns true when the struct may be freed now.
 */
bool evconn_close(struct evconn *c);

/* Closed and no job refers to it any more: free it. */
static inline bool evconn_is_dead(const struct evconn *c)
{
	return c->state == EVCONN_CLOSED && c->njobs == 0;
}

/*
 * Without I/O, for a loop that moves the bytes itself (src/core/uconn.c,
 * through io_uring): it appends what arrives to c->in, lets evconn_take()
 * answer what the caps allow into c->out (and hand the rest to the pool),
 * and sends c->out its own way. evconn_take() returns true when a cap
 * stopped it with lines perhaps still buffered. Once the client's EOF has
 * come and evconn_take() left no whole line behind, evconn_eof() answers a
 * last partial line and moves OPEN to DRAINING. evconn_job_ready() is
 * evconn_job_done() without the write: the finished replies that order
 * allows move to c->out, for the loop to send.
 */
bool evconn_can_take(const struct evconn *c);
bool evconn_take(struct evconn *c);
void evconn_eof(struct evconn *c);
struct evconn *evconn_job_ready(struct tpool_job *job);

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
