/*
 * The HTTP case set, in the behaviour suite's style: one set of cases run
 * against every model that `fibd --list-models` reports (or those in
 * $FIBD_MODELS). Each case starts its own server and runs in a child with a
 * timeout. The server is spoken to over raw sockets, with curl, and with
 * prometheus_client's parser (tests/http/check_metrics.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

#define MAX_MODELS 32
#define HOST_HDR   "Host: t\r\n"

static struct tsrv_model models[MAX_MODELS];
static const struct tsrv_model *cur; /* the model under test */

/* A client connection's unread input: responses may arrive together. */
struct client {
	int fd;
	size_t len;
	char buf[1 << 16];
};

/* One response as read back. */
struct resp {
	int status;
	char head[2048]; /* NUL-terminated */
	char body[1024]; /* NUL-terminated */
	size_t content_length;
};

static struct client cl;

static int start_args(struct tsrv *s, const char *const *args)
{
	int err = tsrv_start(s, cur->name, args, 1);

	T_CHECK(err == 0, "%s did not start", cur->name);
	if (!err)
		cl = (struct client){.fd = tsrv_connect(s, 0)};
	return err;
}

static int start(struct tsrv *s)
{
	return start_args(s, NULL);
}

static void stop_ok(struct tsrv *s)
{
	int st;

	close(cl.fd);
	st = tsrv_stop(s, 30);
	T_CHECK(st == 0, "%s: exit status %d after SIGTERM", cur->name, st);
}

/* Reads until cl holds at least want bytes. Returns 0, or -1 at EOF. */
static int fill(size_t want)
{
	ssize_t n;

	while (cl.len < want) {
		n = read(cl.fd, cl.buf + cl.len, sizeof(cl.buf) - cl.len);
		if (n <= 0)
			return -1;
		cl.len += (size_t)n;
	}
	return 0;
}

static const char *head_end(void)
{
	return memmem(cl.buf, cl.len, "\r\n\r\n", 4);
}

/* Reads one response (without a body after HEAD). Returns 0 or -1. */
static int read_resp(struct resp *r, int head_only)
{
	const char *end, *cl_hdr;
	size_t hl, bl;

	while (!(end = head_end()))
		if (fill(cl.len + 1))
			return -1;
	hl = (size_t)(end - cl.buf) + 4;
	if (hl >= sizeof(r->head))
		return -1;
	memcpy(r->head, cl.buf, hl);
	r->head[hl] = '\0';
	if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
		return -1;
	cl_hdr = strstr(r->head, "Content-Length: ");
	r->content_length = cl_hdr ? strtoul(cl_hdr + 16, NULL, 10) : 0;
	bl = head_only ? 0 : r->content_length;
	if (bl >= sizeof(r->body) || fill(hl + bl))
		return -1;
	memcpy(r->body, cl.buf + hl, bl);
	r->body[bl] = '\0';
	memmove(cl.buf, cl.buf + hl + bl, cl.len - hl - bl);
	cl.len -= hl + bl;
	return 0;
}

/* Sends req and checks the response's status and body. */
static void expect(const char *req, int status, const char *body)
{
	struct resp r;

	T_CHECK(t_send(cl.fd, req) == 0);
	if (read_resp(&r, strncmp(req, "HEAD", 4) == 0)) {
		T_CHECK(0, "%s: no response to %.40s", cur->name, req);
		return;
	}
	T_CHECK(r.status == status, "%s: %.40s: status %d want %d", cur->name,
		req, r.status, status);
	T_CHECK(strstr(r.head, "\r\nDate: ") != NULL, "%s: %.40s: no Date",
		cur->name, req);
	T_CHECK(strcmp(r.body, body) == 0, "%s: %.40s: body '%s' want '%s'",
		cur->name, req, r.body, body);
}

