#include "evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stop.h"

/* epoll's data.ptr for the three descriptors that are not connections. */
static char evloop_tag_listener, evloop_tag_pool, evloop_tag_stop;

static uint64_t evloop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int evloop_watch(struct evloop *l, int op, int fd, unsigned events,
			void *ptr)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};

	return epoll_ctl(l->ep, op, fd, &ev) ? -errno : 0;
}

/* Turns fd away at once, in the protocol its first bytes (if any) show. */
static void evloop_busy_now(struct evloop *l, int fd)
{
	evaccept_tell_busy(fd, l->cfg);
	close(fd);
}

/*
 * Turns fd away once its first bytes come or EVACCEPT_BUSY_WAIT_MS pass
 * (evaccept.h says why), without waiting here: it waits in the epoll set.
 * With EVACCEPT_BUSY_MAX waiting already, it is answered now.
 */
static void evloop_busy_later(struct evloop *l, int fd)
{
	struct evloop_busy *b = NULL;

	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX && !b; i++)
		if (l->busy[i].fd < 0)
			b = &l->busy[i];
	if (!b || evloop_watch(l, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP, b)) {
		evloop_busy_now(l, fd);
		return;
	}
	b->fd = fd;
	b->deadline_ms = evloop_now_ms() + EVACCEPT_BUSY_WAIT_MS;
	l->nbusy++;
}

/* Its bytes came, its time is up, or a stop began: answer and close. */
static void evloop_busy_answer(struct evloop *l, struct evloop_busy *b)
{
	evloop_busy_now(l, b->fd); /* close() takes it out of the set */
	b->fd = -1;
	l->nbusy--;
}

/* The refused connection that p points at, or NULL. */
static struct evloop_busy *evloop_busy_of(struct evloop *l, void *p)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)l->busy;

	if (a < lo || a >= (uintptr_t)(l->busy + EVACCEPT_BUSY_MAX))
		return NULL;
	return p;
}

/* Answers the refused connections whose time is up (all: every). */
static void evloop_busy_expire(struct evloop *l, bool every)
{
	uint64_t now;

	if (!l->nbusy) /* the usual case: every turn, so no clock, no scan */
		return;
	now = evloop_now_ms();
	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++)
		if (l->busy[i].fd >= 0 &&
		    (every || l->busy[i].deadline_ms <= now))
			evloop_busy_answer(l, &l->busy[i]);
}

/* Milliseconds until the first refused connection's time is up, or -1. */
static int evloop_busy_wait_ms(const struct evloop *l, uint64_t now)
{
	int t = -1, u;

	for (unsigned i = 0; l->nbusy && i < EVACCEPT_BUSY_MAX; i++) {
		if (l->busy[i].fd < 0)
			continue;
		u = l->busy[i].deadline_ms > now
			? (int)(l->busy[i].deadline_ms - now)
			: 0;
		if (t < 0 || u < t)
			t = u;
	}
	return t;
}

/* A new connection: a task parked in epoll, waiting for its first line. */
static void evloop_add_conn(struct evloop *l, int fd)
{
	struct evconn *c = malloc(sizeof(*c));

	if (!c) {
		evloop_busy_now(l, fd);
		return;
	}
	evconn_init(c, fd, &l->ecfg);
	c->armed = EPOLLIN;
	if (evloop_watch(l, EPOLL_CTL_ADD, fd, c->armed, c)) {
		metrics_conn_close(); /* evconn_init() counted it */
		evloop_busy_now(l, fd);
		free(c);
		return;
	}
	evconn_tq_touch(&l->idle, c, evloop_now_ms());
	atomic_fetch_add(l->nopen, 1);
	l->nlive++;
}

static void evloop_accept(struct evloop *l)
{
	for (int i = 0; i < EVLOOP_ACCEPT_BATCH; i++) {
		int fd = evaccept_next(&l->acc, l->cfg);

		if (fd == -EBUSY)
			continue;
		if (fd == -EAGAIN)
			return;
		if (fd < 0) {
			/* Out of descriptors or worse: look again later. */
			evloop_watch(l, EPOLL_CTL_MOD, l->acc.lfd, 0,
				     &evloop_tag_listener);
			l->accept_paused = true;
			l->accept_resume_ms =
			    evloop_now_ms() + EVACCEPT_BACKOFF_MS;
			return;
		}
		if (atomic_load(l->nopen) >= l->cfg->max_conns)
			evloop_busy_later(l, fd);
		else
			evloop_add_conn(l, fd);
	}
}

