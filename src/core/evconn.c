#include "evconn.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve.h"

/* An output buffer this large is given back once it empties. */
#define EVCONN_OUT_SHRINK (4 * EVCONN_OUT_MAX)

void evconn_cfg_init(struct evconn_cfg *cfg, const struct proto_limits *lim,
		     struct tpool *pool, unsigned workers)
{
	cfg->lim = lim;
	cfg->pool = pool;
	cfg->cq = NULL;
	bool naive = lim->algo == FIB_NAIVE;

	cfg->inline_max_n =
	    naive ? EVCONN_INLINE_NAIVE_MAX_N : EVCONN_INLINE_FAST_MAX_N;
	cfg->inline_free_n =
	    naive ? EVCONN_INLINE_NAIVE_FREE_N : EVCONN_INLINE_FAST_FREE_N;
	if (cfg->inline_free_n > cfg->inline_max_n)
		cfg->inline_free_n = cfg->inline_max_n;
	/* Two per worker keeps every worker busy for one pipelining client,
	 * yet a second client's job waits behind few of the first's. */
	cfg->jobs_max = 2 * (workers ? workers : 1);
	cfg->stopping = false;
}

void evconn_init(struct evconn *c, int fd, struct evconn_cfg *cfg)
{
	*c = (struct evconn){
	    .fd = fd,
	    .state = EVCONN_OPEN,
	    .cfg = cfg,
	    .in = BUF_INIT,
	    .out = BUF_INIT,
	};
}

/* OPEN, DRAINING or FAILING: replies are still owed to the client. */
static bool evconn_answering(const struct evconn *c)
{
	return c->state == EVCONN_OPEN || c->state == EVCONN_DRAINING ||
	       c->state == EVCONN_FAILING;
}

/* Backpressure: may this connection take one more request now? */
bool evconn_can_take(const struct evconn *c)
{
	return c->state == EVCONN_OPEN && c->nslots < EVCONN_SLOTS_MAX &&
	       c->njobs < c->cfg->jobs_max &&
	       buf_used(&c->out) + c->held < EVCONN_OUT_MAX;
}

/* The reply for a parsed request, computed here. */
static void evconn_answer(const struct proto_limits *lim, enum proto_status st,
			  uint64_t n, struct reply *r)
{
	if (st == PROTO_OK)
		proto_compute(lim, n, r);
	else
		proto_error_reply(lim, st, r);
}

/* Runs on a worker thread; touches nothing but the slot. */
static void evconn_slot_run(struct tpool_job *job)
{
	struct evconn_slot *s = (struct evconn_slot *)job;

	proto_compute(s->lim, s->n, &s->r);
}

/* Appends an empty slot to the reply FIFO, or NULL. */
static struct evconn_slot *evconn_slot_new(struct evconn *c)
{
	struct evconn_slot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->conn = c;
	if (c->tail)
		c->tail->next = s;
	else
		c->head = s;
	c->tail = s;
	c->nslots++;
	return s;
}

/* Is this request cheap enough to answer on the loop, right now? */
static bool evconn_inline(struct evconn *c, enum proto_status st, uint64_t n)
{
	const struct evconn_cfg *cfg = c->cfg;

	if (st != PROTO_OK || !cfg->pool || n <= cfg->inline_free_n)
		return true;
	if (n > cfg->inline_max_n || !c->budget)
		return false;
	c->budget--;
	return true;
}

/*
 * Gives one request its reply, in order. Errors and cheap requests are
 * answered here: straight into the output when nothing is ahead of them, or
 * into a ready slot behind the requests still computing. The rest go to
 * the pool in a slot of their own.
 */
static void evconn_request(struct evconn *c, enum proto_status st, uint64_t n)
{
	const struct evconn_cfg *cfg = c->cfg;
	bool here = evconn_inline(c, st, n);
	struct evconn_slot *s;
	struct reply r;

	c->progress = true;
	if (here && !c->head) {
		evconn_answer(cfg->lim, st, n, &r);
		if (buf_append(&c->out, r.text, r.len))
			c->state = EVCONN_DONE;
		reply_release(&r);
		return;
	}
	s = evconn_slot_new(c);
	if (!s) {
		c->state = EVCONN_DONE;
		return;
	}
	if (here) {
		evconn_answer(cfg->lim, st, n, &s->r);
		s->ready = true;
		c->held += s->r.len;
		return;
	}
	s->lim = cfg->lim;
	s->n = n;
	s->job.run = evconn_slot_run;
	s->job.cq = cfg->cq;
	c->njobs++;
	tpool_submit(cfg->pool, &s->job);
}