static void case_get(void)
{
	struct tsrv s;

	if (start(&s))
		return;
	expect("GET /fib/30 HTTP/1.1\r\n" HOST_HDR "\r\n", 200, "832040\n");
	expect("GET /fib/x HTTP/1.1\r\n" HOST_HDR "\r\n", 400,
	       "ERR not a number\n");
	expect("GET /fib/1000 HTTP/1.1\r\n" HOST_HDR "\r\n", 400,
	       "ERR n too large (max 45)\n");
	expect("GET /fib/-2 HTTP/1.1\r\n" HOST_HDR "\r\n", 400,
	       "ERR negative n\n");
	/* The same connection still serves: keep-alive after errors. */
	expect("GET /fib/12 HTTP/1.1\r\n" HOST_HDR "\r\n", 200, "144\n");
	expect("GET /nope HTTP/1.1\r\n" HOST_HDR "\r\n", 404, "not found\n");
	expect("DELETE /fib/1 HTTP/1.1\r\n" HOST_HDR "\r\n", 405,
	       "method not allowed\n");
	expect("GET /healthz HTTP/1.1\r\n" HOST_HDR "\r\n", 200, "ok\n");
	stop_ok(&s);
}

static void case_line_unaffected(void)
{
	char buf[256];
	struct tsrv s;

	if (start(&s))
		return;
	/* Upper-case letters, but no method token: still the line protocol. */
	T_CHECK(t_send(cl.fd, "ABC\n30\n") == 0);
	T_CHECK(t_read_lines(cl.fd, buf, sizeof(buf), 2) == 2);
	T_CHECK(strcmp(buf, "ERR not a number\n832040\n") == 0, "%s: '%s'",
		cur->name, buf);
	stop_ok(&s);
}

static void case_pipelined(void)
{
	char req[4096], want[32];
	struct resp r;
	struct tsrv s;
	size_t len = 0;
	int ok = 1;

	if (start(&s))
		return;
	for (int i = 0; i < 10; i++)
		len += (size_t)snprintf(
		    req + len, sizeof(req) - len,
		    "GET /fib/%d HTTP/1.1\r\n" HOST_HDR "\r\n", i + 20);
	T_CHECK(t_send(cl.fd, req) == 0);
	for (int i = 0; i < 10 && ok; i++) {
		t_expect((uint64_t)i + 20, want, sizeof(want));
		ok = read_resp(&r, 0) == 0 && r.status == 200 &&
		     strcmp(r.body, want) == 0;
		T_CHECK(ok, "%s: response %d: %d '%s'", cur->name, i, r.status,
			r.body);
	}
	/* And the connection goes on. */
	expect("GET /fib/3 HTTP/1.1\r\n" HOST_HDR "\r\n", 200, "2\n");
	stop_ok(&s);
}

static void case_close(void)
{
	struct resp r;
	struct tsrv s;

	if (start(&s))
		return;
	T_CHECK(t_send(cl.fd, "GET /fib/7 HTTP/1.1\r\n" HOST_HDR
			      "Connection: close\r\n\r\n"
			      "GET /fib/8 HTTP/1.1\r\n" HOST_HDR "\r\n") == 0);
	T_CHECK(read_resp(&r, 0) == 0 && r.status == 200 &&
		strcmp(r.body, "13\n") == 0);
	T_CHECK(strstr(r.head, "\r\nConnection: close\r\n") != NULL);
	T_CHECK(cl.len == 0 && t_wait_eof(cl.fd),
		"%s: the request after close is not answered", cur->name);
	close(cl.fd);
	/* HTTP/1.0 closes by default. */
	cl = (struct client){.fd = tsrv_connect(&s, 0)};
	T_CHECK(t_send(cl.fd, "GET /fib/9 HTTP/1.0\r\n\r\n") == 0);
	T_CHECK(read_resp(&r, 0) == 0 && strcmp(r.body, "34\n") == 0);
	T_CHECK(t_wait_eof(cl.fd), "%s: 1.0 closes", cur->name);
	stop_ok(&s);
}

static void case_head(void)
{
	struct resp r;
	struct tsrv s;

	if (start(&s))
		return;
	T_CHECK(t_send(cl.fd, "HEAD /fib/20 HTTP/1.1\r\n" HOST_HDR "\r\n") ==
		0);
	T_CHECK(read_resp(&r, 1) == 0 && r.status == 200);
	T_CHECK(r.content_length == 5, "%s: Content-Length %zu", cur->name,
		r.content_length);
	/* No body came: the next response starts right after the head. */
	expect("GET /fib/20 HTTP/1.1\r\n" HOST_HDR "\r\n", 200, "6765\n");
	stop_ok(&s);
}

