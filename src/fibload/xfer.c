/* xfer - a connection's traffic: queue and write requests, read replies
 * and check each against the request it answers. */
#include "conn.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Writes what is queued. Returns 0, or -1 when c failed. */
int fl_conn_flush(struct fl_worker *w, struct fl_conn *c)
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
	if (fl_conn_watch(w, c, events) == 0)
		return 0;
out_fail:
	fl_conn_fail(w, c, FL_ERR_WRITE, fl_now());
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
	if (queued && fl_conn_flush(w, c))
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
		fl_conn_fail(w, c, FL_ERR_PROTOCOL, now);
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
		fl_conn_fail(w, c, FL_ERR_PROTOCOL, now);
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
		fl_conn_fail(w, c, FL_ERR_PROTOCOL, now);
		return -1;
	}
	memcpy(c->carry, p, rest);
	c->carry_len = rest;
	return 0;
}

/* Reads what has arrived (big chunks), checks it, sends what is next. */
void fl_conn_read(struct fl_worker *w, struct fl_conn *c)
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
			fl_conn_fail(w, c, FL_ERR_READ, fl_now());
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
