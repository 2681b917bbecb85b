/*
 * async - the talk's async_server: one event loop, connections as tasks,
 * compute handed to a pool, completion waking the loop.
 *
 *	             +-------------------- epoll ---------------------+
 *	listener --> | accept, --max-conns, EMFILE shedding           |
 *	conn fds --> | read -> frame -> cheap? answer inline          |
 *	             |                 else  -> submit to the pool --+-->
 *workers eventfd  --> | reap finished jobs -> fill slot -> write      <--+
 *(fib) stop fd  --> | stop accepting, drain, close                   |
 *	             +------------------------------------------------+
 *
 * The talk's scheduler parks generator tasks in select() and sends every
 * request through a process pool, waking the loop with a socketpair. Ours
 * parks connections (src/core/evconn.h, an explicit state machine) in
 * epoll, wakes on an eventfd, and keeps cheap requests on the loop, where
 * they cost less than the hand-off would (see EVCONN_INLINE_*_MAX_N).
 *
 * One thread runs this file; the pool's threads run only proto_compute().
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../core/evaccept.h"
#include "../core/evconn.h"
#include "../core/log.h"
#include "../core/stop.h"
#include "../core/tpool.h"
#include "model.h"

#define ASYNC_EVENTS	   64 /* epoll events taken per wake-up */
#define ASYNC_ACCEPT_BATCH 64 /* accepts per listener wake-up: fairness */
#define ASYNC_STOP_GRACE_MS                                                    \
	5000 /* at a stop, a stuck client gets this long                       \
	      */

struct async_loop {
	const struct server_cfg *cfg;
	int ep;		     /* the epoll set */
	struct evaccept acc; /* the listener, lfd -1 once stopped */
	bool accept_paused;  /* out of descriptors: not watching it */
	uint64_t accept_resume_ms;
	struct tpool *pool;
	struct evconn_cfg ecfg;
	struct evconn_tq idle;	 /* open connections, by last progress */
	struct evconn_tq linger; /* closing politely, by start of linger */
	unsigned nopen;		 /* connections with a socket: --max-conns */
	unsigned nlive;		 /* structs not yet freed, closed ones too */
	struct evconn *dead; /* to free after this batch, via tq_next */
	bool stopping;
};

/* epoll's data.ptr for the three descriptors that are not connections. */
static char async_tag_listener, async_tag_pool, async_tag_stop;

static uint64_t async_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int async_watch(struct async_loop *l, int op, int fd, unsigned events,
		       void *ptr)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};

	return epoll_ctl(l->ep, op, fd, &ev) ? -errno : 0;
}

/* A new connection: a task parked in epoll, waiting for its first line. */
static void async_add_conn(struct async_loop *l, int fd)
{
	struct evconn *c = malloc(sizeof(*c));

	if (!c) {
		server_reject_busy(fd, l->cfg);
		return;
	}
	evconn_init(c, fd, &l->ecfg);
	c->armed = EPOLLIN;
	if (async_watch(l, EPOLL_CTL_ADD, fd, c->armed, c)) {
		server_reject_busy(fd, l->cfg);
		free(c);
		return;
	}
	evconn_tq_touch(&l->idle, c, async_now_ms());
	l->nopen++;
	l->nlive++;
}

static void async_accept(struct async_loop *l)
{
	for (int i = 0; i < ASYNC_ACCEPT_BATCH; i++) {
		int fd = evaccept_next(&l->acc, l->cfg);

		if (fd == -EBUSY)
			continue;
		if (fd == -EAGAIN)
			return;
		if (fd < 0) {
			/* Out of descriptors or worse: look again later. */
			async_watch(l, EPOLL_CTL_MOD, l->acc.lfd, 0,
				    &async_tag_listener);
			l->accept_paused = true;
			l->accept_resume_ms =
			    async_now_ms() + EVACCEPT_BACKOFF_MS;
			return;
		}
		if (l->nopen >= l->cfg->max_conns)
			server_reject_busy(fd, l->cfg);
		else
			async_add_conn(l, fd);
	}
}

