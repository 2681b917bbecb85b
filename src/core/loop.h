/*
 * loop - the event loop of the event-driven models (reactor, uring, async):
 * what every such loop does whatever tells it that something happened.
 *
 * A loop owns a non-blocking listener, its connections' timeouts, the
 * connections it turns away, a stop and its grace period, and with a
 * worker pool the completion queue its jobs come back on. Each turn it
 * waits (epoll_wait() or io_uring_enter(), the backend's) until something
 * happens or the nearest deadline, hands what happened to the model's
 * callbacks (struct loop_ops), then ends the turn in loop_turn_end(): the
 * expired deadlines, the refused connections whose time is up, the
 * model's tick and turn, the accept back-off.
 *
 * Written once, here:
 *  - accepting: batches, shedding when out of descriptors (evaccept.h),
 *    and the back-off when even that fails;
 *  - --max-conns: a connection beyond it waits (without blocking the loop)
 *    up to EVACCEPT_BUSY_WAIT_MS for its first bytes, in the backend's set,
 *    then is told busy in its own protocol;
 *  - deadlines: three timeout queues of evconns (idle, header, linger),
 *    the header clock (loop_clock()), and an optional periodic tick for a
 *    model whose deadlines are not an evconn's (async's tasks);
 *  - a stop: the backlog is taken, the listener closed, the refused
 *    connections answered, every open connection's read side shut, and
 *    clients that do not read their replies get LOOP_STOP_GRACE_MS;
 *  - pool completions: every finished job goes to the model's job().
 *
 * The backend. Readiness (epoll, src/core/loop_epoll.c) and completion
 * (io_uring, src/core/loop_uring.c) differ in what the model does with a
 * connection: with epoll the model reads and writes when told it may; with
 * io_uring it submits a multishot recv once and a send per batch of
 * replies, from provided buffers, and everything goes in one
 * io_uring_enter() per turn. A backend interface strict enough to hide that
 * (a "watch fd for reading" call) would cost the io_uring model its point.
 * So the bookkeeping above is shared, the backend fills in the four calls
 * of struct loop_backend that the bookkeeping needs, and each backend's
 * header adds the operations its models use (loop_epoll_watch();
 * loop_uring_sqe(), loop_uring_cancel(), the buffer ring).
 */
#ifndef FIBD_CORE_LOOP_H
#define FIBD_CORE_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "evaccept.h"
#include "evconn.h"
#include "server.h"
#include "tpool.h"

#define LOOP_EVENTS	  64 /* events taken per wake-up */
#define LOOP_ACCEPT_BATCH 64 /* accepts per listener wake-up: fairness */
/* At a stop, a client that does not read its replies gets this long. */
#define LOOP_STOP_GRACE_MS 5000

struct loop;

/* What happened to something the model watches or submitted. */
struct loop_event {
	unsigned events;  /* epoll: EPOLLIN, EPOLLOUT, EPOLLERR, ... */
	unsigned op;	  /* io_uring: the operation (loop_uring.h) */
	int res;	  /* io_uring: the completion's result */
	unsigned flags;	  /* io_uring: the completion's flags */
	const char *data; /* io_uring: a recv's res bytes, or NULL */
};

/* The model: what it does when something happens. */
struct loop_ops {
	/*
	 * A new connection within --max-conns: serve it. The loop has
	 * counted it in nopen and nlive already; on -errno it uncounts it
	 * and tells the client busy.
	 */
	int (*accept)(struct loop *l, int fd);
	/* ptr is what the model watched or tagged its operation with. */
	void (*event)(struct loop *l, void *ptr, const struct loop_event *ev);
	/* A pool job the model submitted (with .cq = l->cq) is done. */
	void (*job)(struct loop *l, struct tpool_job *job);
	/*
	 * c's deadline passed, and the loop has acted (loop_turn_end()): it
	 * is aborted, or its unfinished request answered (evconn_timeout()).
	 * Send what c->out holds, and settle c.
	 */
	void (*expire)(struct loop *l, struct evconn *c);
	/* Optional: a stop began (after the loop's part of it). */
	void (*stop)(struct loop *l);
	/* Optional: every l->tick_ms while something lives (nlive). */
	void (*tick)(struct loop *l, uint64_t now_ms);
	/* Optional: the end of every turn, after the deadlines. */
	void (*turn)(struct loop *l);
};

/* A connection turned away, waiting for its first bytes (evaccept.h). */
struct loop_busy {
	int fd;	     /* -1: a free place */
	bool ending; /* its answer is on its way (the backend's end()) */
	uint64_t deadline_ms;
};

/* What the shared bookkeeping asks of the readiness mechanism. */
struct loop_backend {
	/* Watch b->fd until its first bytes come: then loop_busy_answer().
	 * 0 or -errno (then it is answered at once). */
	int (*busy_watch)(struct loop *l, struct loop_busy *b);
	/* b's time is up, or a stop began: loop_busy_answer() it, now or
	 * once the backend no longer refers to its fd. */
	void (*busy_end)(struct loop *l, struct loop_busy *b);
	/* Out of descriptors: stop (or resume) accepting. */
	void (*accept_pause)(struct loop *l, bool paused);
	/* A stop began: forget the stop eventfd; the listener closes next. */
	void (*stop)(struct loop *l);
};