static void case_huge_header(void)
{
	static char req[12000];
	struct resp r;
	struct tsrv s;
	size_t n;

	if (start(&s))
		return;
	n = (size_t)snprintf(req, sizeof(req),
			     "GET /fib/1 HTTP/1.1\r\n" HOST_HDR "X-Big: ");
	memset(req + n, 'a', sizeof(req) - n - 5);
	memcpy(req + sizeof(req) - 5, "\r\n\r\n", 5);
	T_CHECK(t_send(cl.fd, req) == 0);
	T_CHECK(read_resp(&r, 0) == 0 && r.status == 431, "%s: status %d",
		cur->name, r.status);
	T_CHECK(strstr(r.head, "Connection: close") != NULL);
	T_CHECK(t_wait_eof(cl.fd), "%s: closes after 431", cur->name);
	stop_ok(&s);
}

static void case_body_rejected(void)
{
	struct resp r;
	struct tsrv s;

	if (start(&s))
		return;
	/* The body would look like a request: it must never be served. */
	T_CHECK(t_send(cl.fd, "GET /fib/1 HTTP/1.1\r\n" HOST_HDR
			      "Content-Length: 33\r\n\r\n"
			      "GET /fib/2 HTTP/1.1\r\n" HOST_HDR "\r\n") == 0);
	T_CHECK(read_resp(&r, 0) == 0 && r.status == 413, "%s: status %d",
		cur->name, r.status);
	T_CHECK(cl.len == 0 && t_wait_eof(cl.fd), "%s: closes after 413",
		cur->name);
	stop_ok(&s);
}

/* HTTP frames itself: --framing read changes only the line protocol. */
static void case_read_framing(void)
{
	static const char *const args[] = {"--framing", "read", NULL};
	char buf[64];
	struct tsrv s;

	if (start_args(&s, args))
		return;
	expect("GET /fib/30 HTTP/1.1\r\n" HOST_HDR "\r\n", 200, "832040\n");
	expect("GET /fib/x HTTP/1.1\r\n" HOST_HDR "\r\n", 400,
	       "ERR not a number\n");
	close(cl.fd);
	/* A read that is all capitals, with no method token: one request. */
	cl = (struct client){.fd = tsrv_connect(&s, 0)};
	T_CHECK(t_ask(cl.fd, "GET", buf, sizeof(buf)) &&
		    strcmp(buf, "ERR not a number\n") == 0,
		"%s: got '%s'", cur->name, buf);
	T_CHECK(t_ask(cl.fd, "12", buf, sizeof(buf)) &&
		    strcmp(buf, "144\n") == 0,
		"%s: got '%s'", cur->name, buf);
	stop_ok(&s);
}

/* Runs cmd; its whole output must be want. */
static void expect_output(const char *cmd, const char *want)
{
	char out[256] = "";
	size_t n = 0;
	FILE *p = popen(cmd, "r");
	int st;

	T_CHECK(p != NULL, "popen %s", cmd);
	if (!p)
		return;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st = pclose(p);
	T_CHECK(st == 0 && strcmp(out, want) == 0,
		"%s: %s: status %d, output '%s' want '%s'", cur->name, cmd, st,
		out, want);
}

static void case_curl(void)
{
	char cmd[512];
	struct tsrv s;
	unsigned p;

	if (start(&s))
		return;
	close(cl.fd); /* single serves one client at a time */
	p = s.ports[0];
	snprintf(cmd, sizeof(cmd), "curl -sf http://127.0.0.1:%u/fib/30", p);
	expect_output(cmd, "832040\n");
	/* Two URLs, one connection: the second transfer connects 0 times. */
	snprintf(cmd, sizeof(cmd),
		 "curl --http1.1 -s -w '%%{num_connects}\\n' "
		 "http://127.0.0.1:%u/fib/10 http://127.0.0.1:%u/healthz",
		 p, p);
	expect_output(cmd, "55\n1\nok\n0\n");
	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code}' "
		 "http://127.0.0.1:%u/fib/abc",
		 p);
	expect_output(cmd, "400");
	cl.fd = -1;
	stop_ok(&s);
}

