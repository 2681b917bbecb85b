#include "uconn.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

uint64_t uconn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct io_uring_sqe *uconn_sqe(struct uconn_ring *r)
{
	struct io_uring_sqe *sqe;

	/* Without SQPOLL a submit takes every queued SQE: room comes back. */
	while (!(sqe = io_uring_get_sqe(&r->ring)))
		io_uring_submit(&r->ring);
	return sqe;
}

void uconn_cancel(struct uconn_ring *r, void *ptr, enum uconn_op op)
{
	struct io_uring_sqe *sqe = uconn_sqe(r);

	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)ptr | op, 0);
	uconn_sqe_tag(sqe, NULL, UCONN_OP_IGNORE);
}

/* Operations or pool jobs in flight: the struct must outlive them. */
static bool uconn_busy(const struct uconn *c)
{
	return c->recv == UCONN_RECV_ARMED ||
	       c->recv == UCONN_RECV_CANCELLING || c->sending || c->ev.njobs;
}

static void uconn_free(struct uconn *c)
{
	struct uconn_ring *r = c->r;

	evconn_tq_remove(&c->ev);
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->wire);
	free(c);
	r->nlive--;
}

/*
 * Done: cancel what is in flight, and close the socket and free the struct
 * when the last completion comes.
 *
 * The descriptor must stay open until then. An SQE names its socket by fd
 * number, and the kernel looks the number up only when it issues the SQE:
 * a send or recv queued earlier in this batch of completions is still in
 * the SQ. Were the fd closed here, an accept completing before the next
 * submit (a re-armed accept issued by the submit uconn_sqe() makes when
 * the SQ is full, or one in the same io_uring_enter()) could be handed the
 * same number, and the old connection's send would write its replies to the
 * new client, its recv steal the new client's requests. Once every SQE
 * naming c has posted its final CQE, no SQE can name the fd any more. The
 * socket itself is held open by the in-flight operations anyway, so
 * deferring close() changes nothing the client can see.
 */
static void uconn_close(struct uconn *c)
{
	struct uconn_ring *r = c->r;

	evconn_tq_touch(&r->closing, &c->ev, 0);
	if (c->recv == UCONN_RECV_ARMED) {
		uconn_cancel(r, c, UCONN_OP_RECV);
		c->recv = UCONN_RECV_CANCELLING;
	}
	if (c->sending && !c->cancelling) {
		uconn_cancel(r, c, UCONN_OP_SEND);
		c->cancelling = true;
	}
	c->fd = c->ev.fd;
	c->ev.fd = -1;	      /* evconn_close() must not close it */
	evconn_close(&c->ev); /* EVCONN_CLOSED from now on */
	atomic_fetch_sub(r->nopen, 1);
	if (!uconn_busy(c))
		uconn_free(c);
}

/* Queues one send of everything waiting, unless one is in flight. */
static void uconn_send(struct uconn *c)
{
	struct io_uring_sqe *sqe;
	struct buf t;

	if (c->sending)
		return;
	if (!buf_used(&c->wire)) {
		if (!buf_used(&c->ev.out))
			return;
		t = c->wire; /* its storage is reused for the next replies */
		c->wire = c->ev.out;
		c->ev.out = t;
	}
	sqe = uconn_sqe(c->r);
	io_uring_prep_send(sqe, c->ev.fd, buf_head(&c->wire),
			   buf_used(&c->wire), MSG_NOSIGNAL);
	uconn_sqe_tag(sqe, c, UCONN_OP_SEND);
	c->sending = true;
}

/* Every reply is out: none in flight, waiting or still computing. */
static bool uconn_flushed(const struct uconn *c)
{
	return !c->sending && !buf_used(&c->wire) && !buf_used(&c->ev.out) &&
	       !c->ev.head;
}

/*
 * Answers what the caps allow, the EOF once no whole line is left, and
 * sends; once every reply is out, DRAINING is done and FAILING lingers.
 */
static void uconn_answer(struct uconn *c)
{
	struct evconn *e = &c->ev;
	bool capped = false;

	if (e->state == EVCONN_OPEN && buf_used(&e->in))
		capped = evconn_take(e);
	if (!buf_used(&e->in))
		buf_free(&e->in); /* idle connections hold no buffer */
	if (!capped && c->recv == UCONN_RECV_EOF && e->state == EVCONN_OPEN)
		evconn_eof(e);
	uconn_send(c);
	if (!uconn_flushed(c))
		return;
	if (e->state == EVCONN_DRAINING) {
		e->state = EVCONN_DONE;
	} else if (e->state == EVCONN_FAILING) {
		shutdown(e->fd, SHUT_WR);
		e->state = EVCONN_LINGER;
	}
}

