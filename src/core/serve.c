#include "serve.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "metrics.h"
#include "net.h"
#include "stop.h"

/* What the connection speaks: decided by its first bytes (http_sniff()). */
enum serve_mode {
	SERVE_SNIFF, /* too few bytes yet to tell */
	SERVE_LINE,  /* fib/1 */
	SERVE_HTTP,  /* HTTP/1.x */
};

/* One connection being served: who it is, how to move its bytes. */
struct serve_conn {
	int fd;
	const struct server_cfg *cfg;
	const struct serve_hook *hook;
	const struct serve_io *io;
	enum serve_mode mode;
	struct buf in;		 /* bytes read, not yet framed */
	struct buf out;		 /* replies not yet written */
	struct metrics_batch mb; /* requests answered, counted at each write */
};

/* fib(n) into r: inline, or where the hook says. */
static inline void serve_compute(struct serve_conn *c, uint64_t n,
				 struct reply *r)
{
	bool hooked = c->hook && c->hook->compute;
	bool counted = hooked || !metrics_cheap(&c->cfg->limits, n);

	if (counted)
		metrics_compute_begin();
	if (hooked)
		c->hook->compute(c->hook->ctx, &c->cfg->limits, n, r);
	else
		proto_compute(&c->cfg->limits, n, r);
	if (counted)
		metrics_compute_end();
}

/*
 * Answers one request into r: parse here (a framed line, or in read framing
 * a whole read), compute where the hook says.
 */
static void serve_one(struct serve_conn *c, const char *req, size_t len,
		      struct reply *r)
{
	const struct proto_limits *lim = &c->cfg->limits;
	enum proto_status st;
	uint64_t n;

	if (lim->framing == PROTO_FRAMING_READ)
		st = proto_parse_read(lim, req, len, &n);
	else
		st = proto_parse(lim, req, len, &n);
	if (st != PROTO_OK)
		proto_error_reply(lim, st, r);
	else
		serve_compute(c, n, r);
	metrics_batch_request(&c->mb, METRICS_LINE, metrics_result(st, r));
}

static int serve_flush(struct serve_conn *c)
{
	int err;

	/* Counted before the client can see a reply and scrape. */
	metrics_batch_flush(&c->mb);
	err = c->io->write(c->io->ctx, c->fd, buf_head(&c->out),
			   buf_used(&c->out));

	buf_consume(&c->out, buf_used(&c->out));
	return err;
}

/* Queues r on out, writing out first when it is full. Releases r. */
static int serve_queue(struct serve_conn *c, struct reply *r)
{
	int err = 0;

	if (buf_used(&c->out) + r->len > SERVE_OUT_FLUSH)
		err = serve_flush(c);
	if (!err && r->len > SERVE_OUT_FLUSH)
		err = c->io->write(c->io->ctx, c->fd, r->text, r->len);
	else if (!err)
		err = buf_append(&c->out, r->text, r->len);
	reply_release(r);
	return err;
}

/*
 * Answers every complete line in the input. Returns 0 to keep going, 1 when
 * the connection must close once the output is written (a line too long),
 * or -errno. In read framing the input is one read, and one request.
 */
static int serve_lines(struct serve_conn *c)
{
	struct reply r;
	ssize_t len;
	int err;

	if (c->cfg->limits.framing == PROTO_FRAMING_READ) {
		serve_one(c, buf_head(&c->in), buf_used(&c->in), &r);
		buf_consume(&c->in, buf_used(&c->in));
		return serve_queue(c, &r);
	}
	for (;;) {
		len = proto_frame(buf_head(&c->in), buf_used(&c->in),
				  c->cfg->limits.max_line);
		if (len == 0)
			return 0;
		if (len == PROTO_FRAME_TOO_LONG) {
			proto_error_reply(&c->cfg->limits, PROTO_LINE_TOO_LONG,
					  &r);
			metrics_batch_request(&c->mb, METRICS_LINE,
					      PROTO_LINE_TOO_LONG);
			err = serve_queue(c, &r);
			return err ? err : 1;
		}
		serve_one(c, buf_head(&c->in), (size_t)len, &r);
		buf_consume(&c->in, (size_t)len);
		err = serve_queue(c, &r);
		if (err)
			return err;
	}
}

