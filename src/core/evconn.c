#include "evconn.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

void evconn_cfg_init(struct evconn_cfg *cfg, const struct proto_limits *lim,
		     struct tpool *pool, unsigned workers)
{
	bool naive = lim->algo == FIB_NAIVE;

	*cfg = (struct evconn_cfg){
	    .lim = lim,
	    .pool = pool,
	    .mb = METRICS_BATCH_INIT,
	};
	cfg->inline_max_n =
	    naive ? EVCONN_INLINE_NAIVE_MAX_N : EVCONN_INLINE_FAST_MAX_N;
	cfg->inline_free_n =
	    naive ? EVCONN_INLINE_NAIVE_FREE_N : EVCONN_INLINE_FAST_FREE_N;
	if (cfg->inline_free_n > cfg->inline_max_n)
		cfg->inline_free_n = cfg->inline_max_n;
	/* Two per worker keeps every worker busy for one pipelining client,
	 * yet a second client's job waits behind few of the first's. */
	cfg->jobs_max = 2 * (workers ? workers : 1);
}

void evconn_init(struct evconn *c, int fd, struct evconn_cfg *cfg)
{
	*c = (struct evconn){
	    .fd = fd,
	    .state = EVCONN_OPEN,
	    .cfg = cfg,
	    .in = BUF_INIT,
	    .out = BUF_INIT,
	    .linger_ms = EVCONN_LINGER_MS,
	};
	metrics_conn_open();
}

/* Backpressure: may this connection take one more request now? */
bool evconn_can_take(const struct evconn *c)
{
	return c->state == EVCONN_OPEN && c->nslots < EVCONN_SLOTS_MAX &&
	       c->njobs < c->cfg->jobs_max &&
	       buf_used(&c->out) + c->held < EVCONN_OUT_MAX;
}

/* fib(n) where the driver says, counted in flight and in the latency. */
static void evconn_compute_timed(struct evconn_cfg *cfg, uint64_t n,
				 struct reply *r, uint64_t *t0)
{
	/* The batch's latency runs from before its first compute. */
	*t0 = cfg->mb.n ? 0 : metrics_now_ns();
	metrics_compute_begin();
	if (cfg->compute)
		cfg->compute(cfg->compute_ctx, cfg->lim, n, r);
	else
		proto_compute(cfg->lim, n, r);
	metrics_compute_end();
}

/*
 * The reply for a parsed request, computed here: x is its HTTP exchange, or
 * NULL for a fib/1 line.
 */
static inline void evconn_answer(struct evconn_cfg *cfg, enum proto_status st,
				 uint64_t n, bool cheap,
				 struct http_exchange *x, struct reply *r)
{
	uint64_t t0 = 0;

	if (x && x->route != HTTP_ROUTE_FIB) {
		http_body(cfg->lim, x, r); /* not a fib request */
		return;
	}
	if (st != PROTO_OK)
		proto_error_reply(cfg->lim, st, r);
	else if (!cfg->compute && cheap)
		proto_compute(cfg->lim, n, r);
	else
		evconn_compute_timed(cfg, n, r, &t0);
	metrics_batch_request(&cfg->mb, x ? METRICS_HTTP : METRICS_LINE,
			      metrics_result(st, r));
	if (t0)
		cfg->mb.t0 = t0;
}

