/* conn - one connection's protocol state (see conn.h). */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "core/net.h"

int fl_conn_init(struct fl_conn *c, const struct fl_shared *sh, unsigned idx)
{
	const struct fl_config *cfg = sh->cfg;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->idx = idx;
	c->port = idx % cfg->nports;
	c->rng = 0x9e3779b97f4a7c15ull * (idx + 1);
	c->ring = calloc(cfg->pipeline, sizeof(c->ring[0]));
	if (!c->ring)
		return -ENOMEM;
	return fl_xfer_init(&c->x, (size_t)cfg->pipeline * sh->work->max_req,
			    sh->work->max_line);
}

void fl_conn_release(struct fl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->ring);
	c->ring = NULL;
	fl_xfer_release(&c->x);
}

static uint64_t conn_timeout_ns(const struct fl_conn_ctx *x)
{
	return (uint64_t)x->sh->cfg->timeout_ms * FL_MS_NS;
}

/* Registers (or changes) the events c waits for. 0 or -errno. */
static int conn_watch(struct fl_conn_ctx *x, struct fl_conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	int op = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (events == c->events)
		return 0;
	if (epoll_ctl(x->epfd, op, c->fd, &ev) < 0)
		return -errno;
	c->events = events;
	return 0;
}

/* Settles one request that leaves the ring: its -r ticket, if any. */
static void conn_settle(struct fl_conn_ctx *x, const struct fl_slot *s,
			uint64_t now)
{
	if (s->ticket) {
		x->st->ticketed--;
		x->st->last_done = now;
	}
}

/* Drops requests in flight and whatever bytes are buffered. */
static void conn_drop_inflight(struct fl_conn_ctx *x, struct fl_conn *c,
			       uint64_t now)
{
	unsigned cap = x->sh->cfg->pipeline;

	for (unsigned i = 0; i < c->inflight; i++)
		conn_settle(x, &c->ring[(c->head + i) % cap], now);
	c->head = c->inflight = 0;
	fl_xfer_reset(&c->x);
}

/* Counts an error of kind (a timeout once per request in flight), closes
 * c, and schedules a reconnect, or gives c up (CONN_DEAD). */
static void conn_fail(struct fl_conn_ctx *x, struct fl_conn *c,
		      enum fl_err kind, uint64_t now)
{
	fl_stats_count(x->st, kind, kind == FL_ERR_TIMEOUT ? c->inflight : 1);
	conn_drop_inflight(x, c, now);
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->events = 0;
	c->state = CONN_CLOSED;
	if (!c->failing) {
		c->failing = now;
	} else if (now - c->failing >= conn_timeout_ns(x)) {
		c->state = CONN_DEAD;
		x->live--;
		return;
	}
	c->retry_at = kind == FL_ERR_CONNECT ? now + FL_RECONNECT_NS : now;
	if (c->retry_at < x->next_scan)
		x->next_scan = c->retry_at;
}

static void conn_connect_failed(struct fl_conn_ctx *x, struct fl_conn *c,
				int err, uint64_t now)
{
	int none = 0;

	atomic_compare_exchange_strong(&x->sh->first_err, &none, err);
	conn_fail(x, c, FL_ERR_CONNECT, now);
}

static void conn_ready(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now)
{
	int err = conn_watch(x, c, EPOLLIN);

	if (err) {
		conn_connect_failed(x, c, err, now);
		return;
	}
	c->state = CONN_READY;
	c->ever_ready = 1;
	if (x->running)
		fl_conn_fill(x, c, now);
}

void fl_conn_connect(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now)
{
	const struct fl_shared *sh = x->sh;
	const struct sockaddr *addr =
	    (const struct sockaddr *)&sh->addr[c->port];
	int err;

	c->fd = socket(addr->sa_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_connect_failed(x, c, -errno, now);
		return;
	}
	net_nodelay(c->fd);
	c->since = now;
	if (connect(c->fd, addr, sh->addr_len) == 0) {
		conn_ready(x, c, now);
		return;
	}
	if (errno != EINPROGRESS) {
		conn_connect_failed(x, c, -errno, now);
		return;
	}
	c->state = CONN_CONNECTING;
	err = conn_watch(x, c, EPOLLOUT);
	if (err)
		conn_connect_failed(x, c, err, now);
}

/* The connect() under way has finished, one way or the other. */
static void conn_on_connect(struct fl_conn_ctx *x, struct fl_conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	uint64_t now = fl_now();

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		conn_connect_failed(x, c, -err, now);
	else
		conn_ready(x, c, now);
}