static void case_metrics(void)
{
	char cmd[256];
	struct tsrv s;

	if (start(&s))
		return;
	close(cl.fd);
	cl.fd = -1;
	snprintf(cmd, sizeof(cmd), "tests/http/check_metrics.py %u",
		 (unsigned)s.ports[0]);
	T_CHECK(system(cmd) == 0, "%s: %s failed", cur->name, cmd);
	stop_ok(&s);
}

/* RFC 9112 2.2, 3.2 and 4 on every model: each of these is one response. */
static void case_request_edges(void)
{
	static char req[10000];
	struct resp r;
	struct tsrv s;
	char buf[64];
	size_t n;

	if (start(&s))
		return;
	/* An empty line before the request line is skipped. */
	expect("\r\nGET /fib/10 HTTP/1.1\r\n" HOST_HDR "\r\n", 200, "55\n");
	expect("GET / HTTP/1.1\r\n" HOST_HDR "\r\n", 200,
	       "fibd: Fibonacci numbers over TCP; this port speaks two "
	       "protocols.\n\nHTTP/1.1 (GET or HEAD):\n"
	       "  /fib/N    fib(N) in decimal, e.g. /fib/30 gives 832040\n"
	       "  /metrics  counters in Prometheus text format\n"
	       "  /healthz  ok, or 503 while the server drains or stops\n\n"
	       "fib/1, the line protocol: send N and a newline, get fib(N) "
	       "and a\nnewline (nc 127.0.0.1 PORT, then type 30).\n");
	expect("GET /fib/1 HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400, "bad Host\n");
	T_CHECK(t_wait_eof(cl.fd), "%s: closes after a bad Host", cur->name);
	close(cl.fd);
	/* A request-target too long: 414, and close. */
	cl = (struct client){.fd = tsrv_connect(&s, 0)};
	n = (size_t)snprintf(req, sizeof(req), "GET /fib/");
	memset(req + n, '1', sizeof(req) - n - 1);
	T_CHECK(t_send(cl.fd, req) == 0);
	T_CHECK(read_resp(&r, 0) == 0 && r.status == 414, "%s: status %d",
		cur->name, r.status);
	T_CHECK(strstr(r.head, "Connection: close") != NULL);
	T_CHECK(t_wait_eof(cl.fd), "%s: closes after 414", cur->name);
	close(cl.fd);
	/* On fib/1 an empty line is still answered at once. */
	cl = (struct client){.fd = tsrv_connect(&s, 0)};
	T_CHECK(t_ask(cl.fd, "\r\n", buf, sizeof(buf)) &&
		    strcmp(buf, "ERR empty request\n") == 0,
		"%s: got '%s'", cur->name, buf);
	T_CHECK(t_ask(cl.fd, "30\n", buf, sizeof(buf)) &&
		    strcmp(buf, "832040\n") == 0,
		"%s: got '%s'", cur->name, buf);
	stop_ok(&s);
}

/* Reads fd until EOF (or the receive timeout) into buf. Returns the length. */
static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return len;
}

/* A connection the server has taken: it was answered. Returns fd or -1. */
static int held(const struct tsrv *s)
{
	int fd = tsrv_connect(s, 0);
	char buf[64];

	T_CHECK(t_ask(fd, "3\n", buf, sizeof(buf)) && strcmp(buf, "2\n") == 0,
		"%s: got '%s'", cur->name, buf);
	return fd;
}

/*
 * At --max-conns an HTTP client gets 503 with Retry-After, and a line
 * client "ERR server busy". The server may have accepted the client
 * before its request arrived and waited its bounded while in vain (the
 * line is then the answer): an HTTP client tries a few times.
 */
