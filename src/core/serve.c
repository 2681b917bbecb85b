#include "serve.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "stop.h"

/* One connection being driven: the core's state, and how to move bytes. */
struct serve_conn {
	struct evconn ev;	/* the request core */
	struct evconn_cfg ecfg; /* the core's config, this connection's own */
	const struct server_cfg *cfg;
	const struct serve_io *io;
	unsigned header_ms; /* how long a request may take to arrive */
	uint64_t since; /* serve_now_ms() at the unfinished request's start */
};

uint64_t serve_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Writes everything the core queued. 0 or -errno. */
static int serve_flush(struct serve_conn *c)
{
	struct buf *out = &c->ev.out;
	int err =
	    c->io->write(c->io->ctx, c->ev.fd, buf_head(out), buf_used(out));

	buf_consume(out, buf_used(out));
	return err;
}

/*
 * Lets the core answer what the input holds (and the EOF, at eof), writing
 * whenever its output cap stops it, then what is left. 0 or -errno.
 */
static int serve_answer(struct serve_conn *c, bool eof)
{
	int err;

	/* What a stop changes: HTTP's healthz, and the EOF rule. */
	if (eof || c->ev.mode != EVCONN_LINE)
		c->ecfg.stopping = stop_requested();
	while (evconn_take(&c->ev)) {
		/* A cap stopped the core: write, then take the rest. */
		err = serve_flush(c);
		if (err)
			return err;
	}
	if (eof)
		evconn_eof(&c->ev);
	if (c->ev.state == EVCONN_DONE)
		return -ENOMEM; /* the core could not queue a reply */
	return buf_used(&c->ev.out) ? serve_flush(c) : 0;
}

/*
 * Reads into the core's input. Returns bytes, 0 at EOF, or -errno. A
 * connection waiting for its next request holds no input buffer meanwhile.
 */
static ssize_t serve_read(struct serve_conn *c, unsigned timeout_ms)
{
	char *room;
	ssize_t n;
	int err;

	if (c->io->wait && !buf_used(&c->ev.in)) {
		err = c->io->wait(c->io->ctx, c->ev.fd, timeout_ms);
		if (err)
			return err;
	}
	room = evconn_read_room(&c->ev);
	if (!room)
		return -ENOMEM;
	n = c->io->read(c->io->ctx, c->ev.fd, room, evconn_read_size(&c->ev),
			timeout_ms);
	if (n > 0)
		c->ev.in.len += (size_t)n;
	return n;
}

/*
 * After the input was answered: does it hold the front of a request, and
 * since when? A request taken meanwhile (progress) means the front left
 * over arrived with the last read.
 */
static void serve_note_unfinished(struct serve_conn *c)
{
	uint64_t since = c->since;

	if (!evconn_partial(&c->ev))
		since = 0;
	else if (!since || c->ev.progress)
		since = serve_now_ms();
	c->ev.progress = false;
	if (since == c->since)
		return;
	c->since = since;
	if (c->io->unfinished)
		c->io->unfinished(c->io->ctx, since);
}

/*
 * How long a request may take to arrive, by the loops' one rule
 * (evconn_header_ms): --header-timeout, or --idle-timeout when that is
 * shorter; 0 (--header-timeout 0) leaves an unfinished request to the idle
 * clock alone, which closes it without a word as it closes a silent client.
 */
static unsigned serve_request_ms(const struct server_cfg *cfg)
{
	return evconn_header_ms(cfg->header_timeout_ms, cfg->idle_timeout_ms);
}

/*
 * The next read's timeout: the idle timeout, or less when a request is
 * unfinished and its header clock runs out sooner. Returns -ETIMEDOUT
 * when it already has.
 */
static int serve_read_timeout(const struct serve_conn *c, unsigned *ms)
{
	uint64_t spent;

	*ms = c->cfg->idle_timeout_ms;
	if (!c->since || !c->header_ms)
		return 0;
	spent = serve_now_ms() - c->since;
	if (spent >= c->header_ms)
		return -ETIMEDOUT;
	if (!*ms || c->header_ms - spent < *ms)
		*ms = c->header_ms - (unsigned)spent;
	return 0;
}

/*
 * The polite close: FIN, then drop what the client still sends, as long
 * and as much as the core says (linger_ms, evconn_lingered()), so that the
 * close does not RST the last reply away.
 */