static void evconn_line(struct evconn *c, const char *line, size_t len)
{
	enum proto_status st;
	uint64_t n = 0;

	st = proto_parse(c->cfg->lim, line, len, &n);
	evconn_request(c, st, n);
}

/*
 * Takes every complete buffered line while the caps allow. Returns true
 * when it stopped because of a cap, with lines perhaps still buffered.
 */
static bool evconn_parse(struct evconn *c)
{
	ssize_t len;

	for (;;) {
		if (!evconn_can_take(c))
			return c->state == EVCONN_OPEN;
		len = proto_frame(buf_head(&c->in), buf_used(&c->in),
				  c->cfg->lim->max_line);
		if (len == 0)
			return false;
		if (len == PROTO_FRAME_TOO_LONG) {
			/* Framing is lost: answer, then close politely. */
			evconn_request(c, PROTO_LINE_TOO_LONG, 0);
			buf_consume(&c->in, buf_used(&c->in));
			if (c->state == EVCONN_OPEN)
				c->state = EVCONN_FAILING;
			return false;
		}
		evconn_line(c, buf_head(&c->in), (size_t)len);
		buf_consume(&c->in, (size_t)len);
	}
}

/* Moves finished replies from the head of the FIFO to the output. */
static void evconn_pack(struct evconn *c)
{
	struct evconn_slot *s;

	while ((s = c->head) && s->ready &&
	       buf_used(&c->out) < EVCONN_OUT_MAX) {
		if (buf_append(&c->out, s->r.text, s->r.len)) {
			c->state = EVCONN_DONE;
			return;
		}
		c->held -= s->r.len;
		c->head = s->next;
		if (!c->head)
			c->tail = NULL;
		c->nslots--;
		reply_release(&s->r);
		free(s);
	}
}

bool evconn_take(struct evconn *c)
{
	bool capped;

	c->budget = EVCONN_INLINE_BUDGET;
	capped = evconn_parse(c);
	evconn_pack(c);
	return capped;
}