/* Writes what is queued. Returns 0, or -1 when c failed. */
static int conn_flush(struct fl_conn_ctx *x, struct fl_conn *c)
{
	int err = fl_xfer_flush(&c->x, c->fd);

	if (err == 0 || err == -EAGAIN)
		err = conn_watch(x, c, err ? EPOLLIN | EPOLLOUT : EPOLLIN);
	if (!err)
		return 0;
	conn_fail(x, c, FL_ERR_WRITE, fl_now());
	return -1;
}

static uint64_t conn_rand(struct fl_conn *c)
{
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545f4914f6cdd1dull;
}

/* Puts one request in flight: a ring slot and its bytes queued. */
static void conn_push(struct fl_conn_ctx *x, struct fl_conn *c,
		      uint64_t intended, uint64_t now, uint32_t ticket)
{
	const struct fl_work *work = x->sh->work;
	unsigned cap = x->sh->cfg->pipeline;
	unsigned tail = c->head + c->inflight;
	struct fl_slot *s = &c->ring[tail >= cap ? tail - cap : tail];
	const struct fl_item *it;

	s->intended = intended;
	s->sent = now;
	s->item = fl_work_pick(work, conn_rand(c));
	s->ticket = ticket;
	it = &work->items[s->item];
	fl_xfer_queue(&c->x, it->req, it->req_len);
	c->inflight++;
	if (!c->first_sent)
		c->first_sent = now;
	x->st->ticketed += ticket;
}

/* Closed loop: a whole batch of -P once the last one is answered. */
static unsigned conn_queue_batch(struct fl_conn_ctx *x, struct fl_conn *c,
				 uint64_t now)
{
	struct fl_shared *sh = x->sh;
	unsigned want = sh->cfg->pipeline;
	uint32_t ticket = 0;

	if (c->inflight || c->exhausted)
		return 0;
	if (sh->cfg->requests && now >= sh->warm_end) {
		want = fl_claim(sh, want);
		ticket = 1;
		c->exhausted = !want;
	}
	for (unsigned i = 0; i < want; i++)
		conn_push(x, c, now, now, ticket);
	return want;
}

/* Open loop: every request whose intended time has come (sched.h), -P at
 * most in flight. */
static unsigned conn_queue_paced(struct fl_conn_ctx *x, struct fl_conn *c,
				 uint64_t now)
{
	struct fl_shared *sh = x->sh;
	uint64_t due = sh->t0 + fl_sched_due(&c->sched);
	unsigned n = 0;
	uint32_t ticket;

	while (c->inflight < sh->cfg->pipeline && due <= now) {
		ticket = sh->cfg->requests && due >= sh->warm_end;
		if (ticket && !fl_claim(sh, 1)) {
			c->exhausted = 1;
			break;
		}
		conn_push(x, c, due, now, ticket);
		n++;
		fl_sched_advance(&c->sched);
		due = sh->t0 + fl_sched_due(&c->sched);
	}
	return n;
}

void fl_conn_fill(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now)
{
	const struct fl_config *cfg = x->sh->cfg;
	unsigned queued;
	uint64_t due;

	if (c->state != CONN_READY || c->exhausted)
		return;
	fl_xfer_compact(&c->x);
	if (cfg->rate > 0)
		queued = conn_queue_paced(x, c, now);
	else
		queued = conn_queue_batch(x, c, now);
	if (queued && conn_flush(x, c))
		return;
	if (cfg->rate <= 0 || c->exhausted || c->inflight >= cfg->pipeline)
		return;
	/* --rate: tell the loop when this connection's next request is due */
	due = x->sh->t0 + fl_sched_due(&c->sched);
	if (due < x->next_due)
		x->next_due = due;
}

void fl_conn_start(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now)
{
	const struct fl_config *cfg = x->sh->cfg;

	if (cfg->rate > 0)
		fl_sched_init(&c->sched, cfg->arrivals, cfg->rate, cfg->conns,
			      c->idx, cfg->seed);
	fl_conn_fill(x, c, now);
}

/* A good reply: counted when measured, and in the progress figures. */
static void conn_record(struct fl_conn_ctx *x, const struct fl_slot *s,
			uint64_t now)
{
	const struct fl_shared *sh = x->sh;
	int measured = sh->cfg->requests ? (int)s->ticket
					 : now >= sh->warm_end && now < sh->end;

	fl_stats_reply(x->st, measured, now - s->intended, now - s->sent, now);
}

