/*
 * Unit tests for the request core, src/core/evconn.c, driven without I/O:
 * bytes go into c->in by hand, evconn_take() and friends answer, and the
 * replies are read from c->out. No socket is involved (fd -1), and no
 * pool: every fib is computed inline or by the compute callback.
 */
#include <stdlib.h>
#include <string.h>

#include "core/evconn.h"
#include "../t.h"

static struct proto_limits lim;
static struct evconn_cfg cfg;
static struct evconn conn;

/* A fresh connection over the default limits, or the ones just set. */
static struct evconn *fresh(void)
{
	evconn_cfg_init(&cfg, &lim, NULL, 0);
	evconn_init(&conn, -1, &cfg);
	return &conn;
}

static void put(struct evconn *c, const char *s)
{
	T_CHECK(buf_append(&c->in, s, strlen(s)) == 0);
}

/* Does the output hold exactly want? Consumes it. */
static int out_is(struct evconn *c, const char *want)
{
	size_t n = buf_used(&c->out);
	int ok = n == strlen(want) &&
		 (!n || memcmp(buf_head(&c->out), want, n) == 0);

	if (!ok)
		fprintf(stderr, "  out: '%.*s', want '%s'\n", (int)n,
			buf_head(&c->out), want);
	buf_consume(&c->out, n);
	return ok;
}

/* Does the output start with want? Consumes it. */
static int out_starts(struct evconn *c, const char *want)
{
	size_t n = buf_used(&c->out);
	int ok = n >= strlen(want) &&
		 memcmp(buf_head(&c->out), want, strlen(want)) == 0;

	buf_consume(&c->out, n);
	return ok;
}

static void test_lines(void)
{
	struct evconn *c;

	proto_limits_default(&lim);
	c = fresh();
	put(c, "1\n10\nabc\n");
	T_CHECK(!evconn_take(c));
	T_CHECK(out_is(c, "1\n55\nERR not a number\n"));
	T_CHECK(c->mode == EVCONN_LINE && c->state == EVCONN_OPEN);
	T_CHECK(c->progress && !evconn_partial(c));
	evconn_release(c);
	T_CHECK(c->state == EVCONN_CLOSED);
}

/* A line without its '\n' waits; at EOF it is a request, unless stopping. */
static void test_eof(void)
{
	struct evconn *c;

	proto_limits_default(&lim);
	c = fresh();
	put(c, "5\n1");
	evconn_take(c);
	T_CHECK(out_is(c, "5\n"));
	T_CHECK(evconn_partial(c));
	put(c, "2");
	evconn_take(c);
	T_CHECK(out_is(c, ""));
	evconn_eof(c);
	T_CHECK(out_is(c, "144\n"));
	T_CHECK(c->state == EVCONN_DRAINING && !buf_used(&c->in));
	evconn_release(c);

	c = fresh();
	put(c, "12");
	evconn_take(c);
	cfg.stopping = true;
	evconn_eof(c);
	T_CHECK(out_is(c, ""), "a stop drops the front of a line");
	T_CHECK(c->state == EVCONN_DRAINING);
	evconn_release(c);

	c = fresh();
	put(c, "GET /fib/1 HTTP/1.1\r\n");
	evconn_take(c);
	evconn_eof(c);
	T_CHECK(out_is(c, ""), "the front of an HTTP request is dropped");
	evconn_release(c);
}