static void serve_linger(struct serve_conn *c)
{
	uint64_t start = serve_now_ms(), waited = 0;
	unsigned ms = c->ev.linger_ms;
	char sink[4096];
	ssize_t n;

	shutdown(c->ev.fd, SHUT_WR);
	c->ev.state = EVCONN_LINGER;
	do {
		if (ms)
			n = c->io->read(c->io->ctx, c->ev.fd, sink,
					sizeof(sink), ms - (unsigned)waited);
		else
			n = recv(c->ev.fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n <= 0 || !evconn_lingered(&c->ev, (size_t)n))
			return;
		waited = serve_now_ms() - start;
	} while (waited < ms || !ms);
}

/*
 * A client with an unfinished request is told why it is closed: its request
 * timed out (err -ETIMEDOUT), or a serial server shed it (-EBUSY). The
 * answer goes out without waiting (nothing else is queued: the output is
 * written after every read), then the polite close.
 */
static void serve_refuse(struct serve_conn *c, int err)
{
	struct buf *out = &c->ev.out;

	if (err == -EBUSY)
		evconn_shed(&c->ev);
	else
		evconn_timeout(&c->ev);
	if (c->ev.state != EVCONN_FAILING)
		return;
	if (send(c->ev.fd, buf_head(out), buf_used(out),
		 MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* Gone, or not reading: it is closed either way. */
	}
	buf_consume(out, buf_used(out));
	serve_linger(c);
}

/*
 * Reads, answers, writes, until EOF, an error, the core's last reply (a
 * line too long, a response that closes: then the polite close), or a
 * request that takes too long to arrive (then says so).
 */
static int serve_loop(struct serve_conn *c)
{
	unsigned timeout;
	ssize_t n;
	int err;

	for (;;) {
		n = serve_read_timeout(c, &timeout);
		if (!n)
			n = serve_read(c, timeout);
		if (n == -EAGAIN && c->since &&
		    serve_read_timeout(c, &timeout) < 0)
			n = -ETIMEDOUT;
		if (n < 0 && c->since && (n == -ETIMEDOUT || n == -EBUSY))
			serve_refuse(c, (int)n);
		if (n < 0)
			return (int)n;
		err = serve_answer(c, n == 0);
		if (err || n == 0)
			return err;
		if (c->ev.state == EVCONN_FAILING) {
			serve_linger(c);
			return 0;
		}
		serve_note_unfinished(c);
		/* Idle between requests, hold no buffers (coro has 10 000). */
		if (!buf_used(&c->ev.in))
			buf_free(&c->ev.in);
		buf_free(&c->ev.out); /* flushed above */
	}
}

int serve_conn(int fd, const struct server_cfg *cfg,
	       const struct serve_hook *hook, const struct serve_io *io)
{
	struct serve_conn c = {
	    .cfg = cfg,
	    .io = io,
	    .header_ms = serve_request_ms(cfg),
	};
	int err;

	/* No pool: every fib is computed here, or by the hook. */
	evconn_cfg_init(&c.ecfg, &cfg->limits, NULL, 0);
	if (hook) {
		c.ecfg.compute = hook->compute;
		c.ecfg.compute_ctx = hook->ctx;
	}
	evconn_init(&c.ev, fd, &c.ecfg);
	err = serve_loop(&c);
	metrics_batch_flush(&c.ecfg.mb);
	evconn_release(&c.ev);
	return err;
}

/*
 * Blocking sockets: a read or write that waits longer than the timeout
 * fails with EAGAIN (SO_RCVTIMEO, SO_SNDTIMEO), which ends the connection.
 */
void serve_set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A blocking connection's SO_RCVTIMEO, as last set. */
struct serve_blocking_io {
	unsigned rcv_ms;
};

static void serve_set_rcvtimeo(struct serve_blocking_io *b, int fd, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	b->rcv_ms = ms;
}

/*
 * A read that fails with -EAGAIN once timeout_ms passed. When a read asks
 * for less than SO_RCVTIMEO says, it is lowered to half of that: as an
 * unfinished request's time runs out, each read asks a little less, and a
 * system call per read to say so would cost a pipelining client. A timeout
 * shorter than asked just wakes the read early, to wait for the rest.
 */
static ssize_t serve_blocking_read(void *ctx, int fd, void *buf, size_t len,
				   unsigned timeout_ms)
{
	struct serve_blocking_io *b = ctx;
	unsigned waited = 0, want;
	ssize_t n;

	for (;;) {
		want = timeout_ms ? timeout_ms - waited : 0;
		if (want && (!b->rcv_ms || want < b->rcv_ms))
			serve_set_rcvtimeo(b, fd, want > 1 ? want / 2 : 1);
		else if (!want && b->rcv_ms)
			serve_set_rcvtimeo(b, fd, 0);
		n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || !b->rcv_ms)
			return -errno;
		waited += b->rcv_ms;
		if (timeout_ms && waited >= timeout_ms)
			return -EAGAIN;
		/* Woken early: wait for the rest in one go. */
		serve_set_rcvtimeo(b, fd, timeout_ms ? timeout_ms - waited : 0);
	}
}

