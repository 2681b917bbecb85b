#include "loop.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

int loop_init(struct loop *l, const struct loop_backend *be,
	      const struct loop_ops *ops, const struct server_cfg *cfg, int lfd,
	      struct tpool *pool, unsigned workers, atomic_uint *nopen)
{
	*l = (struct loop){
	    .cfg = cfg, .ops = ops, .be = be, .pool = pool, .nopen = nopen};
	l->idle.timeout_ms = cfg->idle_timeout_ms;
	l->header.timeout_ms =
	    evconn_header_ms(cfg->header_timeout_ms, cfg->idle_timeout_ms);
	l->linger.timeout_ms = EVCONN_LINGER_MS;
	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++)
		l->busy[i].fd = -1;
	l->now_ms = loop_now_ms();
	l->next_due_ms = UINT64_MAX;
	evaccept_init(&l->acc, lfd);
	evconn_cfg_init(&l->ecfg, &cfg->limits, pool, workers);
	if (pool) {
		l->cq = tpool_cq_create();
		if (!l->cq) {
			int err = -errno;

			evaccept_close(&l->acc);
			return err;
		}
		l->ecfg.cq = l->cq;
	}
	return 0;
}

/* Turns fd away at once, in the protocol its first bytes (if any) show. */
static void loop_busy_now(struct loop *l, int fd)
{
	evaccept_tell_busy(fd, l->cfg);
	close(fd);
}

void loop_destroy(struct loop *l)
{
	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++)
		if (l->busy[i].fd >= 0)
			loop_busy_now(l, l->busy[i].fd);
	/* After a stop every connection is gone, so no job is in the pool. */
	if (l->cq)
		tpool_cq_destroy(l->cq);
	if (l->acc.lfd >= 0)
		evaccept_close(&l->acc);
}

/*
 * Turns fd away once its first bytes come or EVACCEPT_BUSY_WAIT_MS pass
 * (evaccept.h says why), without waiting here: the backend watches it.
 * With EVACCEPT_BUSY_MAX waiting already, it is answered now.
 */
static void loop_busy_later(struct loop *l, int fd)
{
	struct loop_busy *b = NULL;

	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX && !b; i++)
		if (l->busy[i].fd < 0)
			b = &l->busy[i];
	if (!b) {
		loop_busy_now(l, fd);
		return;
	}
	*b = (struct loop_busy){
	    .fd = fd, .deadline_ms = loop_now_ms() + EVACCEPT_BUSY_WAIT_MS};
	if (l->be->busy_watch(l, b)) {
		b->fd = -1;
		loop_busy_now(l, fd);
		return;
	}
	l->nbusy++;
	loop_due(l, b->deadline_ms);
}

void loop_busy_answer(struct loop *l, struct loop_busy *b)
{
	loop_busy_now(l, b->fd);
	b->fd = -1;
	l->nbusy--;
}

struct loop_busy *loop_busy_of(struct loop *l, void *p)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)l->busy;

	if (a < lo || a >= (uintptr_t)(l->busy + EVACCEPT_BUSY_MAX))
		return NULL;
	return p;
}

/* Ends the refused connections whose time is up (all: every). */
static void loop_busy_expire(struct loop *l, uint64_t now, bool every)
{
	struct loop_busy *b;

	if (!l->nbusy) /* the usual case: every turn, so no scan */
		return;
	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++) {
		b = &l->busy[i];
		if (b->fd >= 0 && !b->ending &&
		    (every || b->deadline_ms <= now))
			l->be->busy_end(l, b);
	}
}

void loop_admit(struct loop *l, int fd)
{
	if (atomic_load(l->nopen) >= l->cfg->max_conns) {
		loop_busy_later(l, fd);
		return;
	}
	atomic_fetch_add(l->nopen, 1);
	if (!l->nlive++ && l->tick_ms)
		loop_due(l, l->next_tick_ms); /* the tick runs again */
	if (l->ops->accept(l, fd)) {
		atomic_fetch_sub(l->nopen, 1);
		l->nlive--;
		loop_busy_now(l, fd);
	} else if (l->stopping) {
		/* Connected before the stop, its accept seen after (an
		 * io_uring completion of the same batch): served as the rest
		 * of the backlog, what it sent answered, then closed. */
		shutdown(fd, SHUT_RD);
	}
}

void loop_accept_backoff(struct loop *l)
{
	l->accept_paused = true;
	l->accept_resume_ms = loop_now_ms() + EVACCEPT_BACKOFF_MS;
	loop_due(l, l->accept_resume_ms);
	l->be->accept_pause(l, true);
}

bool loop_accept(struct loop *l, unsigned max)
{
	int fd;

	for (unsigned i = 0; i < max; i++) {
		fd = evaccept_next(&l->acc, l->cfg);
		if (fd == -EBUSY)
			continue; /* out of descriptors: one shed */
		if (fd == -EAGAIN)
			return true;
		if (fd < 0) {
			/* Out of descriptors or worse: look again later. */
			loop_accept_backoff(l);
			return false;
		}
		loop_admit(l, fd);
	}
	return false;
}