/* Matches one reply line with the oldest request. -1 when c failed. */
static int conn_reply(struct fl_conn_ctx *x, struct fl_conn *c,
		      const char *line, size_t len, uint64_t now)
{
	struct fl_slot s;

	if (!c->inflight) { /* a reply to nothing */
		conn_fail(x, c, FL_ERR_PROTOCOL, now);
		return -1;
	}
	s = c->ring[c->head];
	if (++c->head == x->sh->cfg->pipeline)
		c->head = 0;
	c->inflight--;
	c->last_reply = now;
	conn_settle(x, &s, now);
	switch (fl_work_check(x->sh->work, s.item, line, len)) {
	case FL_REPLY_OK:
		c->failing = 0;
		conn_record(x, &s, now);
		return 0;
	case FL_REPLY_WRONG:
		fl_stats_count(x->st, FL_ERR_WRONG, 1);
		if (len >= 4 && !memcmp(line, "ERR ", 4))
			fl_errtexts_add(
			    &x->st->errtexts, line,
			    len && line[len - 1] == '\r' ? len - 1 : len, 1);
		return 0;
	default:
		conn_fail(x, c, FL_ERR_PROTOCOL, now);
		return -1;
	}
}

/* Handles every whole line in buf[0..len); keeps the partial rest. */
static int conn_lines(struct fl_conn_ctx *x, struct fl_conn *c, char *buf,
		      size_t len, uint64_t now)
{
	char *p = buf, *end = buf + len, *nl;

	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (conn_reply(x, c, p, (size_t)(nl - p), now))
			return -1;
		p = nl + 1;
	}
	if (fl_xfer_keep(&c->x, p, (size_t)(end - p))) {
		conn_fail(x, c, FL_ERR_PROTOCOL, now); /* no reply so long */
		return -1;
	}
	return 0;
}

/* Reads what has arrived (big chunks), checks it, sends what is next. */
static void conn_read(struct fl_conn_ctx *x, struct fl_conn *c)
{
	uint64_t now = 0;
	ssize_t n;
	int full;

	do {
		n = fl_xfer_read(&c->x, c->fd, x->rbuf, x->rbuf_cap, &full);
		if (n == -EAGAIN)
			break;
		if (n <= 0) { /* an error, or the server hung up */
			conn_fail(x, c, FL_ERR_READ, fl_now());
			return;
		}
		now = fl_now();
		if (conn_lines(x, c, x->rbuf, (size_t)n, now))
			return;
	} while (full);
	if (now)
		fl_conn_fill(x, c, now);
}

void fl_conn_event(struct fl_conn_ctx *x, struct fl_conn *c, uint32_t events)
{
	if (c->state == CONN_CONNECTING) {
		conn_on_connect(x, c);
		return;
	}
	if (c->state != CONN_READY)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(x, c);
	if (c->state == CONN_READY && (events & EPOLLOUT))
		conn_flush(x, c);
}

/* When c next needs a look, after a failure just handled. */
static uint64_t conn_next(const struct fl_conn *c)
{
	return c->state == CONN_CLOSED ? c->retry_at : UINT64_MAX;
}

uint64_t fl_conn_scan(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now)
{
	uint64_t timeout = conn_timeout_ns(x);
	uint64_t oldest;

	switch (c->state) {
	case CONN_CLOSED:
		if (now < c->retry_at)
			return c->retry_at;
		fl_conn_connect(x, c, now);
		return c->state == CONN_CLOSED ? c->retry_at
					       : fl_conn_scan(x, c, now);
	case CONN_CONNECTING:
		if (now - c->since < timeout)
			return c->since + timeout;
		conn_connect_failed(x, c, -ETIMEDOUT, now);
		return conn_next(c);
	case CONN_READY:
		if (!c->inflight)
			return UINT64_MAX;
		oldest = c->ring[c->head].sent;
		if (now - oldest < timeout)
			return oldest + timeout;
		conn_fail(x, c, FL_ERR_TIMEOUT, now);
		return conn_next(c);
	default:
		return UINT64_MAX;
	}
}

int fl_conn_unanswered(const struct fl_conn *c, uint64_t last_reply)
{
	if (c->last_reply)
		return 0;
	if (!c->ever_ready)
		return 1;
	return c->first_sent && (!last_reply || c->first_sent < last_reply);
}

void fl_conn_finish(struct fl_conn_ctx *x, struct fl_conn *c, uint64_t now)
{
	uint64_t timeout = conn_timeout_ns(x);
	unsigned cap = x->sh->cfg->pipeline;

	if (c->state != CONN_READY)
		return;
	for (unsigned i = 0; i < c->inflight; i++)
		if (now - c->ring[(c->head + i) % cap].sent >= timeout)
			fl_stats_count(x->st, FL_ERR_TIMEOUT, 1);
}
