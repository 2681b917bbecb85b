/*
 * The epoll half of evconn (see evconn.h): a non-blocking socket read and
 * written when src/core/evloop.c's epoll says it is ready, over the I/O-free
 * request core in evconn.c.
 */
#include "evconn.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* OPEN, DRAINING or FAILING: replies are still owed to the client. */
static bool evconn_answering(const struct evconn *c)
{
	return c->state == EVCONN_OPEN || c->state == EVCONN_DRAINING ||
	       c->state == EVCONN_FAILING;
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
	buf_free(&c->out); /* empty: idle connections hold no buffer */
	return 0;
}

/* Take, write until nothing moves; then take the next state. */
static void evconn_advance(struct evconn *c)
{
	bool capped = evconn_take(c);

	for (;;) {
		if (c->state == EVCONN_DONE || evconn_write(c) < 0) {
			c->state = EVCONN_DONE;
			return;
		}
		if (!capped || !evconn_can_take(c))
			break;
		capped = evconn_take_more(c);
	}
	if (c->head || buf_used(&c->out))
		return;
	if (c->state == EVCONN_DRAINING) {
		c->state = EVCONN_DONE;
	} else if (c->state == EVCONN_FAILING) {
		shutdown(c->fd, SHUT_WR);
		c->state = EVCONN_LINGER;
	}
}

/* LINGER: drop input until EOF or the cap; the loop enforces the time. */
static void evconn_linger(struct evconn *c)
{
	char sink[4096];
	ssize_t n = read(c->fd, sink, sizeof(sink));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || !evconn_lingered(c, (size_t)n))
		c->state = EVCONN_DONE;
}

void evconn_on_readable(struct evconn *c)
{
	char *room;
	ssize_t n;

	if (c->state == EVCONN_LINGER) {
		evconn_linger(c);
		return;
	}
	if (!evconn_can_take(c))
		return; /* paused: epoll only reported an error or hang-up */
	room = evconn_read_room(c);
	if (!room) {
		c->state = EVCONN_DONE;
		return;
	}
	n = read(c->fd, room, evconn_read_size(c));
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
	/*
	 * 10 000 idle connections holding 16 KiB each would be 160 MB; freed,
	 * the loop's allocator hands the same hot chunk to the next reader.
	 */
	if (!buf_used(&c->in))
		buf_free(&c->in);
}

void evconn_on_writable(struct evconn *c)
{
	if (evconn_answering(c))
		evconn_advance(c);
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

bool evconn_close(struct evconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	evconn_release(c);
	return c->njobs == 0;
}