/* Queues an HTTP response around body (dropped for HEAD). Releases it. */
static int serve_queue_http(struct serve_conn *c, const struct http_resp *resp,
			    struct reply *body)
{
	char head[HTTP_RESP_HEAD_MAX];
	int status = http_status(resp, body);
	size_t n = http_format_head(head, status, resp, body->len);
	int err = 0;

	metrics_batch_code(&c->mb, status);
	if (buf_used(&c->out) + n > SERVE_OUT_FLUSH)
		err = serve_flush(c);
	if (!err)
		err = buf_append(&c->out, head, n);
	if (err || resp->head) {
		reply_release(body);
		return err;
	}
	return serve_queue(c, body);
}

/*
 * Answers every complete HTTP request in the input, in order. Returns 0 to
 * keep going, 1 when the connection must close once the output is written
 * (the response said "Connection: close"), or -errno.
 */
static int serve_http(struct serve_conn *c)
{
	const struct proto_limits *lim = &c->cfg->limits;
	struct http_exchange x;
	struct reply r;
	size_t used;
	int err;

	for (;;) {
		used = http_next(lim, buf_head(&c->in), buf_used(&c->in),
				 stop_requested(), &x);
		if (!used)
			return 0;
		buf_consume(&c->in, used);
		if (http_wants_compute(&x))
			serve_compute(c, x.n, &r);
		else
			http_body(lim, &x, &r);
		if (x.route == HTTP_ROUTE_FIB)
			metrics_batch_request(&c->mb, METRICS_HTTP,
					      metrics_result(x.st, &r));
		err = serve_queue_http(c, &x.resp, &r);
		if (err)
			return err;
		if (x.resp.close)
			return 1;
	}
}

/* Answers what the input holds, once its first bytes tell the protocol. */
static int serve_input(struct serve_conn *c)
{
	int http;

	if (c->mode == SERVE_SNIFF && buf_used(&c->in)) {
		http = http_sniff(buf_head(&c->in), buf_used(&c->in));
		/* In read framing the first read is a request either way. */
		if (http == HTTP_SNIFF_MORE &&
		    c->cfg->limits.framing == PROTO_FRAMING_LINE)
			return 0;
		c->mode = http == 1 ? SERVE_HTTP : SERVE_LINE;
	}
	return c->mode == SERVE_HTTP ? serve_http(c) : serve_lines(c);
}

/*
 * The client closed its side. A last line without '\n' is still a request
 * (printf 30 | nc), unless the read side was shut by a stop: then it may be
 * the front half of a longer line, and is dropped. So is the front half of
 * an HTTP request.
 */
static int serve_eof(struct serve_conn *c)
{
	struct reply r;

	if (buf_used(&c->in) && !stop_requested() && c->mode != SERVE_HTTP) {
		serve_one(c, buf_head(&c->in), buf_used(&c->in), &r);
		buf_consume(&c->in, buf_used(&c->in));
		return serve_queue(c, &r);
	}
	return 0;
}

/*
 * Reads into the input, growing it by one chunk (in read framing, one
 * request). Returns bytes, 0 at EOF, or -errno.
 */
static ssize_t serve_read(struct serve_conn *c, unsigned timeout_ms)
{
	size_t chunk = c->mode == SERVE_HTTP
			   ? SERVE_READ_CHUNK /* HTTP frames itself */
			   : proto_read_max(&c->cfg->limits, SERVE_READ_CHUNK);
	ssize_t n;
	int err = 0;

	if (c->io->wait && !buf_used(&c->in))
		err = c->io->wait(c->io->ctx, c->fd, timeout_ms);
	if (!err)
		err = buf_reserve(&c->in, chunk);
	if (err)
		return err;
	n = c->io->read(c->io->ctx, c->fd, c->in.data + c->in.len, chunk,
			timeout_ms);
	if (n > 0)
		c->in.len += (size_t)n;
	return n;
}

