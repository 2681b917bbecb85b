/*
 * single - the talk's one_server.
 *
 *	accept -> serve that client until it leaves -> accept the next
 *	   ^                                                  |
 *	   +--------------------------------------------------+
 *
 * One thread does everything. While it serves one client, a second
 * client's connection completes in the kernel's backlog, but nobody reads
 * it: "who comes first is served first; the next is served only after the
 * previous one leaves". Unlike the talk's server, a bad request costs one
 * ERR line, not the whole server, and a client that stalls (does not read
 * its replies, or trickles a request in and never finishes it) is shed
 * after SINGLE_STALL_MS once someone else waits (single.h).
 *
 * How a stalled client is seen: the client's socket is blocking, with
 * SO_RCVTIMEO and SO_SNDTIMEO of SINGLE_TICK_MS, so reads and writes stay
 * one system call each and wake now and then to look at the clock and at
 * the listener. The request pipeline itself is serve_conn()'s.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/serve.h"
#include "../core/stop.h"
#include "model.h"
#include "single.h"

#define SINGLE_TICK_MS (SINGLE_STALL_MS / 2)

/* The client being served, as the loop's I/O calls see it. */
struct single_io {
	int lfd;	       /* readable when clients wait in the backlog */
	unsigned idle_ms;      /* --idle-timeout; 0 = never */
	unsigned idle_shed_ms; /* shed an idle client; 0 = never */
	uint64_t since;	       /* its unfinished request began; 0 = none */
};

/*
 * True when the client on fd stalled since since (a serve_now_ms() time)
 * for limit_ms, is still not ready for events (time spent computing does
 * not count against it), and others wait in the backlog. Never during a
 * stop: the client's requests are answered first.
 */
static bool single_shed(const struct single_io *s, int fd, short events,
			uint64_t since, unsigned limit_ms)
{
	struct pollfd p[2] = {{.fd = fd, .events = events},
			      {.fd = s->lfd, .events = POLLIN}};

	if (!since || !limit_ms || serve_now_ms() - since < limit_ms ||
	    stop_requested() || poll(p, 2, 0) < 0)
		return false;
	return !p[0].revents && (p[1].revents & POLLIN);
}

/* serve_conn() says when a request is left unfinished, and since when. */
static void single_unfinished(void *ctx, uint64_t since_ms)
{
	struct single_io *s = ctx;

	s->since = since_ms;
}

/*
 * An unfinished request may stall SINGLE_STALL_MS from its first byte,
 * however many bytes trickle in meanwhile; an idle client idle_shed_ms.
 */
static ssize_t single_read(void *ctx, int fd, void *buf, size_t len,
			   unsigned timeout_ms)
{
	struct single_io *s = ctx;
	uint64_t start = serve_now_ms();
	ssize_t n;

	for (;;) {
		if (single_shed(s, fd, POLLIN, s->since, SINGLE_STALL_MS) ||
		    (!s->since &&
		     single_shed(s, fd, POLLIN, start, s->idle_shed_ms)))
			return -EBUSY;
		n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (timeout_ms && serve_now_ms() - start >= timeout_ms)
			return -EAGAIN;
	}
}

/*
 * A write may make no progress for SINGLE_STALL_MS while others wait. The
 * client is then closed without a word: it would not read one.
 */
static int single_write(void *ctx, int fd, const void *buf, size_t len)
{
	struct single_io *s = ctx;
	uint64_t last = serve_now_ms();
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			last = serve_now_ms();
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (s->idle_ms && serve_now_ms() - last >= s->idle_ms)
			return -EAGAIN;
		if (single_shed(s, fd, POLLOUT, last, SINGLE_STALL_MS))
			return -EPIPE;
	}
	return 0;
}

int single_serve(int lfd, const struct server_cfg *cfg, unsigned idle_shed_ms)
{
	struct single_io s = {
	    .lfd = lfd,
	    .idle_ms = cfg->idle_timeout_ms,
	    .idle_shed_ms = idle_shed_ms,
	};
	struct serve_io io = {.read = single_read,
			      .write = single_write,
			      .unfinished = single_unfinished,
			      .ctx = &s};
	int fd, slot;

	/* After a stop: the clients still queued, their reads shut at once. */
	while ((fd = serve_accept(lfd)) >= 0) {
		slot = stop_watch(fd);
		serve_set_timeouts(fd, SINGLE_TICK_MS);
		s.since = 0;
		serve_conn(fd, cfg, NULL, &io);
		stop_unwatch(slot);
		close(fd);
	}
	return 0;
}

static int single_run(const struct server_cfg *cfg)
{
	int lfd = server_listen(cfg, cfg->port, NET_NONBLOCK);

	if (lfd < 0)
		return lfd;
	single_serve(lfd, cfg, 0); /* an idle first client keeps the server */
	close(lfd);
	return 0;
}

const struct model model_single = {
    .name = "single",
    .summary = "one thread; serves one client until it leaves, then the next",
    .concurrency = MODEL_SERIAL,
    .talk_server = "one_server",
    .serial_shards = true,
    .run = single_run,
};
