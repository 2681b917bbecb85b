/* conn - a connection's life: connect, fail, retry, time out, give up. */
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
int fl_conn_watch(struct fl_worker *w, struct fl_conn *c, uint32_t events)
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
void fl_conn_fail(struct fl_worker *w, struct fl_conn *c, enum fl_err kind,
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
	fl_conn_fail(w, c, FL_ERR_CONNECT, now);
}

static void conn_ready(struct fl_worker *w, struct fl_conn *c, uint64_t now)
{
	int err = fl_conn_watch(w, c, EPOLLIN);

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
	err = fl_conn_watch(w, c, EPOLLOUT);
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

void fl_conn_event(struct fl_worker *w, struct fl_conn *c, uint32_t events)
{
	if (c->state == CONN_CONNECTING) {
		conn_on_connect(w, c);
		return;
	}
	if (c->state != CONN_READY)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		fl_conn_read(w, c);
	if (c->state == CONN_READY && (events & EPOLLOUT))
		fl_conn_flush(w, c);
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
		fl_conn_fail(w, c, FL_ERR_TIMEOUT, now);
		return conn_next(c);
	default:
		return UINT64_MAX;
	}
}

void fl_conn_finish(struct fl_worker *w, struct fl_conn *c, uint64_t now)
{
	uint64_t timeout = (uint64_t)w->sh->cfg->timeout_ms * 1000000ull;
	unsigned cap = w->sh->cfg->pipeline;

	if (c->state != CONN_READY)
		return;
	for (unsigned i = 0; i < c->inflight; i++)
		if (now - c->ring[(c->head + i) % cap].sent >= timeout)
			fl_count(w, FL_ERR_TIMEOUT, 1);
}