struct loop {
	const struct server_cfg *cfg;
	const struct loop_ops *ops;
	const struct loop_backend *be;
	struct evaccept acc; /* the listener, lfd -1 once stopped */
	bool accept_paused;  /* out of descriptors: backing off */
	uint64_t accept_resume_ms;
	struct tpool *pool;	 /* NULL: every request is computed here */
	struct tpool_cq *cq;	 /* the pool's jobs come back here */
	struct evconn_cfg ecfg;	 /* what the loop's evconns share */
	struct evconn_tq idle;	 /* open connections, by last progress */
	struct evconn_tq header; /* part of a request in: --header-timeout */
	struct evconn_tq linger; /* closing politely, by start of linger */
	/*
	 * loop_admit() counts a connection in both; the model takes it out
	 * of nopen when it closes the socket, of nlive when its struct goes.
	 */
	atomic_uint *nopen; /* sockets open, every loop's: --max-conns */
	unsigned nlive;	    /* the model's live things: run till 0 */
	bool stopping;
	uint64_t now_ms; /* the clock at the last turn's end */
	/*
	 * Nothing is due before this (UINT64_MAX: nothing at all); every new
	 * deadline lowers it (loop_due()). A deadline moved later leaves it
	 * early: a turn then finds nothing due, and looks again.
	 */
	uint64_t next_due_ms;
	uint64_t grace_end_ms; /* a stop's grace period ends */
	unsigned tick_ms;      /* ops->tick's period; 0: none */
	uint64_t next_tick_ms;
	struct loop_busy busy[EVACCEPT_BUSY_MAX]; /* refused, not answered */
	unsigned nbusy;				  /* busy[] places taken */
};

/*
 * Sets up what l shares on listener lfd (non-blocking; the loop closes
 * it), for backend be and model ops. pool may be NULL, and may be shared
 * with other loops; workers (the pool's threads) sizes the per-connection
 * job cap. nopen is the connection count shared by every loop of the
 * server. Returns 0 or -errno (lfd is then closed). The backend's init
 * calls it.
 */
int loop_init(struct loop *l, const struct loop_backend *be,
	      const struct loop_ops *ops, const struct server_cfg *cfg, int lfd,
	      struct tpool *pool, unsigned workers, atomic_uint *nopen);

/* Frees what loop_init() made; refused connections still waiting are
 * answered. The backend's destroy calls it. */
void loop_destroy(struct loop *l);

/* The monotonic clock, in ms: every deadline's. */
static inline uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Should the loop run another turn? Until a stop has seen nlive reach 0. */
static inline bool loop_running(const struct loop *l)
{
	return !l->stopping || l->nlive;
}

/*
 * Accepts up to max pending connections: each is within --max-conns
 * (ops->accept()) or turned away (busy). Out of descriptors with nothing
 * to shed, it backs off. Returns true once nothing is pending.
 */
bool loop_accept(struct loop *l, unsigned max);

/* Backs off accepting for EVACCEPT_BACKOFF_MS. */
void loop_accept_backoff(struct loop *l);

/* One accepted connection (fd): serve it, or turn it away. */
void loop_admit(struct loop *l, int fd);

/* The refused connection that p points at, or NULL. */
struct loop_busy *loop_busy_of(struct loop *l, void *p);

/* Its bytes came, its time is up, or a stop began: answer and close. */
void loop_busy_answer(struct loop *l, struct loop_busy *b);

/* SIGTERM or SIGINT (stop_eventfd() became readable). */
void loop_begin_stop(struct loop *l);

/* Every finished job on l->cq to ops->job(). */
void loop_reap_pool(struct loop *l);

/*
 * After anything happened to open connection c: the clock that runs for
 * it. Lingering: the linger clock, from the start. Otherwise the header
 * clock from the first byte of a request until it is whole (a new request
 * restarts it), the idle clock otherwise (progress restarts it).
 */
void loop_clock(struct loop *l, struct evconn *c);

/* Nothing is due before at: the next wait ends then at the latest. */
static inline void loop_due(struct loop *l, uint64_t at)
{
	if (at < l->next_due_ms)
		l->next_due_ms = at;
}

/* loop_turn_end()'s work when something may be due: not every turn. */
void loop_turn_due(struct loop *l, uint64_t now);

/* How long the backend may wait: ms until next_due_ms, or -1 for never. */
static inline int loop_wait_ms(const struct loop *l)
{
	uint64_t at = l->next_due_ms, now = l->now_ms;

	if (at == UINT64_MAX)
		return -1;
	if (at <= now)
		return 0;
	return at - now > INT32_MAX ? INT32_MAX : (int)(at - now);
}

/*
 * After the turn's events: whatever is due (loop_turn_due(): deadlines,
 * the tick, the accept back-off), then ops->turn(). Returns
 * loop_wait_ms() for the next wait. Silent too long (idle, lingering), a
 * connection is aborted; one whose request did not come whole in time gets
 * 408 or the ERR line (evconn_timeout()), unless a stop's grace is over;
 * one with jobs in the pool is not silent, only waiting for us: its clock
 * restarts. Inline: it runs every turn, and usually finds nothing due.
 */
static inline int loop_turn_end(struct loop *l)
{
	uint64_t now = l->now_ms = loop_now_ms();

	if (now >= l->next_due_ms)
		loop_turn_due(l, now);
	if (l->ops->turn)
		l->ops->turn(l);
	return loop_wait_ms(l);
}

#endif