static void case_busy(void)
{
	/* cl, a and b hold the three places. */
	static const char *const args[] = {"--max-conns", "3", NULL};
	char out[1024], cmd[256];
	int a, b, c, tries;
	struct tsrv s;
	FILE *p;

	/* A serial server leaves the others in its backlog: no limit bites. */
	if (cur->serial_shards || start_args(&s, args))
		return;
	/* Answered, so accepted and counted: with one loop per core, cl's
	 * loop might not have taken it yet when c reaches another loop. */
	T_CHECK(t_send(cl.fd, "3\n") == 0 &&
		    t_read_lines(cl.fd, out, sizeof(out), 1) == 1 &&
		    strcmp(out, "2\n") == 0,
		"%s: cl got '%s'", cur->name, out);
	a = held(&s);
	b = held(&s);
	for (tries = 0; tries < 5; tries++) {
		c = tsrv_connect(&s, 0);
		t_send(c, "GET /healthz HTTP/1.1\r\n" HOST_HDR "\r\n");
		read_all(c, out, sizeof(out));
		close(c);
		if (strcmp(out, "ERR server busy\n") != 0)
			break;
	}
	T_CHECK(strncmp(out, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0,
		"%s: a busy HTTP client got '%s'", cur->name, out);
	T_CHECK(strstr(out, "\r\nRetry-After: ") &&
		    strstr(out, "\r\nConnection: close\r\n") &&
		    strstr(out, "\r\nDate: ") &&
		    strstr(out, "\r\n\r\nERR server busy\n"),
		"%s: '%s'", cur->name, out);
	/* curl: 503, where it used to read a bare line (status 000). */
	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code}' "
		 "http://127.0.0.1:%u/healthz",
		 (unsigned)s.ports[0]);
	for (tries = 0, out[0] = '\0'; tries < 5; tries++) {
		p = popen(cmd, "r");
		out[p ? fread(out, 1, sizeof(out) - 1, p) : 0] = '\0';
		if (p)
			pclose(p);
		if (strcmp(out, "503") == 0)
			break;
	}
	T_CHECK(strcmp(out, "503") == 0, "%s: curl got %s", cur->name, out);
	/* A line client is told in its own protocol. */
	c = tsrv_connect(&s, 0);
	t_send(c, "5\n");
	read_all(c, out, sizeof(out));
	T_CHECK(strcmp(out, "ERR server busy\n") == 0, "%s: got '%s'",
		cur->name, out);
	close(c);
	close(a);
	close(b);
	stop_ok(&s);
}

/* fibd_connections_rejected_total from a scrape, or -1. */
static long rejected_total(const struct tsrv *s)
{
	char buf[1 << 16];
	const char *m;
	int fd = tsrv_connect(s, 0);

	t_send(fd, "GET /metrics HTTP/1.1\r\n" HOST_HDR
		   "Connection: close\r\n\r\n");
	read_all(fd, buf, sizeof(buf));
	close(fd);
	static const char name[] = "\nfibd_connections_rejected_total ";

	m = strstr(buf, name);
	return m ? strtol(m + sizeof(name) - 1, NULL, 10) : -1;
}

/*
 * Out of descriptors (ulimit -n 64, 120 clients), every client is answered
 * at once: served, or told "ERR server busy" with a reserve descriptor and
 * counted; none waits unanswered in the backlog.
 */
