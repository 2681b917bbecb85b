/* conn - connect, write requests, read and check replies, fail and retry. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/net.h"

int fl_conn_init(struct fl_conn *c, struct fl_worker *w, unsigned idx)
{
	const struct fl_config *cfg = w->sh->cfg;
	const struct fl_work *work = w->sh->work;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->idx = idx;
	c->rng = 0x9e3779b97f4a7c15ull * (idx + 1);
	c->ring = calloc(cfg->pipeline, sizeof(c->ring[0]));
	c->out = malloc((size_t)cfg->pipeline * work->max_req);
	c->carry = malloc(work->max_line + 1);
	if (!c->ring || !c->out || !c->carry)
		return -ENOMEM;
	return 0;
}

void fl_conn_release(struct fl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->ring);
	free(c->out);
	free(c->carry);
	c->ring = NULL;
	c->out = c->carry = NULL;
}

/* Registers (or changes) the events c waits for. */
static int conn_watch(struct fl_worker *w, struct fl_conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	int op = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (events == c->events)
		return 0;
	if (epoll_ctl(w->epfd, op, c->fd, &ev) < 0)
		return -errno;
	c->events = events;
	return 0;
}

/* Drops requests in flight; -n tickets they held are settled. */
static void conn_drop_inflight(struct fl_worker *w, struct fl_conn *c,
			       uint64_t now)
{
	unsigned cap = w->sh->cfg->pipeline;

	for (unsigned i = 0; i < c->inflight; i++) {
		if (c->ring[(c->head + i) % cap].ticket) {
			w->ticketed--;
			w->last_done = now;
		}
	}
	c->head = c->inflight = 0;
	c->out_off = c->out_len = c->carry_len = 0;
}

/* Counts the error, closes, and schedules a reconnect (or gives up). */
static void conn_fail(struct fl_worker *w, struct fl_conn *c, enum fl_err kind,
		      uint64_t now)
{
	uint64_t timeout = (uint64_t)w->sh->cfg->timeout_ms * 1000000ull;

	fl_count(w, kind, kind == FL_ERR_TIMEOUT ? c->inflight : 1);
	conn_drop_inflight(w, c, now);
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->events = 0;
	c->state = CONN_CLOSED;
	if (!c->failing) {
		c->failing = now;
	} else if (now - c->failing >= timeout) {
		c->state = CONN_DEAD;
		w->live--;
		return;
	}
	c->retry_at = kind == FL_ERR_CONNECT ? now + FL_RECONNECT_NS : now;
	if (c->retry_at < w->next_scan)
		w->next_scan = c->retry_at;
}

static void conn_connect_failed(struct fl_worker *w, struct fl_conn *c, int err,
				uint64_t now)
{
	int none = 0;

	atomic_compare_exchange_strong(&w->sh->first_err, &none, err);
	conn_fail(w, c, FL_ERR_CONNECT, now);
}

static void conn_ready(struct fl_worker *w, struct fl_conn *c, uint64_t now)
{
	int err = conn_watch(w, c, EPOLLIN);

	if (err) {
		conn_connect_failed(w, c, err, now);
		return;
	}
	c->state = CONN_READY;
	if (w->running)
		fl_conn_fill(w, c, now);
}

void fl_conn_connect(struct fl_worker *w, struct fl_conn *c, uint64_t now)
{
	const struct fl_shared *sh = w->sh;
	int err;

	c->fd = socket(sh->addr.ss_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_connect_failed(w, c, -errno, now);
		return;
	}
	net_nodelay(c->fd);
	c->since = now;
	if (connect(c->fd, (const struct sockaddr *)&sh->addr, sh->addr_len) ==
	    0) {
		conn_ready(w, c, now);
		return;
	}
	if (errno != EINPROGRESS) {
		conn_connect_failed(w, c, -errno, now);
		return;
	}
	c->state = CONN_CONNECTING;
	err = conn_watch(w, c, EPOLLOUT);
	if (err)
		conn_connect_failed(w, c, err, now);
}