/*
 * A dead connection is freed only after the whole epoll batch: a later
 * event of the same batch may still point at it (a pool completion closed
 * it first, then the client's RST arrives as EPOLLERR), and must find it
 * CLOSED, not freed or reused. bench/soak found this under ASan.
 */
static void evloop_free_if_dead(struct evloop *l, struct evconn *c)
{
	if (evconn_is_dead(c)) {
		c->tq_next = l->dead;
		l->dead = c;
	}
}

static void evloop_free_dead(struct evloop *l)
{
	struct evconn *c;

	while ((c = l->dead)) {
		l->dead = c->tq_next;
		free(c);
		l->nlive--;
	}
}

/*
 * The clock that runs for an open connection: the header clock from the
 * first byte of a request until it is whole (a new request restarts it),
 * the idle clock otherwise (progress restarts it).
 */
static void evloop_clock(struct evloop *l, struct evconn *c)
{
	struct evconn_tq *q =
	    l->header.timeout_ms && evconn_partial(c) ? &l->header : &l->idle;

	if (c->tq != q || c->progress)
		evconn_tq_touch(q, c, evloop_now_ms());
}

/*
 * After anything happened to c: close it if it is done; otherwise restart
 * its timeout if it made progress and tell epoll what it now waits for.
 */
static void evloop_settle(struct evloop *l, struct evconn *c)
{
	unsigned want;

	if (c->state == EVCONN_CLOSED)
		return;
	if (c->state == EVCONN_DONE) {
		evconn_tq_remove(c);
		evconn_close(c);
		atomic_fetch_sub(l->nopen, 1);
		evloop_free_if_dead(l, c);
		return;
	}
	if (c->state == EVCONN_LINGER && c->tq != &l->linger)
		evconn_tq_touch(&l->linger, c, evloop_now_ms());
	else if (c->tq != &l->linger)
		evloop_clock(l, c);
	c->progress = false;
	want = evconn_events(c);
	if (want != c->armed && !evloop_watch(l, EPOLL_CTL_MOD, c->fd, want, c))
		c->armed = want;
}

static void evloop_conn_event(struct evloop *l, struct evconn *c, unsigned ev)
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
	evloop_settle(l, c);
}

/* The completion pipe: every finished job fills its slot, in any order. */
static void evloop_reap(struct evloop *l)
{
	struct tpool_job *job = tpool_cq_reap(l->cq), *next;
	struct evconn *c;

	for (; job; job = next) {
		next = job->next;
		c = evconn_job_done(job);
		if (c->state == EVCONN_CLOSED)
			evloop_free_if_dead(l, c);
		else
			evloop_settle(l, c);
	}
}

/*
 * SIGTERM or SIGINT: stop accepting, and shut every connection's read side.
 * Each still answers what it has read and what the kernel has queued, then
 * closes; a client that never reads its replies gets EVLOOP_STOP_GRACE_MS.
 */
static void evloop_begin_stop(struct evloop *l)
{
	uint64_t deadline = evloop_now_ms() + EVLOOP_STOP_GRACE_MS;
	struct evconn_tq *qs[] = {&l->idle, &l->header};
	struct evconn *c;

	l->stopping = true;
	l->ecfg.stopping = true;
	epoll_ctl(l->ep, EPOLL_CTL_DEL, stop_eventfd(), NULL);
	evaccept_close(&l->acc);
	evloop_busy_expire(l, true);
	for (unsigned i = 0; i < 2; i++) {
		if (qs[i] == &l->idle || qs[i]->timeout_ms)
			qs[i]->timeout_ms = EVLOOP_STOP_GRACE_MS;
		for (c = qs[i]->head; c; c = c->tq_next) {
			/* The same deadline for all: the queue stays sorted. */
			if (c->deadline_ms > deadline)
				c->deadline_ms = deadline;
			evconn_stop(c);
		}
	}
}

/* Closes connections whose deadline passed; busy ones get a new one. */
static void evloop_expire(struct evloop *l, struct evconn_tq *q)
{
	uint64_t now = evloop_now_ms();
	struct evconn *c;

	while ((c = evconn_tq_expired(q, now))) {
		if (c->njobs) {
			/* Silent only because we are computing for it. */
			evconn_tq_touch(q, c, now);
			continue;
		}
		evconn_abort(c);
		evloop_settle(l, c);
	}
}