/* Writes until the output is empty or the socket is full. 0 or -errno. */
static int evconn_write(struct evconn *c)
{
	ssize_t n;

	while (buf_used(&c->out)) {
		n = send(c->fd, buf_head(&c->out), buf_used(&c->out),
			 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		buf_consume(&c->out, (size_t)n);
		c->progress = true;
	}
	if (c->out.cap > EVCONN_OUT_SHRINK)
		buf_free(&c->out); /* after a huge reply */
	return 0;
}

/* Parse, pack, write until nothing moves; then take the next state. */
static void evconn_advance(struct evconn *c)
{
	bool capped;

	c->budget = EVCONN_INLINE_BUDGET;
	do {
		capped = evconn_parse(c);
		evconn_pack(c);
		if (c->state == EVCONN_DONE || evconn_write(c) < 0) {
			c->state = EVCONN_DONE;
			return;
		}
	} while (capped && evconn_can_take(c));
	if (c->head || buf_used(&c->out))
		return;
	if (c->state == EVCONN_DRAINING) {
		c->state = EVCONN_DONE;
	} else if (c->state == EVCONN_FAILING) {
		shutdown(c->fd, SHUT_WR);
		c->state = EVCONN_LINGER;
	}
}

/*
 * The client sent its last byte. A final line without '\n' is still a
 * request (printf 30 | nc) unless a stop shut the read side: then it may be
 * the front half of a longer line, and is dropped (as serve_blocking does).
 */
void evconn_eof(struct evconn *c)
{
	if (buf_used(&c->in) && !c->cfg->stopping)
		evconn_line(c, buf_head(&c->in), buf_used(&c->in));
	buf_consume(&c->in, buf_used(&c->in));
	if (c->state == EVCONN_OPEN)
		c->state = EVCONN_DRAINING;
}

/* LINGER: drop input until EOF or the cap; the loop enforces the time. */
static void evconn_linger(struct evconn *c)
{
	char sink[4096];
	ssize_t n = read(c->fd, sink, sizeof(sink));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		c->lingered += (size_t)n;
	if (n <= 0 || c->lingered >= SERVE_LINGER_MAX)
		c->state = EVCONN_DONE;
}

void evconn_on_readable(struct evconn *c)
{
	ssize_t n;

	if (c->state == EVCONN_LINGER) {
		evconn_linger(c);
		return;
	}
	if (!evconn_can_take(c))
		return; /* paused: epoll only reported an error or hang-up */
	if (buf_reserve(&c->in, EVCONN_READ_CHUNK)) {
		c->state = EVCONN_DONE;
		return;
	}
	n = read(c->fd, c->in.data + c->in.len, EVCONN_READ_CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		c->state = EVCONN_DONE; /* reset: nobody to answer */
		return;
	}
	c->in.len += (size_t)n;
	if (n == 0)
		evconn_eof(c);
	evconn_advance(c);
}

void evconn_on_writable(struct evconn *c)
{
	if (evconn_answering(c))
		evconn_advance(c);
}

struct evconn *evconn_job_ready(struct tpool_job *job)
{
	struct evconn_slot *s = (struct evconn_slot *)job;
	struct evconn *c = s->conn;

	c->njobs--;
	if (c->state == EVCONN_CLOSED) {
		reply_release(&s->r);
		free(s);
		return c;
	}
	s->ready = true;
	c->held += s->r.len;
	evconn_pack(c);
	return c;
}

struct evconn *evconn_job_done(struct tpool_job *job)
{
	struct evconn *c = evconn_job_ready(job);

	if (evconn_answering(c))
		evconn_advance(c);
	return c;
}

void evconn_stop(struct evconn *c)
{
	if (c->state == EVCONN_OPEN)
		shutdown(c->fd, SHUT_RD);
}

unsigned evconn_events(const struct evconn *c)
{
	unsigned ev = buf_used(&c->out) ? EPOLLOUT : 0;

	switch (c->state) {
	case EVCONN_OPEN:
		return ev | (evconn_can_take(c) ? EPOLLIN : 0);
	case EVCONN_DRAINING:
	case EVCONN_FAILING:
		return ev;
	case EVCONN_LINGER:
		return EPOLLIN;
	default:
		return 0;
	}
}

void evconn_abort(struct evconn *c)
{
	if (c->state != EVCONN_CLOSED)
		c->state = EVCONN_DONE;
}

bool evconn_close(struct evconn *c)
{
	struct evconn_slot *s, *next;

	close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
	buf_free(&c->out);
	/* Finished slots go now; those in the pool when they come back. */
	for (s = c->head; s; s = next) {
		next = s->next;
		if (s->ready) {
			reply_release(&s->r);
			free(s);
		}
	}
	c->head = c->tail = NULL;
	c->nslots = 0;
	c->held = 0;
	c->state = EVCONN_CLOSED;
	return c->njobs == 0;
}

void evconn_tq_remove(struct evconn *c)
{
	struct evconn_tq *q = c->tq;

	if (!q)
		return;
	if (c->tq_prev)
		c->tq_prev->tq_next = c->tq_next;
	else
		q->head = c->tq_next;
	if (c->tq_next)
		c->tq_next->tq_prev = c->tq_prev;
	else
		q->tail = c->tq_prev;
	c->tq = NULL;
	c->tq_prev = c->tq_next = NULL;
}

void evconn_tq_touch(struct evconn_tq *q, struct evconn *c, uint64_t now_ms)
{
	evconn_tq_remove(c);
	c->deadline_ms = q->timeout_ms ? now_ms + q->timeout_ms : UINT64_MAX;
	c->tq = q;
	c->tq_prev = q->tail;
	if (q->tail)
		q->tail->tq_next = c;
	else
		q->head = c;
	q->tail = c;
}

int evconn_tq_wait_ms(const struct evconn_tq *q, uint64_t now_ms)
{
	uint64_t d;

	if (!q->head || q->head->deadline_ms == UINT64_MAX)
		return -1;
	d = q->head->deadline_ms;
	if (d <= now_ms)
		return 0;
	return d - now_ms > INT32_MAX ? INT32_MAX : (int)(d - now_ms);
}

struct evconn *evconn_tq_expired(const struct evconn_tq *q, uint64_t now_ms)
{
	struct evconn *c = q->head;

	return c && c->deadline_ms <= now_ms ? c : NULL;
}