/* The connect() under way has finished, one way or the other. */
static void conn_on_connect(struct fl_worker *w, struct fl_conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	uint64_t now = fl_now();

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		conn_connect_failed(w, c, -err, now);
	else
		conn_ready(w, c, now);
}

/* Writes what is queued. Returns 0, or -1 when c failed. */
static int conn_flush(struct fl_worker *w, struct fl_conn *c)
{
	uint32_t events = EPOLLIN;
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			events |=
			    EPOLLOUT; /* the rest goes when there is room */
			break;
		}
		goto out_fail;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (conn_watch(w, c, events) == 0)
		return 0;
out_fail:
	conn_fail(w, c, FL_ERR_WRITE, fl_now());
	return -1;
}

static uint64_t conn_rand(struct fl_conn *c)
{
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545f4914f6cdd1dull;
}

/* Puts one request in flight: a ring slot and its bytes in c->out. */
static void conn_push(struct fl_worker *w, struct fl_conn *c, uint64_t intended,
		      uint64_t now, uint32_t ticket)
{
	const struct fl_work *work = w->sh->work;
	unsigned cap = w->sh->cfg->pipeline;
	unsigned tail = c->head + c->inflight;
	struct fl_slot *s = &c->ring[tail >= cap ? tail - cap : tail];
	const struct fl_item *it;

	s->intended = intended;
	s->sent = now;
	s->item = fl_work_pick(work, conn_rand(c));
	s->ticket = ticket;
	it = &work->items[s->item];
	memcpy(c->out + c->out_len, it->req, it->req_len);
	c->out_len += it->req_len;
	c->inflight++;
	w->ticketed += ticket;
}

/* Closed loop: a whole batch of -P once the last one is answered. */
static unsigned conn_queue_batch(struct fl_worker *w, struct fl_conn *c,
				 uint64_t now)
{
	struct fl_shared *sh = w->sh;
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
		conn_push(w, c, now, now, ticket);
	return want;
}

/* Open loop: every request whose intended time has come, -P at most in
 * flight. Connection i of C sends requests i, i + C, i + 2C, ... of the
 * global schedule, one every period_ns. */
static unsigned conn_queue_paced(struct fl_worker *w, struct fl_conn *c,
				 uint64_t now)
{
	struct fl_shared *sh = w->sh;
	unsigned n = 0;
	uint32_t ticket;

	while (c->inflight < sh->cfg->pipeline && c->due <= now) {
		ticket = sh->cfg->requests && c->due >= sh->warm_end;
		if (ticket && !fl_claim(sh, 1)) {
			c->exhausted = 1;
			break;
		}
		conn_push(w, c, c->due, now, ticket);
		n++;
		c->seq++;
		c->due = sh->t0 +
			 (uint64_t)((double)(c->seq * sh->cfg->conns + c->idx) *
				    sh->period_ns);
	}
	return n;
}

