#include "serve.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "net.h"
#include "stop.h"

/* Answers one framed line into r: parse here, compute where the hook says. */
static void serve_one(const struct server_cfg *cfg,
		      const struct serve_hook *hook, const char *line,
		      size_t len, struct reply *r)
{
	enum proto_status st;
	uint64_t n;

	st = proto_parse(&cfg->limits, line, len, &n);
	if (st != PROTO_OK)
		proto_error_reply(&cfg->limits, st, r);
	else if (hook && hook->compute)
		hook->compute(hook->ctx, &cfg->limits, n, r);
	else
		proto_compute(&cfg->limits, n, r);
}

static int serve_flush(int fd, struct buf *out)
{
	int err = net_write_all(fd, buf_head(out), buf_used(out));

	buf_consume(out, buf_used(out));
	return err;
}

/* Queues r on out, writing out first when it is full. Releases r. */
static int serve_queue(int fd, struct buf *out, struct reply *r)
{
	int err = 0;

	if (buf_used(out) + r->len > SERVE_OUT_FLUSH)
		err = serve_flush(fd, out);
	if (!err && r->len > SERVE_OUT_FLUSH)
		err = net_write_all(fd, r->text, r->len);
	else if (!err)
		err = buf_append(out, r->text, r->len);
	reply_release(r);
	return err;
}

/*
 * Answers every complete line in `in`. Returns 0 to keep going, 1 when the
 * connection must close once `out` is written (a line too long), or -errno.
 */
static int serve_lines(int fd, const struct server_cfg *cfg,
		       const struct serve_hook *hook, struct buf *in,
		       struct buf *out)
{
	struct reply r;
	ssize_t len;
	int err;

	for (;;) {
		len = proto_frame(buf_head(in), buf_used(in),
				  cfg->limits.max_line);
		if (len == 0)
			return 0;
		if (len == PROTO_FRAME_TOO_LONG) {
			proto_error_reply(&cfg->limits, PROTO_LINE_TOO_LONG,
					  &r);
			err = serve_queue(fd, out, &r);
			return err ? err : 1;
		}
		serve_one(cfg, hook, buf_head(in), (size_t)len, &r);
		buf_consume(in, (size_t)len);
		err = serve_queue(fd, out, &r);
		if (err)
			return err;
	}
}

/*
 * The client closed its side. A last line without '\n' is still a request
 * (printf 30 | nc), unless the read side was shut by a stop: then it may be
 * the front half of a longer line, and is dropped.
 */
static int serve_eof(int fd, const struct server_cfg *cfg,
		     const struct serve_hook *hook, struct buf *in,
		     struct buf *out)
{
	struct reply r;

	if (buf_used(in) && !stop_requested()) {
		serve_one(cfg, hook, buf_head(in), buf_used(in), &r);
		buf_consume(in, buf_used(in));
		return serve_queue(fd, out, &r);
	}
	return 0;
}

/* read() into in, growing it by one chunk. Returns bytes, 0 at EOF, -errno. */
static ssize_t serve_read(int fd, struct buf *in)
{
	ssize_t n;
	int err = buf_reserve(in, SERVE_READ_CHUNK);

	if (err)
		return err;
	do
		n = read(fd, in->data + in->len, SERVE_READ_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	in->len += (size_t)n;
	return n;
}

/*
 * Closing a socket with unread input makes the kernel send RST, which can
 * destroy the error reply before the client reads it. So after a line too
 * long we send FIN and read (and drop) what the client still sends, for a
 * bounded time and amount, before the caller closes.
 */
static void serve_linger(int fd)
{
	struct timeval tv = {.tv_sec = 1};
	char sink[4096];
	size_t total = 0;
	ssize_t n;

	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (total < SERVE_LINGER_MAX) {
		n = read(fd, sink, sizeof(sink));
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * --idle-timeout for a blocking socket: a read or write that waits longer
 * fails with EAGAIN (SO_RCVTIMEO, SO_SNDTIMEO).
 */
static void serve_set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * A slowloris client sends a byte now and then and never ends its line, so
 * each read succeeds. Returns -ETIMEDOUT once an unfinished line has been
 * pending for longer than the idle timeout; *since tracks when it began.
 */
static int serve_check_partial(const struct buf *in, unsigned idle_ms,
			       uint64_t *since)
{
	if (!idle_ms || !buf_used(in)) {
		*since = 0;
		return 0;
	}
	if (!*since)
		*since = now_ms();
	else if (now_ms() - *since > idle_ms)
		return -ETIMEDOUT;
	return 0;
}

int serve_blocking(int fd, const struct server_cfg *cfg,
		   const struct serve_hook *hook)
{
	struct buf in = BUF_INIT, out = BUF_INIT;
	uint64_t partial_since = 0;
	ssize_t n;
	int err, werr;

	if (cfg->idle_timeout_ms)
		serve_set_timeouts(fd, cfg->idle_timeout_ms);
	for (;;) {
		n = serve_read(fd, &in);
		if (n < 0) {
			err = (int)n;
			break;
		}
		if (n == 0)
			err = serve_eof(fd, cfg, hook, &in, &out);
		else
			err = serve_lines(fd, cfg, hook, &in, &out);
		if (err >= 0 && buf_used(&out)) {
			werr = serve_flush(fd, &out);
			err = werr ? werr : err;
		}
		if (!err && n > 0)
			err = serve_check_partial(&in, cfg->idle_timeout_ms,
						  &partial_since);
		if (err || n == 0)
			break;
	}
	if (err > 0)
		serve_linger(fd);
	buf_free(&in);
	buf_free(&out);
	return err > 0 ? 0 : err;
}

int serve_serial(int lfd, const struct server_cfg *cfg)
{
	int fd, slot;

	while (!stop_requested()) {
		fd = server_accept(lfd, 0);
		if (fd < 0)
			break;
		slot = stop_watch(fd);
		serve_blocking(fd, cfg, NULL);
		stop_unwatch(slot);
		close(fd);
	}
	return 0;
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