/* Requests that did not come whole in time: 408, or the ERR line. */
static void evloop_expire_headers(struct evloop *l)
{
	uint64_t now = evloop_now_ms();
	struct evconn *c;

	while ((c = evconn_tq_expired(&l->header, now))) {
		if (l->stopping) {
			evconn_abort(c); /* its grace is over */
		} else {
			evconn_timeout(c);
			evconn_on_writable(c);
		}
		c->progress = false; /* its clock is now the idle one */
		evconn_tq_remove(c);
		evloop_settle(l, c);
	}
}

/* How long epoll may sleep: until the nearest deadline. */
static int evloop_timeout(const struct evloop *l)
{
	uint64_t now = evloop_now_ms();
	int t = evconn_tq_wait_ms(&l->idle, now);
	int u = evconn_tq_wait_ms(&l->linger, now);

	if (u >= 0 && (t < 0 || u < t))
		t = u;
	u = evconn_tq_wait_ms(&l->header, now);
	if (u >= 0 && (t < 0 || u < t))
		t = u;
	u = evloop_busy_wait_ms(l, now);
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

static void evloop_resume_accept(struct evloop *l)
{
	if (!l->accept_paused || l->stopping ||
	    evloop_now_ms() < l->accept_resume_ms)
		return;
	l->accept_paused = false;
	evloop_watch(l, EPOLL_CTL_MOD, l->acc.lfd, EPOLLIN,
		     &evloop_tag_listener);
}

static void evloop_dispatch(struct evloop *l, struct epoll_event *ev)
{
	void *p = ev->data.ptr;

	if (p == &evloop_tag_listener)
		evloop_accept(l);
	else if (p == &evloop_tag_pool)
		evloop_reap(l);
	else if (p == &evloop_tag_stop)
		evloop_begin_stop(l);
	else if (evloop_busy_of(l, p))
		evloop_busy_answer(l, p);
	else
		evloop_conn_event(l, p, ev->events);
}

void evloop_run(struct evloop *l)
{
	struct epoll_event evs[EVLOOP_EVENTS];
	int n;

	while (!l->stopping || l->nlive) {
		n = epoll_wait(l->ep, evs, EVLOOP_EVENTS, evloop_timeout(l));
		if (n < 0 && errno != EINTR) {
			log_err(-errno, "epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++)
			evloop_dispatch(l, &evs[i]);
		evloop_expire(l, &l->idle);
		evloop_expire_headers(l);
		evloop_expire(l, &l->linger);
		evloop_busy_expire(l, false);
		evloop_free_dead(l);
		evloop_resume_accept(l);
	}
}

int evloop_init(struct evloop *l, const struct server_cfg *cfg, int lfd,
		struct tpool *pool, unsigned workers, atomic_uint *nopen)
{
	int err;

	*l = (struct evloop){.cfg = cfg, .pool = pool, .nopen = nopen};
	l->idle.timeout_ms = cfg->idle_timeout_ms;
	l->header.timeout_ms =
	    evconn_header_ms(cfg->header_timeout_ms, cfg->idle_timeout_ms);
	l->linger.timeout_ms = EVCONN_LINGER_MS;
	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++)
		l->busy[i].fd = -1;
	evaccept_init(&l->acc, lfd);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0) {
		err = -errno;
		goto out_close_listener;
	}
	evconn_cfg_init(&l->ecfg, &cfg->limits, pool, workers);
	if (pool) {
		l->cq = tpool_cq_create();
		if (!l->cq) {
			err = -errno;
			goto out_close_ep;
		}
		l->ecfg.cq = l->cq;
	}
	err =
	    evloop_watch(l, EPOLL_CTL_ADD, lfd, EPOLLIN, &evloop_tag_listener);
	if (!err && pool)
		err = evloop_watch(l, EPOLL_CTL_ADD, tpool_cq_fd(l->cq),
				   EPOLLIN, &evloop_tag_pool);
	if (!err)
		err = evloop_watch(l, EPOLL_CTL_ADD, stop_eventfd(), EPOLLIN,
				   &evloop_tag_stop);
	if (!err)
		return 0;
	if (l->cq)
		tpool_cq_destroy(l->cq);
out_close_ep:
	close(l->ep);
out_close_listener:
	evaccept_close(&l->acc);
	return err;
}

void evloop_destroy(struct evloop *l)
{
	/* After a stop every connection is gone, so no job is in the pool. */
	if (!l->stopping)
		evaccept_close(&l->acc);
	evloop_busy_expire(l, true);
	if (l->cq)
		tpool_cq_destroy(l->cq);
	close(l->ep);
}