/*
 * A dead connection is freed only after the whole epoll batch: a later
 * event of the same batch may still point at it (the pool's completion
 * closed it first), and must find it CLOSED, not freed or reused.
 */
static void async_free_if_dead(struct async_loop *l, struct evconn *c)
{
	if (evconn_is_dead(c)) {
		c->tq_next = l->dead;
		l->dead = c;
	}
}

static void async_free_dead(struct async_loop *l)
{
	struct evconn *c;

	while ((c = l->dead)) {
		l->dead = c->tq_next;
		free(c);
		l->nlive--;
	}
}

/*
 * After anything happened to c: close it if it is done; otherwise restart
 * its timeout if it made progress and tell epoll what it now waits for.
 */
static void async_settle(struct async_loop *l, struct evconn *c)
{
	unsigned want;

	if (c->state == EVCONN_CLOSED)
		return;
	if (c->state == EVCONN_DONE) {
		evconn_tq_remove(c);
		evconn_close(c);
		l->nopen--;
		async_free_if_dead(l, c);
		return;
	}
	if (c->state == EVCONN_LINGER && c->tq != &l->linger)
		evconn_tq_touch(&l->linger, c, async_now_ms());
	else if (c->progress && c->tq == &l->idle)
		evconn_tq_touch(&l->idle, c, async_now_ms());
	c->progress = false;
	want = evconn_events(c);
	if (want != c->armed && !async_watch(l, EPOLL_CTL_MOD, c->fd, want, c))
		c->armed = want;
}

static void async_conn_event(struct async_loop *l, struct evconn *c,
			     unsigned ev)
{
	if (c->state == EVCONN_CLOSED)
		return; /* closed earlier in this batch: a stale event */
	/*
	 * An error is a reset: nobody is left to answer. A hang-up means our
	 * write side is shut too, which is expected only while lingering.
	 */
	if ((ev & EPOLLERR) || ((ev & EPOLLHUP) && c->state != EVCONN_LINGER)) {
		evconn_abort(c);
	} else {
		if (ev & (EPOLLIN | EPOLLHUP))
			evconn_on_readable(c);
		if (ev & EPOLLOUT)
			evconn_on_writable(c);
	}
	async_settle(l, c);
}

/* The pool's eventfd: every finished job fills its slot, in any order. */
static void async_reap(struct async_loop *l)
{
	struct tpool_job *job = tpool_reap(l->pool), *next;
	struct evconn *c;

	for (; job; job = next) {
		next = job->next;
		c = evconn_job_done(job);
		if (c->state == EVCONN_CLOSED)
			async_free_if_dead(l, c);
		else
			async_settle(l, c);
	}
}

/*
 * SIGTERM or SIGINT: stop accepting, and shut every connection's read side.
 * Each still answers what it has read and what the kernel has queued, then
 * closes; a client that never reads its replies gets ASYNC_STOP_GRACE_MS.
 */
static void async_begin_stop(struct async_loop *l)
{
	uint64_t deadline = async_now_ms() + ASYNC_STOP_GRACE_MS;
	struct evconn *c;

	l->stopping = true;
	l->ecfg.stopping = true;
	epoll_ctl(l->ep, EPOLL_CTL_DEL, stop_eventfd(), NULL);
	evaccept_close(&l->acc);
	l->idle.timeout_ms = ASYNC_STOP_GRACE_MS;
	for (c = l->idle.head; c; c = c->tq_next) {
		if (c->deadline_ms > deadline)
			c->deadline_ms =
			    deadline; /* same for all: still sorted */
		evconn_stop(c);
	}
}

/* Closes connections whose deadline passed; busy ones get a new one. */
static void async_expire(struct async_loop *l, struct evconn_tq *q)
{
	uint64_t now = async_now_ms();
	struct evconn *c;

	while ((c = evconn_tq_expired(q, now))) {
		if (c->njobs) {
			/* Silent only because we are computing for it. */
			evconn_tq_touch(q, c, now);
			continue;
		}
		evconn_abort(c);
		async_settle(l, c);
	}
}