static void case_out_of_fds_sheds(void)
{
	enum {
		N = 120
	};
	static int fds[N];
	int served = 0, busy = 0, lost = 0;
	struct timeval tv = {.tv_sec = 10};
	char buf[64];
	struct tsrv s;
	long counted;
	int err;

	/* A serial server leaves the others in its backlog: no limit bites. */
	if (cur->serial_shards)
		return;
	/*
	 * One loop or thread pool where the model takes --workers: several
	 * loops share one descriptor table, and one of them can take the
	 * descriptor another just freed to re-open its reserve.
	 */
	static const char *const one[] = {"--workers", "1", NULL};

	tsrv_nofile = 64;
	err = start_args(&s, cur->max_workers ? one : NULL);
	tsrv_nofile = 0;
	if (err)
		return;
	for (int i = 0; i < N; i++) {
		fds[i] = tsrv_connect(&s, 0);
		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		t_send(fds[i], "6\n");
	}
	for (int i = 0; i < N; i++) {
		ssize_t n = recv(fds[i], buf, sizeof(buf) - 1, 0);

		buf[n > 0 ? n : 0] = '\0';
		served += strcmp(buf, "8\n") == 0;
		busy += strcmp(buf, "ERR server busy\n") == 0;
		/*
		 * A client whose request reached a shed connection only after
		 * the server answered and closed it gets RST, which may
		 * destroy the answer: told, but lost. Waiting is the failure.
		 */
		lost += n == 0 || (n < 0 && errno == ECONNRESET);
	}
	T_CHECK(busy > 0 && served + busy + lost == N && lost <= N / 10,
		"%s: %d served, %d told busy, %d reset of %d", cur->name,
		served, busy, lost, N);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	counted = -1;
	for (int i = 0; i < 50 && counted < busy; i++) {
		poll(NULL, 0,
		     100); /* until the closes have freed descriptors */
		counted = rejected_total(&s);
	}
	T_CHECK(counted >= busy, "%s: %ld rejections counted, %d told busy",
		cur->name, counted, busy);
	stop_ok(&s);
}

/*
 * --header-timeout: a request must arrive whole within it of its first
 * byte. An HTTP head that stops short gets 408; a line, "ERR request
 * timeout"; both are closed. A connection that sends nothing is not timed.
 */
static void case_header_timeout(void)
{
	static const char *const args[] = {"--header-timeout", "1", NULL};
	struct resp r = {0};
	struct tsrv s;
	char buf[64];

	if (start_args(&s, args))
		return;
	T_CHECK(t_send(cl.fd, "GET /fib/1 HTTP/1.1\r\n" HOST_HDR) == 0);
	T_CHECK(read_resp(&r, 0) == 0 && r.status == 408, "%s: status %d",
		cur->name, r.status);
	T_CHECK(strstr(r.head, "Connection: close") != NULL &&
		    strcmp(r.body, "request timeout\n") == 0,
		"%s: '%s%s'", cur->name, r.head, r.body);
	T_CHECK(t_wait_eof(cl.fd), "%s: closes after 408", cur->name);
	close(cl.fd);
	cl = (struct client){.fd = tsrv_connect(&s, 0)};
	T_CHECK(t_ask(cl.fd, "12", buf, sizeof(buf)) &&
		    strcmp(buf, "ERR request timeout\n") == 0,
		"%s: a slow line got '%s'", cur->name, buf);
	T_CHECK(t_wait_eof(cl.fd), "%s: closes after the timeout", cur->name);
	close(cl.fd);
	cl = (struct client){.fd = tsrv_connect(&s, 0)};
	poll(NULL, 0, 1500);
	T_CHECK(t_ask(cl.fd, "12\n", buf, sizeof(buf)) &&
		    strcmp(buf, "144\n") == 0,
		"%s: a quiet connection got '%s'", cur->name, buf);
	stop_ok(&s);
}

#define CASE(fn, secs) TSRV_CASE(cur, fn, secs)

int main(void)
{
	int n = tsrv_list_models(models, MAX_MODELS);

	T_CHECK(n > 0, "no models listed");
	for (int i = 0; i < n; i++) {
		cur = &models[i];
		fprintf(stderr, "model %s (%s)\n", cur->name, cur->concurrency);
		CASE(case_get, 60);
		CASE(case_line_unaffected, 60);
		CASE(case_pipelined, 60);
		CASE(case_close, 60);
		CASE(case_head, 60);
		CASE(case_huge_header, 60);
		CASE(case_body_rejected, 60);
		CASE(case_read_framing, 60);
		CASE(case_curl, 60);
		CASE(case_metrics, 60);
		CASE(case_request_edges, 60);
		CASE(case_busy, 60);
		CASE(case_out_of_fds_sheds, 60);
		CASE(case_header_timeout, 60);
	}
	return t_done("test_http_models");
}