/*
 * OPEN takes input up to its cap, beyond the longest line: while a line is
 * still unfinished there is nothing to answer, and its end must come in.
 * FAILING and LINGER read to drop it.
 */
static bool uconn_wants_input(const struct uconn *c)
{
	switch (c->ev.state) {
	case EVCONN_OPEN:
		return buf_used(&c->ev.in) <
		       UCONN_IN_MAX + c->ev.cfg->lim->max_line;
	case EVCONN_FAILING:
	case EVCONN_LINGER:
		return true;
	default:
		return false;
	}
}

/* Arms the multishot recv, or cancels it, as the state now asks. */
static void uconn_steer_recv(struct uconn *c)
{
	bool want = uconn_wants_input(c);
	struct io_uring_sqe *sqe;

	if (want && c->recv == UCONN_RECV_IDLE) {
		sqe = uconn_sqe(c->r);
		io_uring_prep_recv_multishot(sqe, c->ev.fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = UCONN_BGID;
		uconn_sqe_tag(sqe, c, UCONN_OP_RECV);
		c->recv = UCONN_RECV_ARMED;
	} else if (!want && c->recv == UCONN_RECV_ARMED) {
		uconn_cancel(c->r, c, UCONN_OP_RECV);
		c->recv = UCONN_RECV_CANCELLING;
	}
}

/*
 * The clock that runs for an open connection: the header clock from the
 * first byte of a request until it is whole (a new request restarts it),
 * the idle clock otherwise (progress restarts it).
 */
static void uconn_clock(struct uconn_ring *r, struct evconn *e)
{
	struct evconn_tq *q =
	    r->header.timeout_ms && evconn_partial(e) ? &r->header : &r->idle;

	if (e->tq != q || e->progress)
		evconn_tq_touch(q, e, uconn_now_ms());
}

/*
 * After anything happened to c: answer, close it when it is done, restart
 * its timeout when it made progress, and steer its recv.
 */
static void uconn_settle(struct uconn *c)
{
	struct uconn_ring *r = c->r;
	struct evconn *e = &c->ev;

	if (e->state == EVCONN_CLOSED) {
		if (!uconn_busy(c))
			uconn_free(c);
		return;
	}
	if (e->state != EVCONN_LINGER && e->state != EVCONN_DONE)
		uconn_answer(c);
	if (e->state == EVCONN_LINGER && c->recv == UCONN_RECV_EOF)
		e->state = EVCONN_DONE; /* the client has read the error */
	if (e->state == EVCONN_DONE) {
		uconn_close(c);
		return;
	}
	if (e->state == EVCONN_LINGER && e->tq != &r->linger)
		evconn_tq_touch(&r->linger, e, uconn_now_ms());
	else if (e->tq != &r->linger)
		uconn_clock(r, e);
	e->progress = false;
	uconn_steer_recv(c);
}

int uconn_start(struct uconn_ring *r, int fd)
{
	struct uconn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	evconn_init(&c->ev, fd, &r->ecfg);
	c->fd = -1; /* set when closing */
	c->r = r;
	c->recv = UCONN_RECV_IDLE;
	c->wire = (struct buf)BUF_INIT;
	evconn_tq_touch(&r->idle, &c->ev, uconn_now_ms());
	atomic_fetch_add(r->nopen, 1);
	r->nlive++;
	uconn_settle(c);
	return 0;
}

/* Bytes arrived: OPEN keeps them, LINGER counts and drops them. */
static void uconn_input(struct uconn *c, const char *data, size_t n)
{
	struct evconn *e = &c->ev;

	if (e->state == EVCONN_OPEN && buf_append(&e->in, data, n))
		e->state = EVCONN_DONE;
	if (e->state == EVCONN_LINGER) {
		e->lingered += n;
		if (e->lingered >= SERVE_LINGER_MAX)
			e->state = EVCONN_DONE;
	}
}

void uconn_on_recv(struct uconn *c, int res, unsigned flags, const char *data)
{
	if (!(flags & IORING_CQE_F_MORE))
		c->recv = res == 0 ? UCONN_RECV_EOF : UCONN_RECV_IDLE;
	if (c->ev.state == EVCONN_CLOSED || res == 0 || res == -ECANCELED) {
		/* closed: dropped; EOF: answered by uconn_answer() */
	} else if (res > 0) {
		uconn_input(c, data, (size_t)res);
	} else if (res != -ENOBUFS) {
		c->recv = UCONN_RECV_EOF;
		evconn_abort(&c->ev); /* reset: nobody to answer */
	}
	/*
	 * ENOBUFS: the recv is IDLE and settle arms it again. Its SQE goes in
	 * with the next submit, after this batch of completions has given
	 * every provided buffer back.
	 */
	uconn_settle(c);
}

void uconn_on_send(struct uconn *c, int res)
{
	c->sending = false;
	c->cancelling = false;
	if (c->ev.state != EVCONN_CLOSED) {
		if (res < 0) {
			evconn_abort(&c->ev);
		} else {
			buf_consume(&c->wire, (size_t)res);
			if (res > 0)
				c->ev.progress = true;
			if (!buf_used(&c->wire))
				buf_free(&c->wire); /* nor an empty one */
		}
	}
	uconn_settle(c);
}

void uconn_on_jobs(struct tpool_job *jobs)
{
	struct tpool_job *next;

	for (; jobs; jobs = next) {
		next = jobs->next;
		/* ev is the first member: the job's connection is the uconn. */
		uconn_settle((struct uconn *)evconn_job_ready(jobs));
	}
}

void uconn_stop_all(struct uconn_ring *r, unsigned grace_ms)
{
	uint64_t deadline = uconn_now_ms() + grace_ms;
	struct evconn_tq *qs[] = {&r->idle, &r->header};
	struct evconn *e;

	r->stopping = true;
	r->ecfg.stopping = true;
	for (unsigned i = 0; i < 2; i++) {
		if (qs[i] == &r->idle || qs[i]->timeout_ms)
			qs[i]->timeout_ms = grace_ms;
		for (e = qs[i]->head; e; e = e->tq_next) {
			/* The same deadline for all: the queue stays sorted. */
			if (e->deadline_ms > deadline)
				e->deadline_ms = deadline;
			evconn_stop(e); /* recv gets what is queued, then 0 */
		}
	}
}

static void uconn_expire_queue(struct evconn_tq *q, uint64_t now)
{
	struct evconn *e;

	while ((e = evconn_tq_expired(q, now))) {
		if (e->njobs) {
			/* Silent only because the pool computes for it. */
			evconn_tq_touch(q, e, now);
			continue;
		}
		evconn_abort(e);
		uconn_settle((struct uconn *)e);
	}
}

/* Requests that did not come whole in time: 408, or the ERR line. */
static void uconn_expire_headers(struct uconn_ring *r, uint64_t now)
{
	struct evconn *e;

	while ((e = evconn_tq_expired(&r->header, now))) {
		if (r->stopping)
			evconn_abort(e); /* its grace is over */
		else
			evconn_timeout(e);
		e->progress = false; /* its clock is now the idle one */
		evconn_tq_remove(e);
		uconn_settle((struct uconn *)e);
	}
}

void uconn_expire(struct uconn_ring *r)
{
	uint64_t now = uconn_now_ms();

	uconn_expire_queue(&r->idle, now);
	uconn_expire_headers(r, now);
	uconn_expire_queue(&r->linger, now);
}

int uconn_wait_ms(const struct uconn_ring *r)
{
	const struct evconn_tq *qs[] = {&r->idle, &r->header, &r->linger};
	uint64_t now = uconn_now_ms();
	int t = -1, u;

	for (unsigned i = 0; i < 3; i++) {
		u = evconn_tq_wait_ms(qs[i], now);
		if (u >= 0 && (t < 0 || u < t))
			t = u;
	}
	return t;
}

void uconn_free_all(struct uconn_ring *r)
{
	struct evconn_tq *qs[] = {&r->idle, &r->header, &r->linger,
				  &r->closing};
	struct uconn *c;

	for (unsigned i = 0; i < 4; i++) {
		while ((c = (struct uconn *)qs[i]->head)) {
			if (c->ev.state != EVCONN_CLOSED) {
				evconn_close(&c->ev);
				atomic_fetch_sub(r->nopen, 1);
			}
			uconn_free(c);
		}
	}
}