/*
 * Closing a socket with unread input makes the kernel send RST, which can
 * destroy the error reply before the client reads it. So after a line too
 * long we send FIN and read (and drop) what the client still sends, for a
 * bounded time and amount, before the caller closes.
 */
static void serve_linger(struct serve_conn *c)
{
	char sink[4096];
	size_t total = 0;
	ssize_t n;

	shutdown(c->fd, SHUT_WR);
	while (total < SERVE_LINGER_MAX) {
		n = c->io->read(c->io->ctx, c->fd, sink, sizeof(sink),
				SERVE_LINGER_MS);
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

/* Reads, answers, writes, until EOF, an error, or a line too long. */
static int serve_loop(struct serve_conn *c)
{
	unsigned idle_ms = c->cfg->idle_timeout_ms;
	uint64_t partial_since = 0;
	ssize_t n;
	int err, werr;

	for (;;) {
		n = serve_read(c, idle_ms);
		if (n < 0)
			return (int)n;
		err = n == 0 ? serve_eof(c) : serve_input(c);
		if (err >= 0 && buf_used(&c->out)) {
			werr = serve_flush(c);
			err = werr ? werr : err;
		}
		if (!err && n > 0)
			err = serve_check_partial(&c->in, idle_ms,
						  &partial_since);
		if (err || n == 0)
			return err;
		/* Idle between requests, hold no buffers (coro has 10 000). */
		if (!buf_used(&c->in))
			buf_free(&c->in);
		buf_free(&c->out); /* flushed above */
	}
}

int serve_conn(int fd, const struct server_cfg *cfg,
	       const struct serve_hook *hook, const struct serve_io *io)
{
	struct serve_conn c = {
	    .fd = fd,
	    .cfg = cfg,
	    .hook = hook,
	    .io = io,
	    .in = BUF_INIT,
	    .out = BUF_INIT,
	    .mb = METRICS_BATCH_INIT,
	};
	int err;

	metrics_conn_open();
	err = serve_loop(&c);
	metrics_batch_flush(&c.mb);
	if (err > 0)
		serve_linger(&c);
	buf_free(&c.in);
	buf_free(&c.out);
	metrics_conn_close();
	return err > 0 ? 0 : err;
}

/*
 * Blocking sockets: a read or write that waits longer than the timeout
 * fails with EAGAIN (SO_RCVTIMEO, SO_SNDTIMEO), which ends the connection.
 */
static void serve_set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static ssize_t serve_blocking_read(void *ctx, int fd, void *buf, size_t len,
				   unsigned timeout_ms)
{
	ssize_t n;

	(void)ctx;
	/* The idle timeout is set once (serve_blocking); the linger's here. */
	if (timeout_ms == SERVE_LINGER_MS)
		serve_set_timeouts(fd, timeout_ms);
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int serve_blocking_write(void *ctx, int fd, const void *buf, size_t len)
{
	(void)ctx;
	return net_write_all(fd, buf, len);
}

static const struct serve_io serve_io_blocking = {
    .read = serve_blocking_read,
    .write = serve_blocking_write,
};

int serve_blocking(int fd, const struct server_cfg *cfg,
		   const struct serve_hook *hook)
{
	if (cfg->idle_timeout_ms)
		serve_set_timeouts(fd, cfg->idle_timeout_ms);
	return serve_conn(fd, cfg, hook, &serve_io_blocking);
}

/*
 * The serial loop's I/O. A single-threaded server holds one client while
 * the next ones wait in its listen backlog, so while it waits on its client
 * it also looks at the listener: once others wait there, a client that
 * stalls is shed (see serve_serial() in serve.h). Reads and writes stay
 * plain blocking calls, one system call each; SO_RCVTIMEO and SO_SNDTIMEO
 * of SERVE_TICK_MS wake them to look at the clock and the listener.
 */
#define SERVE_TICK_MS (SERVE_STALL_MS / 2)

struct serve_serial_io {
	int lfd;	       /* readable when clients wait in the backlog */
	unsigned idle_ms;      /* --idle-timeout; 0 = never */
	unsigned idle_shed_ms; /* shed an idle client; 0 = never */
	uint64_t line_since;   /* when the unfinished line began; 0 = none */
	bool stalled_write;    /* shed because it did not read its replies */
};

/*
 * True when the client on fd stalled since since (a now_ms() time) for
 * limit_ms, is still not ready for events (time spent computing does not
 * count against it), and others wait in the backlog. Never during a stop:
 * the client's requests are answered first.
 */
static bool serial_shed(const struct serve_serial_io *s, int fd, short events,
			uint64_t since, unsigned limit_ms)
{
	struct pollfd p[2] = {{.fd = fd, .events = events},
			      {.fd = s->lfd, .events = POLLIN}};

	if (!since || !limit_ms || now_ms() - since < limit_ms ||
	    stop_requested() || poll(p, 2, 0) < 0)
		return false;
	return !p[0].revents && (p[1].revents & POLLIN);
}

/*
 * serve_loop() frames every complete line before it reads again, so the
 * input holds an unfinished line exactly when the last byte read was not
 * '\n'; the line began at the last read that had a '\n' in it.
 */
static void serial_track_line(struct serve_serial_io *s, const char *p,
			      size_t n)
{
	if (n && p[n - 1] == '\n')
		s->line_since = 0;
	else if (n && (!s->line_since || memchr(p, '\n', n)))
		s->line_since = now_ms();
}

/* An unfinished line may stall SERVE_STALL_MS, an idle client idle_shed_ms. */
static ssize_t serial_read(void *ctx, int fd, void *buf, size_t len,
			   unsigned timeout_ms)
{
	struct serve_serial_io *s = ctx;
	uint64_t start = now_ms();
	ssize_t n;

	for (;;) {
		if (serial_shed(s, fd, POLLIN, s->line_since, SERVE_STALL_MS) ||
		    (!s->line_since &&
		     serial_shed(s, fd, POLLIN, start, s->idle_shed_ms)))
			return -EBUSY;
		n = read(fd, buf, len);
		if (n >= 0) {
			serial_track_line(s, buf, (size_t)n);
			return n;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (timeout_ms && now_ms() - start >= timeout_ms)
			return -EAGAIN;
	}
}

/* A write may make no progress for SERVE_STALL_MS while others wait. */
static int serial_write(void *ctx, int fd, const void *buf, size_t len)
{
	struct serve_serial_io *s = ctx;
	uint64_t last = now_ms();
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			last = now_ms();
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (s->idle_ms && now_ms() - last >= s->idle_ms)
			return -EAGAIN;
		s->stalled_write =
		    serial_shed(s, fd, POLLOUT, last, SERVE_STALL_MS);
		if (s->stalled_write)
			return -EBUSY;
	}
	return 0;
}

int serve_serial(int lfd, const struct server_cfg *cfg, unsigned idle_shed_ms)
{
	struct serve_serial_io s = {
	    .lfd = lfd,
	    .idle_ms = cfg->idle_timeout_ms,
	    .idle_shed_ms = idle_shed_ms,
	};
	struct serve_io io = {
	    .read = serial_read, .write = serial_write, .ctx = &s};
	int fd, slot, err;

	while (!stop_requested()) {
		fd = server_accept(lfd, 0);
		if (fd < 0)
			break;
		slot = stop_watch(fd);
		serve_set_timeouts(fd, SERVE_TICK_MS);
		s.line_since = 0;
		s.stalled_write = false;
		err = serve_conn(fd, cfg, NULL, &io);
		stop_unwatch(slot);
		/*
		 * Shed mid-line: its request gets "ERR server busy". An idle
		 * one has all its replies and one that does not read would not
		 * see it: they get FIN alone, as at the idle timeout.
		 */
		if (err == -EBUSY && s.line_since && !s.stalled_write)
			server_reject_busy(fd, cfg);
		else
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