static int serve_blocking_write(void *ctx, int fd, const void *buf, size_t len)
{
	(void)ctx;
	return net_write_all(fd, buf, len);
}

int serve_blocking(int fd, const struct server_cfg *cfg,
		   const struct serve_hook *hook)
{
	struct serve_blocking_io b = {.rcv_ms = cfg->idle_timeout_ms};
	struct serve_io io = {.read = serve_blocking_read,
			      .write = serve_blocking_write,
			      .ctx = &b};

	if (cfg->idle_timeout_ms)
		serve_set_timeouts(fd, cfg->idle_timeout_ms);
	return serve_conn(fd, cfg, hook, &io);
}

/* Clients accepted after the stop, on this thread (see serve_accept()). */
static _Thread_local unsigned serve_late;

int serve_accept(int lfd)
{
	struct pollfd p[2] = {{.fd = lfd, .events = POLLIN},
			      {.fd = stop_eventfd(), .events = POLLIN}};
	int fd;

	for (;;) {
		fd = server_accept(lfd, 0);
		if (fd >= 0 && stop_requested() &&
		    ++serve_late > SERVER_BACKLOG) {
			/* Clients that keep coming after the stop: enough. */
			close(fd);
			return -ESHUTDOWN;
		}
		if (fd != -EAGAIN && fd != -EINTR)
			return fd;
		if (stop_requested())
			return -ESHUTDOWN;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

/* The registry of live blocking connections. */
static pthread_mutex_t serve_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t serve_idle = PTHREAD_COND_INITIALIZER;
static int *serve_fds;
static unsigned serve_nfds, serve_capfds;
static int serve_stopping;

void serve_track(int fd)
{
	pthread_mutex_lock(&serve_lock);
	if (serve_nfds == serve_capfds) {
		unsigned cap = serve_capfds ? serve_capfds * 2 : 64;
		int *fds = realloc(serve_fds, cap * sizeof(*fds));
		if (!fds) {
			/* Untracked, it still works; a stop waits for it. */
			pthread_mutex_unlock(&serve_lock);
			return;
		}
		serve_fds = fds;
		serve_capfds = cap;
	}
	serve_fds[serve_nfds++] = fd;
	if (serve_stopping)
		shutdown(fd, SHUT_RD);
	pthread_mutex_unlock(&serve_lock);
}

void serve_untrack(int fd)
{
	pthread_mutex_lock(&serve_lock);
	for (unsigned i = 0; i < serve_nfds; i++) {
		if (serve_fds[i] == fd) {
			serve_fds[i] = serve_fds[--serve_nfds];
			break;
		}
	}
	if (serve_nfds == 0) {
		pthread_cond_broadcast(&serve_idle);
		free(serve_fds);
		serve_fds = NULL;
		serve_capfds = 0;
	}
	pthread_mutex_unlock(&serve_lock);
}

void serve_stop_all(void)
{
	pthread_mutex_lock(&serve_lock);
	serve_stopping = 1;
	for (unsigned i = 0; i < serve_nfds; i++)
		shutdown(serve_fds[i], SHUT_RD);
	pthread_mutex_unlock(&serve_lock);
}

void serve_wait_idle(void)
{
	pthread_mutex_lock(&serve_lock);
	while (serve_nfds)
		pthread_cond_wait(&serve_idle, &serve_lock);
	pthread_mutex_unlock(&serve_lock);
}

unsigned serve_tracked(void)
{
	unsigned n;

	pthread_mutex_lock(&serve_lock);
	n = serve_nfds;
	pthread_mutex_unlock(&serve_lock);
	return n;
}