/* How long epoll may sleep: until the nearest deadline. */
static int async_timeout(const struct async_loop *l)
{
	uint64_t now = async_now_ms();
	int t = evconn_tq_wait_ms(&l->idle, now);
	int u = evconn_tq_wait_ms(&l->linger, now);

	if (u >= 0 && (t < 0 || u < t))
		t = u;
	if (l->accept_paused) {
		u = l->accept_resume_ms > now ? (int)(l->accept_resume_ms - now)
					      : 0;
		if (t < 0 || u < t)
			t = u;
	}
	return t;
}

static void async_resume_accept(struct async_loop *l)
{
	if (!l->accept_paused || l->stopping ||
	    async_now_ms() < l->accept_resume_ms)
		return;
	l->accept_paused = false;
	async_watch(l, EPOLL_CTL_MOD, l->acc.lfd, EPOLLIN, &async_tag_listener);
}

static void async_dispatch(struct async_loop *l, struct epoll_event *ev)
{
	void *p = ev->data.ptr;

	if (p == &async_tag_listener)
		async_accept(l);
	else if (p == &async_tag_pool)
		async_reap(l);
	else if (p == &async_tag_stop)
		async_begin_stop(l);
	else
		async_conn_event(l, p, ev->events);
}

/* The scheduler: runs until a stop has drained every connection. */
static void async_loop_run(struct async_loop *l)
{
	struct epoll_event evs[ASYNC_EVENTS];
	int n;

	while (!l->stopping || l->nlive) {
		n = epoll_wait(l->ep, evs, ASYNC_EVENTS, async_timeout(l));
		if (n < 0 && errno != EINTR) {
			log_err(-errno, "epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++)
			async_dispatch(l, &evs[i]);
		async_expire(l, &l->idle);
		async_expire(l, &l->linger);
		async_free_dead(l);
		async_resume_accept(l);
	}
}

static int async_setup(struct async_loop *l, const struct server_cfg *cfg)
{
	unsigned workers = server_workers(cfg);
	int lfd, err;

	*l = (struct async_loop){.cfg = cfg};
	l->idle.timeout_ms = cfg->idle_timeout_ms;
	l->linger.timeout_ms = EVCONN_LINGER_MS;
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0)
		return -errno;
	l->pool = tpool_create(workers);
	if (!l->pool) {
		err = -errno;
		goto out_close_ep;
	}
	evconn_cfg_init(&l->ecfg, &cfg->limits, l->pool, workers);
	lfd = server_listen(cfg, cfg->port, NET_NONBLOCK);
	if (lfd < 0) {
		err = lfd;
		goto out_destroy_pool;
	}
	evaccept_init(&l->acc, lfd);
	err = async_watch(l, EPOLL_CTL_ADD, lfd, EPOLLIN, &async_tag_listener);
	if (!err)
		err = async_watch(l, EPOLL_CTL_ADD, tpool_eventfd(l->pool),
				  EPOLLIN, &async_tag_pool);
	if (!err)
		err = async_watch(l, EPOLL_CTL_ADD, stop_eventfd(), EPOLLIN,
				  &async_tag_stop);
	if (!err)
		return 0;
	evaccept_close(&l->acc);
out_destroy_pool:
	tpool_destroy(l->pool);
out_close_ep:
	close(l->ep);
	return err;
}

static int async_run(const struct server_cfg *cfg)
{
	struct async_loop l;
	int err = async_setup(&l, cfg);

	if (err)
		return err;
	async_loop_run(&l);
	/* Every connection is gone, so no job is left in the pool. */
	if (!l.stopping)
		evaccept_close(&l.acc);
	tpool_destroy(l.pool);
	close(l.ep);
	return 0;
}

const struct model model_async = {
    .name = "async",
    .summary = "one epoll loop; compute on a thread pool, eventfd wakes it",
    .concurrency = MODEL_PARALLEL,
    .run = async_run,
};
