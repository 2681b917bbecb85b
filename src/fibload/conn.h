/*
 * conn - one client connection: a small state machine driven by its
 * worker's epoll loop.
 *
 * Requests in flight sit in a ring (oldest first), because replies come
 * back in request order. Each reply line is checked against the exact
 * reply of the request it answers.
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

#include "worker.h"

/* A request in flight. */
struct fl_slot {
	uint64_t intended; /* when it was due (== sent in a closed loop) */
	uint64_t sent;	   /* when it was queued for writing */
	uint32_t item;	   /* which fl_work item: its expected reply */
	uint32_t ticket;   /* 1 when it is one of the -n measured requests */
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
	uint32_t events;	  /* epoll events registered */
	uint64_t since;		  /* CONNECTING: when connect() started */
	uint64_t retry_at;	  /* CLOSED: when to reconnect */
	uint64_t failing;	  /* first failure with no good reply since */
	uint64_t rng;		  /* xorshift state for --mix */
	struct fl_slot *ring;	  /* requests in flight, -P of them at most */
	unsigned head, inflight;
	char *out; /* request bytes not yet written: out[out_off..out_len) */
	size_t out_off, out_len;
	char *carry; /* a partial reply line kept between reads */
	size_t carry_len;
	uint64_t seq;  /* --rate: requests scheduled so far */
	uint64_t due;  /* --rate: when request seq is due */
	int exhausted; /* -n: no ticket left for this connection */
};

/* Allocates c's buffers for worker w. Returns 0 or -ENOMEM. */
int fl_conn_init(struct fl_conn *c, struct fl_worker *w, unsigned idx);

/* Closes the socket and frees the buffers. */
void fl_conn_release(struct fl_conn *c);

/* Starts a non-blocking connect (CLOSED -> CONNECTING or READY). */
void fl_conn_connect(struct fl_worker *w, struct fl_conn *c, uint64_t now);

/* Handles epoll events for c. */
void fl_conn_event(struct fl_worker *w, struct fl_conn *c, uint32_t events);

/* Queues the requests due at now and writes them (READY only): a whole
 * -P batch when none is in flight (closed loop), or each request whose
 * intended time has come (--rate). */
void fl_conn_fill(struct fl_worker *w, struct fl_conn *c, uint64_t now);

/*
 * Timeouts and reconnects: fails c when its connect or oldest request is
 * older than --timeout, reconnects it when its pause is over. Returns when
 * c next needs a look (UINT64_MAX: not until something happens).
 */
uint64_t fl_conn_scan(struct fl_worker *w, struct fl_conn *c, uint64_t now);

/* Between conn.c and xfer.c. */

/* Registers (or changes) the epoll events c waits for. 0 or -errno. */
int fl_conn_watch(struct fl_worker *w, struct fl_conn *c, uint32_t events);

/* Counts an error of kind (a timeout once per request in flight), closes
 * c, and schedules a reconnect, or gives c up (CONN_DEAD). */
void fl_conn_fail(struct fl_worker *w, struct fl_conn *c, enum fl_err kind,
		  uint64_t now);

/* Writes what is queued. Returns 0, or -1 when c failed. */
int fl_conn_flush(struct fl_worker *w, struct fl_conn *c);

/* Reads and checks what has arrived, then sends what is next. */
void fl_conn_read(struct fl_worker *w, struct fl_conn *c);

/* At the end of the run: requests still unanswered after --timeout are
 * counted as timeouts (the others were simply still in flight). */
void fl_conn_finish(struct fl_worker *w, struct fl_conn *c, uint64_t now);

#endif
