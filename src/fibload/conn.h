/*
 * conn - one client connection's protocol state: connect, the requests in
 * flight and the reply each must get, failures, reconnects and timeouts.
 * Driven by its worker's epoll loop through the functions below; it uses
 * xfer for the bytes, sched for the open loop's send times, and records
 * into the worker's stats. It never calls back into the worker: what it
 * needs of the worker is lent in struct fl_conn_ctx.
 *
 * Requests in flight sit in a ring (oldest first), because replies come
 * back in request order. Each reply line is checked against the exact
 * reply of the request it answers; an "ERR ..." reply is a wrong answer
 * whose text is kept (stats' errtexts).
 *
 * Error policy: a connection that fails (connect, read, write, timeout or a
 * malformed reply) counts the error, drops its requests in flight and
 * reconnects: at once after a read/write/timeout/protocol error, after
 * FL_RECONNECT_NS after a failed connect. A wrong answer is counted and the
 * connection goes on (the stream is still in step). A connection that keeps
 * failing for --timeout with no good reply in between is given up
 * (CONN_DEAD); once a worker has none left, it stops.
 */
#ifndef FIBLOAD_CONN_H
#define FIBLOAD_CONN_H

#include <stdint.h>

#include "sched.h"
#include "shared.h"
#include "stats.h"
#include "xfer.h"

/* Pause before reconnecting after a failed connect. */
#define FL_RECONNECT_NS (100ull * 1000000ull)

/* What a worker lends its connections. */
struct fl_conn_ctx {
	struct fl_shared *sh;
	struct fl_stats *st;
	int epfd;   /* the worker's epoll set */
	char *rbuf; /* read buffer shared by the worker's conns */
	size_t rbuf_cap;
	int running;	    /* the load has started: requests may go out */
	unsigned live;	    /* connections not given up */
	uint64_t next_scan; /* lowered when a reconnect is scheduled */
	uint64_t next_due;  /* --rate: lowered to the next request due */
};

/* A request in flight. */
struct fl_slot {
	uint64_t intended; /* when it was due (== sent in a closed loop) */
	uint64_t sent;	   /* when it was queued for writing */
	uint32_t item;	   /* which fl_work item: its expected reply */
	uint32_t ticket;   /* 1 when it is one of the -r measured requests */
};

enum fl_conn_state {
	CONN_CLOSED,	 /* no socket: (re)connect at retry_at */
	CONN_CONNECTING, /* non-blocking connect() under way: wait EPOLLOUT */
	CONN_READY,	 /* connected: requests go out, replies come in */
	CONN_DEAD,	 /* given up: kept failing for --timeout */
};

struct fl_conn {
	int fd;			  /* -1 unless CONNECTING or READY */
	enum fl_conn_state state; /* see above */
	unsigned idx;		  /* global index, 0..conns-1 */
	unsigned port;		  /* index into --port's list: idx % nports */
	uint32_t events;	  /* epoll events registered */
	uint64_t since;		  /* CONNECTING: when connect() started */
	uint64_t retry_at;	  /* CLOSED: when to reconnect */
	uint64_t failing;	  /* first failure with no good reply since */
	uint64_t rng;		  /* xorshift state for --mix */
	struct fl_slot *ring;	  /* requests in flight, -P of them at most */
	unsigned head, inflight;
	struct fl_xfer x;      /* the bytes going out and coming in */
	struct fl_sched sched; /* --rate: when the next request is due */
	uint64_t first_sent;   /* when its first request went out (0: none) */
	uint64_t last_reply;   /* when its last reply line came (0: none) */
	int exhausted;	       /* -r: no ticket left for this connection */
	int ever_ready;	       /* it connected at least once */
};

/* Allocates c's buffers. Returns 0 or -ENOMEM; release in every case. */
int fl_conn_init(struct fl_conn *c, const struct fl_shared *sh, unsigned idx);

/* Closes the socket and frees the buffers. */
void fl_conn_release(struct fl_conn *c);

/* Starts a non-blocking connect (CLOSED -> CONNECTING or READY). */
void fl_conn_connect(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now);

/* The load starts at now: the open loop's schedule, the first requests. */
void fl_conn_start(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now);

/* Handles epoll events for c. */
void fl_conn_event(struct fl_conn_ctx *x, struct fl_conn *c, uint32_t events);

/* Queues the requests due at now and writes them (READY only): a whole
 * -P batch when none is in flight (closed loop), or each request whose
 * intended time has come (--rate). */
void fl_conn_fill(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now);

/*
 * Timeouts and reconnects: fails c when its connect or oldest request is
 * older than --timeout, reconnects it when its pause is over. Returns when
 * c next needs a look (UINT64_MAX: not until something happens).
 */
uint64_t fl_conn_scan(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now);

/* At the end of the run: requests still unanswered after --timeout are
 * counted as timeouts (the others were simply still in flight). */
void fl_conn_finish(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now);

/*
 * After the run: whether c got no reply when it should have. It never
 * connected; or it asked and got nothing while the server answered others
 * after it asked (last_reply: the run's last reply on any connection) or
 * answered nobody. A connection that sent nothing, or whose first request
 * went out after the server's last reply (at the very end of the run), is
 * not counted.
 */
int fl_conn_unanswered(const struct fl_conn *c, uint64_t last_reply);

#endif
