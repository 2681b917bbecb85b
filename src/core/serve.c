#include "serve.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
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
	unsigned long answered;	 /* requests framed so far */
	uint64_t since; /* serve_now_ms() at the unfinished request's start */
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

/* The batch's clock, read before its first request is computed, else 0. */
static uint64_t serve_clock(const struct serve_conn *c)
{
	return c->mb.n ? 0 : metrics_now_ns();
}

/*
 * Counts an answered fib request. The batch's latency runs from t0, read
 * before its first request was computed (serve_clock()): counted from
 * here, as metrics_batch_request() alone would, it left the compute out.
 */
static void serve_count(struct serve_conn *c, enum metrics_proto p,
			enum proto_status result, uint64_t t0)
{
	bool first = !c->mb.n;

	metrics_batch_request(&c->mb, p, result);
	if (first && t0)
		c->mb.t0 = t0;
}

/*
 * Answers one request into r: parse here (a framed line, or in read framing
 * a whole read), compute where the hook says.
 */
static void serve_one(struct serve_conn *c, const char *req, size_t len,
		      struct reply *r)
{
	const struct proto_limits *lim = &c->cfg->limits;
	uint64_t n, t0 = serve_clock(c);
	enum proto_status st;

	c->answered++;
	if (lim->framing == PROTO_FRAMING_READ)
		st = proto_parse_read(lim, req, len, &n);
	else
		st = proto_parse(lim, req, len, &n);
	if (st != PROTO_OK)
		proto_error_reply(lim, st, r);
	else
		serve_compute(c, n, r);
	serve_count(c, METRICS_LINE, metrics_result(st, r), t0);
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
	uint64_t t0;
	int err;

	for (;;) {
		used = http_next(lim, buf_head(&c->in), buf_used(&c->in),
				 stop_requested(), &x);
		if (!used)
			return 0;
		buf_consume(&c->in, used);
		c->answered++;
		t0 = serve_clock(c);
		if (http_wants_compute(&x))
			serve_compute(c, x.n, &r);
		else
			http_body(lim, &x, &r);
		if (x.route == HTTP_ROUTE_FIB)
			serve_count(c, METRICS_HTTP, metrics_result(x.st, &r),
				    t0);
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

uint64_t serve_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Closing a socket with unread input makes the kernel send RST, which can
 * destroy the error reply before the client reads it. So after a line too
 * long we send FIN and read (and drop) what the client still sends, for a
 * bounded time and amount, before the caller closes.
 */
static void serve_linger(struct serve_conn *c)
{
	uint64_t start = serve_now_ms(), waited = 0;
	char sink[4096];
	size_t total = 0;
	ssize_t n;

	shutdown(c->fd, SHUT_WR);
	while (total < SERVE_LINGER_MAX && waited < SERVE_LINGER_MS) {
		n = c->io->read(c->io->ctx, c->fd, sink, sizeof(sink),
				SERVE_LINGER_MS - (unsigned)waited);
		if (n <= 0)
			break;
		total += (size_t)n;
		waited = serve_now_ms() - start;
	}
}

/* How long a request may take to arrive: --header-timeout, or the idle's. */
static unsigned serve_request_ms(const struct server_cfg *cfg)
{
	return cfg->header_timeout_ms ? cfg->header_timeout_ms
				      : cfg->idle_timeout_ms;
}

/*
 * After the input was answered: does it hold the front of a request, and
 * since when? A request that was answered meanwhile (answered moved on
 * from before) means the front left over arrived with the last read.
 */
static void serve_note_unfinished(struct serve_conn *c, unsigned long before)
{
	uint64_t since = c->since;

	if (!buf_used(&c->in))
		since = 0;
	else if (!since || c->answered != before)
		since = serve_now_ms();
	if (since == c->since)
		return;
	c->since = since;
	if (c->io->unfinished)
		c->io->unfinished(c->io->ctx, since);
}

/*
 * The next read's timeout: the idle timeout, or less when a request is
 * unfinished and its time runs out sooner. Returns -ETIMEDOUT when it
 * already has.
 */
static int serve_read_timeout(const struct serve_conn *c, unsigned *ms)
{
	unsigned idle_ms = c->cfg->idle_timeout_ms;
	unsigned limit = serve_request_ms(c->cfg);
	uint64_t spent;

	*ms = idle_ms;
	if (!c->since || !limit)
		return 0;
	spent = serve_now_ms() - c->since;
	if (spent >= limit)
		return -ETIMEDOUT;
	if (!*ms || limit - spent < *ms)
		*ms = limit - (unsigned)spent;
	return 0;
}

/* Sends head (hlen bytes, maybe 0) and r's text at once, without waiting. */
static void serve_send_now(int fd, const char *head, size_t hlen,
			   const struct reply *r)
{
	struct iovec iov[2] = {{(void *)head, hlen}, {r->text, r->len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};

	if (sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* Gone, or not reading: it is closed either way. */
	}
}

/*
 * A client with an unfinished request is told why it is closed: its request
 * timed out (err -ETIMEDOUT), or a serial server shed it (-EBUSY). The
 * reply goes out without waiting (nothing else is queued: the output is
 * written after every read), and what the client sent is dropped, so that
 * the close sends FIN rather than RST.
 */
static void serve_refuse(struct serve_conn *c, int err)
{
	struct http_exchange x;
	struct reply r = {0};
	char head[HTTP_RESP_HEAD_MAX], sink[4096];
	size_t total = 0, hlen = 0;
	ssize_t n;

	if (c->mode == SERVE_HTTP) {
		http_timeout(&x);
		http_body(&c->cfg->limits, &x, &r);
		hlen = http_format_head(head, 408, &x.resp, r.len);
		metrics_batch_code(&c->mb, 408);
	} else if (err == -EBUSY) {
		proto_error_reply(&c->cfg->limits, PROTO_BUSY, &r);
	} else {
		reply_set(&r, PROTO_TIMEOUT_LINE,
			  sizeof(PROTO_TIMEOUT_LINE) - 1);
	}
	if (err == -EBUSY)
		metrics_conn_rejected();
	serve_send_now(c->fd, head, hlen, &r);
	reply_release(&r);
	shutdown(c->fd, SHUT_WR);
	do
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
	while (n > 0 && (total += (size_t)n) < SERVE_LINGER_MAX);
}

/*
 * Reads, answers, writes, until EOF, an error, a line too long, or a
 * request that takes too long to arrive (then says so).
 */
static int serve_loop(struct serve_conn *c)
{
	unsigned long before;
	unsigned timeout;
	ssize_t n;
	int err, werr;

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
		before = c->answered;
		err = n == 0 ? serve_eof(c) : serve_input(c);
		if (err >= 0 && buf_used(&c->out)) {
			werr = serve_flush(c);
			err = werr ? werr : err;
		}
		if (err || n == 0)
			return err;
		serve_note_unfinished(c, before);
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