static void loop_resume_accept(struct loop *l, uint64_t now)
{
	if (!l->accept_paused || l->stopping || now < l->accept_resume_ms)
		return;
	l->accept_paused = false;
	l->be->accept_pause(l, false);
}

/*
 * SIGTERM or SIGINT: take the connections already in the backlog, stop
 * accepting, and shut every connection's read side. Each still answers
 * what it has read and what the kernel has queued, then closes; a client
 * that never reads its replies gets LOOP_STOP_GRACE_MS.
 */
void loop_begin_stop(struct loop *l)
{
	uint64_t deadline = loop_now_ms() + LOOP_STOP_GRACE_MS;
	struct evconn_tq *qs[] = {&l->idle, &l->header};
	struct evconn *c;

	l->be->stop(l);
	/* Out of descriptors, each is still told busy, not reset. */
	loop_accept(l, -1u);
	l->stopping = true;
	l->ecfg.stopping = true;
	l->grace_end_ms = deadline;
	l->accept_paused = false;
	evaccept_close(&l->acc);
	loop_busy_expire(l, 0, true);
	for (unsigned i = 0; i < 2; i++) {
		if (qs[i] == &l->idle || qs[i]->timeout_ms)
			qs[i]->timeout_ms = LOOP_STOP_GRACE_MS;
		for (c = qs[i]->head; c; c = c->tq_next) {
			/* The same deadline for all: the queue stays sorted. */
			if (c->deadline_ms > deadline)
				c->deadline_ms = deadline;
			loop_due(l, c->deadline_ms);
			evconn_stop(c);
		}
	}
	if (l->ops->stop)
		l->ops->stop(l);
}

void loop_reap_pool(struct loop *l)
{
	struct tpool_job *job = tpool_cq_reap(l->cq), *next;

	for (; job; job = next) {
		next = job->next;
		l->ops->job(l, job);
	}
}

void loop_clock(struct loop *l, struct evconn *c)
{
	struct evconn_tq *q;

	if (c->state == EVCONN_LINGER) {
		if (c->tq != &l->linger) {
			evconn_tq_touch(&l->linger, c, loop_now_ms());
			loop_due(l, c->deadline_ms);
		}
	} else if (c->tq != &l->linger) {
		q = l->header.timeout_ms && evconn_partial(c) ? &l->header
							      : &l->idle;
		if (c->tq != q || c->progress) {
			evconn_tq_touch(q, c, loop_now_ms());
			loop_due(l, c->deadline_ms);
		}
	}
	c->progress = false;
}

/* Ends the silence of every member of q whose deadline passed. */
static void loop_expire(struct loop *l, struct evconn_tq *q, uint64_t now)
{
	struct evconn *c;

	while ((c = q->head) && c->deadline_ms <= now) {
		if (q != &l->header && c->njobs) {
			/* Silent only because the pool computes for it. */
			evconn_tq_touch(q, c, now);
			continue;
		}
		if (q != &l->header || l->stopping) {
			evconn_abort(c); /* for a header: its grace is over */
		} else {
			evconn_timeout(c);
			c->progress = false; /* its clock is now the idle one */
			evconn_tq_remove(c);
		}
		l->ops->expire(l, c);
	}
}

/* The earlier of *at and q's first deadline (UINT64_MAX: none). */
static void loop_tq_first(const struct evconn_tq *q, uint64_t *at)
{
	if (q->head && q->head->deadline_ms < *at)
		*at = q->head->deadline_ms;
}

/* The nearest deadline of all, from scratch. */
static uint64_t loop_next_due(const struct loop *l)
{
	uint64_t at = UINT64_MAX;

	loop_tq_first(&l->idle, &at);
	loop_tq_first(&l->header, &at);
	loop_tq_first(&l->linger, &at);
	for (unsigned i = 0; l->nbusy && i < EVACCEPT_BUSY_MAX; i++)
		if (l->busy[i].fd >= 0 && !l->busy[i].ending &&
		    l->busy[i].deadline_ms < at)
			at = l->busy[i].deadline_ms;
	if (l->accept_paused && l->accept_resume_ms < at)
		at = l->accept_resume_ms;
	if (l->tick_ms && l->nlive && l->next_tick_ms < at)
		at = l->next_tick_ms;
	return at;
}

void loop_turn_due(struct loop *l, uint64_t now)
{
	loop_expire(l, &l->idle, now);
	loop_expire(l, &l->header, now);
	loop_expire(l, &l->linger, now);
	loop_busy_expire(l, now, false);
	if (l->tick_ms && now >= l->next_tick_ms) {
		l->next_tick_ms = now + l->tick_ms;
		l->ops->tick(l, now);
	}
	loop_resume_accept(l, now);
	l->next_due_ms = loop_next_due(l);
}