/* Appends reply r to the output, framed as an HTTP response if it is one. */
static inline int evconn_emit(struct evconn *c, const struct http_resp *http,
			      const struct reply *r)
{
	if (!http->status)
		return buf_append(&c->out, r->text, r->len);
	metrics_batch_code(&c->cfg->mb, http_status(http, r));
	return http_append(&c->out, http, r);
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

/* How a fib/1 line is framed: status 0, as it is. */
static const struct http_resp evconn_line_resp;

/* A reply that exists now, behind requests still computing: a ready slot. */
static void evconn_put_behind(struct evconn *c, const struct http_resp *http,
			      struct reply *r)
{
	struct evconn_slot *s = evconn_slot_new(c);

	if (!s) {
		reply_release(r);
		c->state = EVCONN_DONE;
		return;
	}
	s->http = *http;
	s->r = *r;
	if (r->text == r->inline_buf)
		s->r.text = s->r.inline_buf; /* it points into its own struct */
	s->ready = true;
	c->held += s->r.len;
}

/*
 * Queues a reply that exists now, in order: straight into the output when
 * nothing is ahead of it, else into a ready slot behind the requests still
 * computing. Takes r over.
 */
static inline void evconn_put(struct evconn *c, const struct http_resp *http,
			      struct reply *r)
{
	if (c->head) {
		evconn_put_behind(c, http, r);
		return;
	}
	if (evconn_emit(c, http, r))
		c->state = EVCONN_DONE;
	reply_release(r);
}

/* Is this request cheap enough to answer on the loop, right now? */
static bool evconn_inline(struct evconn *c, enum proto_status st, uint64_t n)
{
	const struct evconn_cfg *cfg = c->cfg;

	if (st != PROTO_OK || !cfg->pool)
		return true;
	/* A loop that took the GIL would stall behind every fib in the pool:
	 * with the python engine, every fib goes to the pool (MODELS.md). */
	if (cfg->lim->engine == FIB_ENGINE_PYTHON)
		return false;
	if (n <= cfg->inline_free_n)
		return true;
	if (n > cfg->inline_max_n || !c->budget)
		return false;
	c->budget--;
	return true;
}

/*
 * Would answering this request here keep the driver from writing for a
 * while (a compute that is not cheap, on the driver's own thread) while
 * replies already wait in the output? A pipelining client would wait for
 * them behind it, so the core stops first (as a cap does) and the driver
 * sends them. With a pool the loop never computes long: it never stops.
 */
static inline bool evconn_send_first(const struct evconn *c, bool cheap)
{
	return !cheap && !c->cfg->pool && buf_used(&c->out);
}

/*
 * Gives one request its reply, in order. Errors and cheap requests are
 * answered here: straight into the output when nothing is ahead of them, or
 * into a ready slot behind the requests still computing. The rest go to
 * the pool in a slot of their own. x is the request's HTTP exchange (whose
 * st and n these are), or NULL for a fib/1 line. Returns false, having
 * done nothing, when the output must be sent first (evconn_send_first(),
 * unless last: the client's final request, answered at its EOF).
 */
static bool evconn_request(struct evconn *c, enum proto_status st, uint64_t n,
			   struct http_exchange *x, bool last)
{
	struct evconn_cfg *cfg = c->cfg;
	bool cheap = st != PROTO_OK || metrics_cheap(cfg->lim, n);
	struct evconn_slot *s;
	struct reply r;

	if (!last && evconn_send_first(c, cheap))
		return false;
	c->progress = true;
	if (evconn_inline(c, st, n)) {
		evconn_answer(cfg, st, n, cheap, x, &r);
		evconn_put(c, x ? &x->resp : &evconn_line_resp, &r);
		return true;
	}
	s = evconn_slot_new(c);
	if (!s) {
		c->state = EVCONN_DONE;
		return true;
	}
	if (x)
		s->http = x->resp; /* else status 0: a line (calloc) */
	s->lim = cfg->lim;
	s->n = n;
	s->t0 = metrics_job_begin();
	s->job.run = evconn_slot_run;
	s->job.cq = cfg->cq;
	c->njobs++;
	tpool_submit(cfg->pool, &s->job);
	return true;
}

/* A fib/1 line; false as evconn_request(). */
static bool evconn_line(struct evconn *c, const char *line, size_t len,
			bool last)
{
	enum proto_status st;
	uint64_t n = 0;

	st = proto_parse(c->cfg->lim, line, len, &n);
	return evconn_request(c, st, n, NULL, last);
}

/*
 * Decides the protocol once the first bytes tell it. False: wait. In read
 * framing the first read is a request: if it has not shown a method token
 * by its end, it is not HTTP.
 */
static bool evconn_sniff(struct evconn *c)
{
	int http;

	if (!buf_used(&c->in))
		return false;
	http = http_sniff(buf_head(&c->in), buf_used(&c->in));
	if (http == HTTP_SNIFF_MORE &&
	    c->cfg->lim->framing == PROTO_FRAMING_LINE)
		return false;
	c->mode = http == 1 ? EVCONN_HTTP : EVCONN_LINE;
	return true;
}

/*
 * Takes the next HTTP request as one slot. Returns 1, 0 when its head is
 * not complete yet, or -1 when the output must be sent first. A response that
 * closes the connection is its last: what follows is dropped, and the
 * connection closes politely once every reply is out (FAILING).
 */
static int evconn_http(struct evconn *c)
{
	struct http_exchange x;
	size_t used = http_next(c->cfg->lim, buf_head(&c->in), buf_used(&c->in),
				c->cfg->stopping, &x);

	if (!used)
		return 0;
	if (!evconn_request(c, x.st, x.n, &x, false))
		return -1;
	buf_consume(&c->in, used);
	if (x.resp.close && c->state == EVCONN_OPEN) {
		buf_consume(&c->in, buf_used(&c->in));
		c->state = EVCONN_FAILING;
	}
	return 1;
}

/*
 * Read framing: each read is one request, cut into max_line pieces when a
 * recv completion brought more. Reads that arrived while a cap held them
 * back have run together in the input: that is what read framing means.
 */
static bool evconn_parse_reads(struct evconn *c)
{
	const struct proto_limits *lim = c->cfg->lim;
	enum proto_status st;
	uint64_t n;
	size_t len;

	while (buf_used(&c->in)) {
		if (!evconn_can_take(c))
			return c->state == EVCONN_OPEN;
		len = buf_used(&c->in);
		len = len < lim->max_line ? len : lim->max_line;
		n = 0;
		st = proto_parse_read(lim, buf_head(&c->in), len, &n);
		if (!evconn_request(c, st, n, NULL, false))
			return true; /* send first, then take it again */
		buf_consume(&c->in, len);
	}
	return false;
}

/*
 * Takes every complete buffered line while the caps allow. Returns true
 * when it stopped because of a cap, with lines perhaps still buffered.
 */
static bool evconn_parse_lines(struct evconn *c)
{
	ssize_t len;

	for (;;) {
		if (!evconn_can_take(c))
			return c->state == EVCONN_OPEN;
		if (!buf_used(&c->in))
			return false; /* and maybe no storage: idle, it was
					 freed */
		len = proto_frame(buf_head(&c->in), buf_used(&c->in),
				  c->cfg->lim->max_line);
		if (len == 0)
			return false;
		if (len == PROTO_FRAME_TOO_LONG) {
			/* Framing is lost: answer, then close politely. */
			evconn_request(c, PROTO_LINE_TOO_LONG, 0, NULL, true);
			buf_consume(&c->in, buf_used(&c->in));
			if (c->state == EVCONN_OPEN)
				c->state = EVCONN_FAILING;
			return false;
		}
		if (!evconn_line(c, buf_head(&c->in), (size_t)len, false))
			return true; /* send first, then take it again */
		buf_consume(&c->in, (size_t)len);
	}
}

/* HTTP: every complete request while the caps allow, as evconn_parse(). */
static bool evconn_parse_http(struct evconn *c)
{
	for (;;) {
		if (!evconn_can_take(c))
			return c->state == EVCONN_OPEN;
		switch (evconn_http(c)) {
		case 0:
			return false;
		case -1:
			return true; /* send first, then take it again */
		}
	}
}

/*
 * Takes every complete buffered request while the caps allow, once the
 * first bytes have told the protocol. Returns true when it stopped because
 * of a cap, with requests perhaps still buffered.
 */
static bool evconn_parse(struct evconn *c)
{
	if (c->mode == EVCONN_SNIFF && !evconn_sniff(c))
		return false;
	if (c->mode == EVCONN_HTTP)
		return evconn_parse_http(c);
	if (c->cfg->lim->framing == PROTO_FRAMING_READ)
		return evconn_parse_reads(c);
	return evconn_parse_lines(c);
}

/* Moves finished replies from the head of the FIFO to the output. */
static void evconn_pack(struct evconn *c)
{
	struct evconn_slot *s;

	while ((s = c->head) && s->ready &&
	       buf_used(&c->out) < EVCONN_OUT_MAX) {
		if (evconn_emit(c, &s->http, &s->r)) {
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

bool evconn_take_more(struct evconn *c)
{
	bool capped = evconn_parse(c);

	if (c->head)
		evconn_pack(c);
	/* Counted before the client can see a reply and scrape. */
	metrics_batch_flush(&c->cfg->mb);
	return capped;
}

bool evconn_take(struct evconn *c)
{
	c->budget = EVCONN_INLINE_BUDGET;
	return evconn_take_more(c);
}

void evconn_eof(struct evconn *c)
{
	/* In read framing evconn_take() has answered every read by now, and
	 * nothing is ever partial. */
	if (buf_used(&c->in) && !c->cfg->stopping && c->mode != EVCONN_HTTP &&
	    c->cfg->lim->framing == PROTO_FRAMING_LINE)
		evconn_line(c, buf_head(&c->in), buf_used(&c->in), true);
	metrics_batch_flush(&c->cfg->mb);
	buf_consume(&c->in, buf_used(&c->in));
	if (c->state == EVCONN_OPEN)
		c->state = EVCONN_DRAINING;
}

struct evconn *evconn_job_ready(struct tpool_job *job)
{
	struct evconn_slot *s = (struct evconn_slot *)job;
	struct evconn *c = s->conn;

	c->njobs--;
	metrics_job_end(s->http.status ? METRICS_HTTP : METRICS_LINE,
			metrics_result(PROTO_OK, &s->r), s->t0);
	if (c->state == EVCONN_CLOSED) {
		reply_release(&s->r);
		free(s);
		return c;
	}
	s->ready = true;
	c->held += s->r.len;
	evconn_pack(c);
	/* Counted before the driver sends what the pack queued. */
	metrics_batch_flush(&c->cfg->mb);
	return c;
}

bool evconn_partial(const struct evconn *c)
{
	return buf_used(&c->in) && evconn_can_take(c);
}

/*
 * The last answer to a request that will not be served (busy: a shed, else
 * a timeout), after every reply owed before it; then the polite close.
 */
static void evconn_refuse(struct evconn *c, bool busy)
{
	struct http_exchange x;
	struct reply r;
	bool http = c->mode == EVCONN_HTTP ||
		    (c->mode == EVCONN_SNIFF &&
		     http_sniff(buf_head(&c->in), buf_used(&c->in)) != 0);

	if (c->state != EVCONN_OPEN)
		return;
	buf_consume(&c->in, buf_used(&c->in));
	if (http) {
		/* To an HTTP client a shed is a head that came too slowly. */
		http_timeout(&x);
		http_body(c->cfg->lim, &x, &r);
		evconn_put(c, &x.resp, &r);
	} else {
		if (busy)
			proto_error_reply(c->cfg->lim, PROTO_BUSY, &r);
		else
			reply_set(&r, PROTO_TIMEOUT_LINE,
				  sizeof(PROTO_TIMEOUT_LINE) - 1);
		evconn_put(c, &evconn_line_resp, &r);
	}
	metrics_batch_flush(&c->cfg->mb);
	if (c->state == EVCONN_OPEN)
		c->state = EVCONN_FAILING;
}

void evconn_timeout(struct evconn *c)
{
	evconn_refuse(c, false);
}

void evconn_shed(struct evconn *c)
{
	if (c->state != EVCONN_OPEN)
		return;
	evconn_refuse(c, true);
	c->linger_ms = 0;
	metrics_conn_rejected();
}

bool evconn_lingered(struct evconn *c, size_t n)
{
	c->lingered += n;
	if (c->lingered < EVCONN_LINGER_MAX)
		return true;
	c->state = EVCONN_DONE;
	return false;
}

void evconn_abort(struct evconn *c)
{
	if (c->state != EVCONN_CLOSED)
		c->state = EVCONN_DONE;
}

void evconn_release(struct evconn *c)
{
	struct evconn_slot *s, *next;

	metrics_conn_close();
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
}

void evconn_stop(struct evconn *c)
{
	if (c->state == EVCONN_OPEN)
		shutdown(c->fd, SHUT_RD);
}

bool evconn_close(struct evconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	evconn_release(c);
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