static void test_too_long(void)
{
	char line[PROTO_MIN_MAX_LINE + 8];
	struct evconn *c;

	proto_limits_default(&lim);
	lim.max_line = PROTO_MIN_MAX_LINE;
	memset(line, '1', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	c = fresh();
	put(c, "3\n");
	put(c, line);
	T_CHECK(!evconn_take(c));
	T_CHECK(out_starts(c, "2\nERR line too long"));
	T_CHECK(c->state == EVCONN_FAILING && !buf_used(&c->in));
	evconn_release(c);
}

static void test_http(void)
{
	static const char req[] = "GET /fib/10 HTTP/1.1\r\nHost: t\r\n\r\n";
	struct evconn *c;
	char *body;

	proto_limits_default(&lim);
	c = fresh();
	put(c, "GET /fib/10 HT");
	evconn_take(c);
	T_CHECK(c->mode == EVCONN_HTTP && evconn_partial(c));
	put(c, req + strlen("GET /fib/10 HT"));
	evconn_take(c);
	T_CHECK(buf_append(&c->out, "", 1) == 0); /* terminated, for strstr */
	body = strstr(buf_head(&c->out), "\r\n\r\n");
	T_CHECK(strncmp(buf_head(&c->out), "HTTP/1.1 200 OK\r\n", 17) == 0);
	T_CHECK(body && strcmp(body, "\r\n\r\n55\n") == 0);
	buf_consume(&c->out, buf_used(&c->out));
	T_CHECK(c->state == EVCONN_OPEN && !evconn_partial(c));

	put(c, "GET /fib/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	put(c, "GET /fib/2 HTTP/1.1\r\nHost: t\r\n\r\n");
	evconn_take(c);
	T_CHECK(out_starts(c, "HTTP/1.1 200 OK\r\n"));
	T_CHECK(c->state == EVCONN_FAILING && !buf_used(&c->in),
		"a response that closes is the last");
	evconn_release(c);
}

static void test_read_framing(void)
{
	struct evconn *c;

	proto_limits_default(&lim);
	lim.framing = PROTO_FRAMING_READ;
	c = fresh();
	T_CHECK(evconn_read_size(c) == lim.max_line);
	put(c, "7");
	evconn_take(c);
	T_CHECK(out_is(c, "13\n"), "a read is a request, newline or not");
	put(c, " 8 \n");
	evconn_take(c);
	T_CHECK(out_is(c, "21\n"));
	evconn_release(c);

	lim.framing = PROTO_FRAMING_LINE;
	c = fresh();
	T_CHECK(evconn_read_size(c) == EVCONN_READ_CHUNK);
	T_CHECK(evconn_read_room(c) == c->in.data + c->in.len);
	T_CHECK(c->in.cap - c->in.len >= EVCONN_READ_CHUNK);
	evconn_release(c);
}

/* The compute callback: a driver's own compute, called for every fib. */
static unsigned computed;
static uint64_t computed_n;

static void fake_compute(void *ctx, const struct proto_limits *l, uint64_t n,
			 struct reply *r)
{
	(void)l;
	computed++;
	computed_n = n;
	reply_set(r, ctx, strlen(ctx));
}

static void test_compute_callback(void)
{
	struct evconn *c;

	proto_limits_default(&lim);
	c = fresh();
	cfg.compute = fake_compute;
	cfg.compute_ctx = "42\n";
	put(c, "1\n30\n-1\n");
	/* fib(30) waits until the reply before it is sent (see below). */
	T_CHECK(evconn_take(c));
	T_CHECK(out_is(c, "42\n"));
	T_CHECK(!evconn_take(c));
	T_CHECK(out_is(c, "42\nERR negative n\n"));
	T_CHECK(computed == 2 && computed_n == 30,
		"computed %u times, last n %llu", computed,
		(unsigned long long)computed_n);
	evconn_release(c);

	c = fresh();
	cfg.compute = fake_compute;
	cfg.compute_ctx = "7\n";
	put(c, "GET /fib/9 HTTP/1.1\r\nHost: t\r\n\r\n");
	evconn_take(c);
	T_CHECK(buf_append(&c->out, "", 1) == 0);
	T_CHECK(strstr(buf_head(&c->out), "\r\n\r\n7\n") != NULL,
		"an HTTP request computed by the callback");
	buf_consume(&c->out, buf_used(&c->out));
	evconn_release(c);
}

/*
 * A compute that is not cheap, on the driver's thread, waits until the
 * replies before it are sent: the core stops, as a cap does, with the
 * request still in the input; a pipelining client gets fib(1) before
 * fib(30) is computed. Cheap ones run on.
 */
static void test_send_before_slow(void)
{
	struct evconn *c;

	proto_limits_default(&lim);
	c = fresh();
	put(c, "1\n2\n25\n3\n");
	T_CHECK(evconn_take(c), "stopped before fib(25)");
	T_CHECK(out_is(c, "1\n1\n"));
	T_CHECK(buf_used(&c->in) == strlen("25\n3\n"), "25 still buffered");
	T_CHECK(!evconn_take(c));
	T_CHECK(out_is(c, "75025\n2\n"));
	evconn_release(c);

	/* Nothing waits in the output: no stop. Nor at EOF (the last one). */
	c = fresh();
	put(c, "25\n1\n26");
	T_CHECK(!evconn_take(c) && out_is(c, "75025\n1\n"));
	put(c, "");
	evconn_take(c);
	T_CHECK(buf_used(&c->out) == 0 && buf_used(&c->in) == 2);
	T_CHECK(buf_append(&c->out, "9\n", 2) == 0);
	evconn_eof(c);
	T_CHECK(out_is(c, "9\n121393\n"), "the last line answered at EOF");
	evconn_release(c);

	/* HTTP alike. */
	c = fresh();
	put(c, "GET /fib/1 HTTP/1.1\r\nHost: t\r\n\r\n"
	       "GET /fib/25 HTTP/1.1\r\nHost: t\r\n\r\n");
	T_CHECK(evconn_take(c));
	T_CHECK(out_starts(c, "HTTP/1.1 200"));
	T_CHECK(!evconn_take(c));
	T_CHECK(buf_append(&c->out, "", 1) == 0);
	T_CHECK(strstr(buf_head(&c->out), "\r\n\r\n75025\n") != NULL);
	buf_consume(&c->out, buf_used(&c->out));
	evconn_release(c);
}

/* The one "request timed out" answer and the one "busy" answer. */
static void test_timeout_and_shed(void)
{
	struct evconn *c;

	proto_limits_default(&lim);
	c = fresh();
	put(c, "1\n12");
	evconn_take(c);
	evconn_timeout(c);
	T_CHECK(out_is(c, "1\n" PROTO_TIMEOUT_LINE));
	T_CHECK(c->state == EVCONN_FAILING && !buf_used(&c->in));
	T_CHECK(c->linger_ms == EVCONN_LINGER_MS);
	evconn_release(c);

	c = fresh();
	put(c, "GE"); /* a method's prefix: an HTTP client */
	evconn_take(c);
	evconn_timeout(c);
	T_CHECK(out_starts(c, "HTTP/1.1 408 Request Timeout\r\n"));
	evconn_release(c);

	c = fresh();
	put(c, "12");
	evconn_take(c);
	evconn_shed(c);
	T_CHECK(out_is(c, "ERR server busy\n"));
	T_CHECK(c->state == EVCONN_FAILING && c->linger_ms == 0);
	evconn_release(c);

	c = fresh();
	put(c, "GET /fib/1 HTTP/1.1\r\n");
	evconn_take(c);
	evconn_shed(c);
	T_CHECK(out_starts(c, "HTTP/1.1 408 Request Timeout\r\n"));
	evconn_timeout(c); /* a second answer: none */
	T_CHECK(out_is(c, ""));
	evconn_release(c);
}

/* The output cap stops the core; once the output is sent it goes on. */
static void test_output_cap(void)
{
	enum {
		LINES = EVCONN_OUT_MAX / 2 + 1000
	};
	struct evconn *c;
	size_t total = 0;
	int rounds = 0, err = 0;
	bool capped;

	proto_limits_default(&lim);
	c = fresh();
	for (int i = 0; i < LINES; i++)
		err |= buf_append(&c->in, "1\n", 2);
	T_CHECK(!err);
	do {
		capped = evconn_take(c);
		T_CHECK(buf_used(&c->out) <= EVCONN_OUT_MAX);
		T_CHECK(!capped || !evconn_can_take(c));
		total += buf_used(&c->out);
		buf_consume(&c->out, buf_used(&c->out));
		rounds++;
	} while (capped && rounds < 10);
	T_CHECK(rounds == 2 && total == 2 * LINES, "%d rounds, %zu bytes",
		rounds, total);
	T_CHECK(!buf_used(&c->in) && !evconn_partial(c));
	evconn_release(c);
}

static void test_lingered(void)
{
	struct evconn *c;

	proto_limits_default(&lim);
	c = fresh();
	c->state = EVCONN_LINGER;
	T_CHECK(evconn_lingered(c, EVCONN_LINGER_MAX - 1));
	T_CHECK(c->state == EVCONN_LINGER);
	T_CHECK(!evconn_lingered(c, 1));
	T_CHECK(c->state == EVCONN_DONE);
	evconn_release(c);
}

int main(void)
{
	T_RUN(test_lines, 10);
	T_RUN(test_eof, 10);
	T_RUN(test_too_long, 10);
	T_RUN(test_http, 10);
	T_RUN(test_read_framing, 10);
	T_RUN(test_compute_callback, 10);
	T_RUN(test_send_before_slow, 10);
	T_RUN(test_timeout_and_shed, 10);
	T_RUN(test_output_cap, 10);
	T_RUN(test_lingered, 10);
	return t_done("test_evconn");
}