void fl_conn_fill(struct fl_worker *w, struct fl_conn *c, uint64_t now)
{
	unsigned queued;

	if (c->state != CONN_READY || c->exhausted)
		return;
	if (c->out_off) { /* keep the unsent bytes at the front */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (w->sh->cfg->rate > 0)
		queued = conn_queue_paced(w, c, now);
	else
		queued = conn_queue_batch(w, c, now);
	if (queued && conn_flush(w, c))
		return;
	/* --rate: tell the loop when this connection's next request is due */
	if (w->sh->cfg->rate > 0 && !c->exhausted &&
	    c->inflight < w->sh->cfg->pipeline && c->due < w->next_due)
		w->next_due = c->due;
}

/* A good reply: counted when measured, and in the progress figures. */
static void conn_record(struct fl_worker *w, const struct fl_slot *s,
			uint64_t now)
{
	const struct fl_shared *sh = w->sh;
	uint64_t lat = now - s->intended;
	int measured = sh->cfg->requests ? (int)s->ticket
					 : now >= sh->warm_end && now < sh->end;

	if (measured) {
		w->requests++;
		hist_record(w->lat, lat);
		if (w->raw)
			hist_record(w->raw, now - s->sent);
	}
	if (w->sec) {
		fl_worker_tick(w, now);
		hist_record(w->sec, lat);
		w->sec_requests++;
	}
}

/* Matches one reply line with the oldest request. -1 when c failed. */
static int conn_reply(struct fl_worker *w, struct fl_conn *c, const char *line,
		      size_t len, uint64_t now)
{
	struct fl_slot s;

	if (!c->inflight) { /* a reply to nothing */
		conn_fail(w, c, FL_ERR_PROTOCOL, now);
		return -1;
	}
	s = c->ring[c->head];
	if (++c->head == w->sh->cfg->pipeline)
		c->head = 0;
	c->inflight--;
	if (s.ticket) {
		w->ticketed--;
		w->last_done = now;
	}
	switch (fl_work_check(w->sh->work, s.item, line, len)) {
	case FL_REPLY_OK:
		c->failing = 0;
		conn_record(w, &s, now);
		return 0;
	case FL_REPLY_WRONG:
		fl_count(w, FL_ERR_WRONG, 1);
		return 0;
	default:
		conn_fail(w, c, FL_ERR_PROTOCOL, now);
		return -1;
	}
}

/* Handles every whole line in buf[0..len); keeps the partial rest. */
static int conn_lines(struct fl_worker *w, struct fl_conn *c, char *buf,
		      size_t len, uint64_t now)
{
	char *p = buf, *end = buf + len, *nl;
	size_t rest;

	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (conn_reply(w, c, p, (size_t)(nl - p), now))
			return -1;
		p = nl + 1;
	}
	rest = (size_t)(end - p);
	if (rest > w->sh->work->max_line) { /* no reply is that long */
		conn_fail(w, c, FL_ERR_PROTOCOL, now);
		return -1;
	}
	memcpy(c->carry, p, rest);
	c->carry_len = rest;
	return 0;
}

/* Reads what has arrived (big chunks), checks it, sends what is next. */
static void conn_read(struct fl_worker *w, struct fl_conn *c)
{
	char *buf = w->rbuf;
	size_t have, room;
	uint64_t now = 0;
	ssize_t n;

	for (;;) {
		have = c->carry_len;
		room = w->rbuf_cap - have;
		if (have)
			memcpy(buf, c->carry, have);
		n = read(c->fd, buf + have, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* an error, or the server hung up */
			conn_fail(w, c, FL_ERR_READ, fl_now());
			return;
		}
		now = fl_now();
		if (conn_lines(w, c, buf, have + (size_t)n, now))
			return;
		if ((size_t)n < room)
			break;
	}
	if (now)
		fl_conn_fill(w, c, now);
}

void fl_conn_event(struct fl_worker *w, struct fl_conn *c, uint32_t events)
{
	if (c->state == CONN_CONNECTING) {
		conn_on_connect(w, c);
		return;
	}
	if (c->state != CONN_READY)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(w, c);
	if (c->state == CONN_READY && (events & EPOLLOUT))
		conn_flush(w, c);
}

/* When c next needs a look, after a failure just handled. */
static uint64_t conn_next(const struct fl_conn *c)
{
	return c->state == CONN_CLOSED ? c->retry_at : UINT64_MAX;
}

uint64_t fl_conn_scan(struct fl_worker *w, struct fl_conn *c, uint64_t now)
{
	uint64_t timeout = (uint64_t)w->sh->cfg->timeout_ms * 1000000ull;
	uint64_t oldest;

	switch (c->state) {
	case CONN_CLOSED:
		if (now < c->retry_at)
			return c->retry_at;
		fl_conn_connect(w, c, now);
		return c->state == CONN_CLOSED ? c->retry_at
					       : fl_conn_scan(w, c, now);
	case CONN_CONNECTING:
		if (now - c->since < timeout)
			return c->since + timeout;
		conn_connect_failed(w, c, -ETIMEDOUT, now);
		return conn_next(c);
	case CONN_READY:
		if (!c->inflight)
			return UINT64_MAX;
		oldest = c->ring[c->head].sent;
		if (now - oldest < timeout)
			return oldest + timeout;
		conn_fail(w, c, FL_ERR_TIMEOUT, now);
		return conn_next(c);
	default:
		return UINT64_MAX;
	}
}
