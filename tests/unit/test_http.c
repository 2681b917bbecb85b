/*
 * Unit tests for src/core/http: sniffing, the head parser, routing and
 * response formatting. Every input ends at a guard page (tests/lib/tguard),
 * and the parser is also fed every prefix of its input.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/http.h"
#include "../lib/tguard.h"
#include "../t.h"

#define S(str) t_guarded(str, sizeof(str) - 1), sizeof(str) - 1

static void test_sniff(void)
{
	T_CHECK(http_sniff(S("GET /fib/1 HTTP/1.1\r\n")) == 1);
	T_CHECK(http_sniff(S("HEAD ")) == 1);
	T_CHECK(http_sniff(S("ABCDEFGHIJKLMNOP ")) == 1, "16 letters");
	T_CHECK(http_sniff(S("ABCDEFGHIJKLMNOPQ")) == 0, "17 letters");
	T_CHECK(http_sniff(S("")) == HTTP_SNIFF_MORE);
	T_CHECK(http_sniff(S("G")) == HTTP_SNIFF_MORE);
	T_CHECK(http_sniff(S("GET")) == HTTP_SNIFF_MORE);
	T_CHECK(http_sniff(S("30\n")) == 0);
	T_CHECK(http_sniff(S("+30\n")) == 0);
	T_CHECK(http_sniff(S(" GET / HTTP/1.1")) == 0, "a blank first");
	T_CHECK(http_sniff(S(" ")) == 0);
	T_CHECK(http_sniff(S("get / HTTP/1.1")) == 0, "lower case");
	T_CHECK(http_sniff(S("GET\n")) == 0);
	T_CHECK(http_sniff(S("GE7 ")) == 0);
	T_CHECK(http_sniff(S("\r\n")) == 0);
	T_CHECK(http_sniff(S("\n")) == 0);
	T_CHECK(http_sniff(S("\xc3\x89 ")) == 0);
	/* Empty lines, then a method in the same bytes: HTTP (RFC 9112 2.2). */
	T_CHECK(http_sniff(S("\r\nGET / HTTP/1.1\r\n")) == 1);
	T_CHECK(http_sniff(S("\n\r\n\nHEAD ")) == 1);
	T_CHECK(http_sniff(S("\r\nGE")) == HTTP_SNIFF_MORE);
	/* Empty lines alone, or before anything else: fib/1's empty requests.
	 */
	T_CHECK(http_sniff(S("\r\n\r\n")) == 0);
	T_CHECK(http_sniff(S("\r\n30\n")) == 0);
	T_CHECK(http_sniff(S("\r\r\nGET ")) == 0, "a bare CR is no empty line");
	T_CHECK(http_sniff(S("\r")) == 0);
}

static struct http_header hdrs[8];
static struct http_request req;

static ssize_t parse(const char *s, size_t len, size_t max_head)
{
	return http_parse_request(t_guarded(s, len), len, max_head, &req, hdrs,
				  8);
}

#define PARSE(str, want)                                                       \
	T_CHECK(parse(str, sizeof(str) - 1, HTTP_HEAD_MAX) == (want),          \
		"parse %s: %zd", #str, parse(str, sizeof(str) - 1, 8192))

static int field_is(size_t i, const char *name, const char *value)
{
	return i < req.num_headers && hdrs[i].name_len == strlen(name) &&
	       memcmp(hdrs[i].name, name, strlen(name)) == 0 &&
	       hdrs[i].value_len == strlen(value) &&
	       memcmp(hdrs[i].value, value, strlen(value)) == 0;
}

static void test_parse_ok(void)
{
	static const char r[] = "GET /fib/30?a=b HTTP/1.1\r\nHost: x\r\n"
				"Accept:  */* \t\r\nX-Empty:\r\n\r\nNEXT";

	PARSE(r, (ssize_t)sizeof(r) - 5);
	T_CHECK(req.method_len == 3 && memcmp(req.method, "GET", 3) == 0);
	T_CHECK(req.target_len == 11 &&
		memcmp(req.target, "/fib/30?a=b", 11) == 0);
	T_CHECK(req.major == 1 && req.minor == 1);
	T_CHECK(req.num_headers == 3, "%zu fields", req.num_headers);
	T_CHECK(field_is(0, "Host", "x"));
	T_CHECK(field_is(1, "Accept", "*/*"), "value trimmed");
	T_CHECK(field_is(2, "X-Empty", ""));
	PARSE("GET / HTTP/1.0\n\n", 16);
	T_CHECK(req.minor == 0 && req.num_headers == 0);
	PARSE("GET / HTTP/1.0\nA: b\n\n", 21);
	PARSE("\r\n\nGET / HTTP/1.1\r\n\r\n", 21); /* leading empty lines */
	PARSE("OPTIONS * HTTP/1.1\r\n\r\n", 22);
	PARSE("GET / HTTP/2.0\r\n\r\n", 18);
	T_CHECK(req.major == 2);
	PARSE("GET / HTTP/1.1\r\nA: b\xff\r\n\r\n", 25); /* obs-text */
}

static void test_parse_partial(void)
{
	static const char r[] = "GET /fib/1 HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t len = sizeof(r) - 1;

	for (size_t i = 0; i < len; i++)
		T_CHECK(parse(r, i, HTTP_HEAD_MAX) == HTTP_PARSE_PARTIAL,
			"prefix of %zu bytes", i);
	T_CHECK(parse(r, len, HTTP_HEAD_MAX) == (ssize_t)len);
	PARSE("\r\n\r\n", HTTP_PARSE_PARTIAL); /* empty lines are no head */
}

static void test_parse_bad(void)
{
	PARSE("GET  / HTTP/1.1\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1 \r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET /\r\n\r\n", HTTP_PARSE_FAILED); /* HTTP/0.9 */
	PARSE("GET / HTTP/11\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / http/1.1\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.x\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET /a\x01 HTTP/1.1\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("G(T / HTTP/1.1\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE(" / HTTP/1.1\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\nNoColon\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\nName : v\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\n: v\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", HTTP_PARSE_FAILED);
	PARSE("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", HTTP_PARSE_FAILED);
}

static void test_parse_limits(void)
{
	static char big[HTTP_HEAD_MAX + 64];
	static const char start[] = "GET / HTTP/1.1\r\nX: ";
	size_t n;

	/* A head of exactly max_head bytes fits; one more does not. */
	memset(big, 'a', sizeof(big));
	memcpy(big, start, sizeof(start) - 1);
	memcpy(big + 100 - 4, "\r\n\r\n", 4);
	T_CHECK(parse(big, 100, 100) == 100);
	T_CHECK(parse(big, 100, 99) == HTTP_PARSE_TOO_LARGE);
	T_CHECK(parse(big, 99, 100) == HTTP_PARSE_PARTIAL);
	/* Endless input without an empty line. */
	memset(big + sizeof(start) - 1, 'a', sizeof(big) - sizeof(start) + 1);
	n = HTTP_HEAD_MAX;
	T_CHECK(parse(big, n - 1, HTTP_HEAD_MAX) == HTTP_PARSE_PARTIAL);
	T_CHECK(parse(big, n, HTTP_HEAD_MAX) == HTTP_PARSE_TOO_LARGE);
	T_CHECK(parse(big, sizeof(big), HTTP_HEAD_MAX) == HTTP_PARSE_TOO_LARGE);
	/* A request line that does not end within max_head: 414, not 431. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "\r\nGET /", 7);
	T_CHECK(parse(big, HTTP_HEAD_MAX, HTTP_HEAD_MAX) ==
		HTTP_PARSE_URI_TOO_LONG);
	T_CHECK(parse(big, HTTP_HEAD_MAX - 1, HTTP_HEAD_MAX) ==
		HTTP_PARSE_PARTIAL);
	big[HTTP_HEAD_MAX - 1] = '\n'; /* it ends at the last byte: fields */
	T_CHECK(parse(big, HTTP_HEAD_MAX, HTTP_HEAD_MAX) ==
		HTTP_PARSE_TOO_LARGE);
	/* Nothing but empty lines: no request line to blame. */
	for (size_t i = 0; i + 1 < sizeof(big); i += 2)
		memcpy(big + i, "\r\n", 2);
	T_CHECK(parse(big, HTTP_HEAD_MAX, HTTP_HEAD_MAX) ==
		HTTP_PARSE_TOO_LARGE);
	/* More fields than the caller has room for. */
	PARSE("GET / HTTP/1.1\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\ne:5\r\nf:6\r\n"
	      "g:7\r\nh:8\r\n\r\n",
	      58);
	PARSE("GET / HTTP/1.1\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\ne:5\r\nf:6\r\n"
	      "g:7\r\nh:8\r\ni:9\r\n\r\n",
	      HTTP_PARSE_TOO_LARGE);
}

static struct proto_limits lim;
static struct http_exchange x;

static size_t next(const char *s, size_t len, bool draining)
{
	return http_next(&lim, t_guarded(s, len), len, draining, &x);
}

#define NEXT(str) next(str, sizeof(str) - 1, false)

/* The body http_body() gives x, compared with want. */
static int body_is(const char *want)
{
	struct reply r;
	int ok;

	http_body(&lim, &x, &r);
	ok = r.len == strlen(want) && memcmp(r.text, want, r.len) == 0;
	if (!ok)
		fprintf(stderr, "body '%.*s' want '%s'\n", (int)r.len, r.text,
			want);
	reply_release(&r);
	return ok;
}

static void test_route_fib(void)
{
	proto_limits_default(&lim);
	T_CHECK(NEXT("GET /fib/30 HTTP/1.1\r\nHost: h\r\n\r\n") == 33);
	T_CHECK(x.route == HTTP_ROUTE_FIB && x.st == PROTO_OK && x.n == 30);
	T_CHECK(http_wants_compute(&x) && x.resp.status == 200);
	T_CHECK(!x.resp.close && !x.resp.head && !x.resp.keep_alive);
	NEXT("GET /fib/x HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(!http_wants_compute(&x) && x.resp.status == 400);
	T_CHECK(body_is("ERR not a number\n") && !x.resp.close);
	NEXT("GET /fib/1000 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 400 && body_is("ERR n too large (max 45)\n"));
	NEXT("GET /fib/-1 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(body_is("ERR negative n\n"));
	NEXT("GET /fib/ HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(body_is("ERR empty request\n"));
	NEXT("GET /fib/+7?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.st == PROTO_OK && x.n == 7, "query ignored");
	NEXT("GET http://h:1/fib/9 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.st == PROTO_OK && x.n == 9, "absolute form");
	NEXT("HEAD /fib/5 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.head && http_wants_compute(&x));
	NEXT("GET /fib/30/ HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 400);
}

static void test_route_other(void)
{
	proto_limits_default(&lim);
	NEXT("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.route == HTTP_ROUTE_HEALTHZ && x.resp.status == 200);
	T_CHECK(body_is("ok\n") && !x.resp.close);
	next(S("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"), true);
	T_CHECK(x.resp.status == 503 && x.resp.close, "draining");
	T_CHECK(body_is("stopping\n"));
	NEXT("GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.route == HTTP_ROUTE_METRICS && x.resp.metrics);
	NEXT("GET /fib HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 404 && !x.resp.close);
	T_CHECK(body_is("not found\n"));
	NEXT("GET /healthz/ HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 404);
	NEXT("POST /fib/1 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 405 && !x.resp.close);
	NEXT("get /fib/1 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 405, "methods are case-sensitive");
}

static void test_connection(void)
{
	proto_limits_default(&lim);
	NEXT("GET /fib/1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
	T_CHECK(x.resp.close && x.resp.status == 200);
	NEXT("GET /fib/1 HTTP/1.1\r\nHost: h\r\nconnection: Upgrade, CLOSE\r\n"
	     "\r\n");
	T_CHECK(x.resp.close, "a token among others");
	NEXT("GET /fib/1 HTTP/1.0\r\n\r\n");
	T_CHECK(x.resp.close && !x.resp.keep_alive, "1.0 closes");
	NEXT("GET /fib/1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
	T_CHECK(!x.resp.close && x.resp.keep_alive);
	NEXT(
	    "GET /fib/1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
	T_CHECK(!x.resp.close && !x.resp.keep_alive, "1.1 says nothing");
}

/* A request that must be answered with status, then close. */
#define CLOSES(str, want)                                                      \
	do {                                                                   \
		NEXT(str);                                                     \
		T_CHECK(x.resp.status == (want) && x.resp.close,               \
			"%s: status %d close %d", #str, x.resp.status,         \
			x.resp.close);                                         \
	} while (0)

static void test_framing_errors(void)
{
	static char big[HTTP_HEAD_MAX + 10];

	proto_limits_default(&lim);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
	       413);
	CLOSES("POST /fib/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n",
	       405);
	CLOSES("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400);
	CLOSES("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
	       "Content-Length: 2\r\n\r\n",
	       400);
	CLOSES("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: "
	       "99999999999999999999999\r\n\r\n",
	       400);
	CLOSES(
	    "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
	    501);
	CLOSES("GET /fib/1 HTTP/1.1\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/2.0\r\nHost: a\r\n\r\n", 505);
	CLOSES("GET  /fib/1 HTTP/1.1\r\n\r\n", 400);
	T_CHECK(body_is("bad request\n"));
	/* Content-Length: 0 is no body. */
	NEXT("GET /fib/2 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
	T_CHECK(x.resp.status == 200 && !x.resp.close);
	/* A head too large consumes everything and closes. */
	memset(big, 'A', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	T_CHECK(next(big, sizeof(big), false) == sizeof(big));
	T_CHECK(x.resp.status == 431 && x.resp.close);
	T_CHECK(body_is("request head too large (max 8192 bytes)\n"));
	T_CHECK(next(big, 100, false) == 0, "partial");
}

static void test_uri_too_long(void)
{
	static char big[HTTP_HEAD_MAX + 100];

	proto_limits_default(&lim);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /fib/", 9);
	T_CHECK(next(big, sizeof(big), false) == sizeof(big));
	T_CHECK(x.resp.status == 414 && x.resp.close, "status %d",
		x.resp.status);
	T_CHECK(body_is("request line too long (max 8192 bytes)\n"));
}

static void test_host(void)
{
	proto_limits_default(&lim);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400);
	T_CHECK(body_is("bad Host\n"));
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: a@b\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: []\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.1\r\nHost: a%2\r\n\r\n", 400);
	CLOSES("GET /fib/1 HTTP/1.0\r\nHost: a\"b\r\n\r\n", 400);
	static const char *const good[] = {
	    "example.com",
	    "example.com:8080",
	    "127.0.0.1:25000",
	    "[::1]",
	    "[::1]:80",
	    "a-b_c~d.e",
	    "a%20b",
	    "x:",
	    "",
	    "[v1.fe80::a+en1]",
	    "sub!$&'()*+,;=",
	};
	char get[128];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int n = snprintf(get, sizeof(get),
				 "GET /fib/3 HTTP/1.1\r\nHost: %s\r\n\r\n",
				 good[i]);
		next(get, (size_t)n, false);
		T_CHECK(x.resp.status == 200 && !x.resp.close, "Host '%s': %d",
			good[i], x.resp.status);
	}
}

/* Empty lines before the request line are skipped, and count in the head. */
static void test_leading_empty_lines(void)
{
	proto_limits_default(&lim);
	T_CHECK(NEXT("\r\n\nGET /fib/7 HTTP/1.1\r\nHost: h\r\n\r\n") == 35);
	T_CHECK(x.resp.status == 200 && x.n == 7);
}

static void test_index(void)
{
	proto_limits_default(&lim);
	NEXT("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.route == HTTP_ROUTE_INDEX && x.resp.status == 200 &&
		!x.resp.close);
	struct reply r;
	http_body(&lim, &x, &r);
	T_CHECK(memmem(r.text, r.len, "/fib/N", 6) &&
		    memmem(r.text, r.len, "/metrics", 8) &&
		    memmem(r.text, r.len, "/healthz", 8) &&
		    memmem(r.text, r.len, "line protocol", 13),
		"'%.*s'", (int)r.len, r.text);
	T_CHECK(r.text[r.len - 1] == '\n');
	reply_release(&r);
	NEXT("GET /?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.route == HTTP_ROUTE_INDEX, "a query is ignored");
	NEXT("GET //x HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 404);
}

static bool drain_on(void)
{
	return true;
}

static void test_healthz_drain(void)
{
	proto_limits_default(&lim);
	http_set_drain_probe(drain_on);
	NEXT("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.route == HTTP_ROUTE_HEALTHZ && x.resp.status == 503 &&
		x.resp.close);
	T_CHECK(body_is("draining\n"));
	/* Everything else is served as usual during a drain. */
	NEXT("GET /fib/10 HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 200 && x.n == 10 && !x.resp.close);
	http_set_drain_probe(NULL); /* stop_draining(): no drain here */
	NEXT("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
	T_CHECK(x.resp.status == 200 && body_is("ok\n"));
}

static void test_timeout(void)
{
	struct buf out = BUF_INIT;
	struct reply r;

	proto_limits_default(&lim);
	http_timeout(&x);
	T_CHECK(x.resp.status == 408 && x.resp.close);
	http_body(&lim, &x, &r);
	T_CHECK(http_append(&out, &x.resp, &r) == 0);
	T_CHECK(
	    buf_used(&out) > 30 &&
	    memcmp(buf_head(&out), "HTTP/1.1 408 Request Timeout\r\n", 30) ==
		0 &&
	    memmem(buf_head(&out), buf_used(&out), "Connection: close", 17));
	reply_release(&r);
	buf_free(&out);
}

static void test_busy(void)
{
	char out[HTTP_BUSY_MAX + 1];
	size_t n;

	n = http_busy_reply(S("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"), out);
	out[n] = '\0';
	T_CHECK(strncmp(out, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0,
		"'%s'", out);
	T_CHECK(strstr(out, "\r\nRetry-After: 1\r\n") &&
		    strstr(out, "\r\nConnection: close\r\n") &&
		    strstr(out, "\r\nDate: ") &&
		    strstr(out, "\r\nContent-Length: 16\r\n") &&
		    strcmp(out + n - 20, "\r\n\r\nERR server busy\n") == 0,
		"'%s'", out);
	n = http_busy_reply(S("GE"), out);
	T_CHECK(n > 16 && memcmp(out, "HTTP/1.1 503", 12) == 0,
		"a method's prefix is HTTP");
	n = http_busy_reply(S("30\n"), out);
	T_CHECK(n == 16 && memcmp(out, "ERR server busy\n", 16) == 0);
	n = http_busy_reply(S(""), out);
	T_CHECK(n == 16 && memcmp(out, "ERR server busy\n", 16) == 0,
		"nothing came: the line");
	n = http_busy_reply(S("\r\n"), out);
	T_CHECK(n == 16, "an empty line is fib/1");
}

static void test_date(void)
{
	char d[HTTP_DATE_LEN + 1];
	static const struct {
		time_t t;
		const char *s;
	} dates[] = {
	    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
	    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"}, /* RFC 9110's */
	    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
	    {1798761599, "Thu, 31 Dec 2026 23:59:59 GMT"},
	    {4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"},
	};

	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		size_t n = http_format_date(d, dates[i].t);

		d[n] = '\0';
		T_CHECK(n == HTTP_DATE_LEN && strcmp(d, dates[i].s) == 0,
			"%lld: '%s' want '%s'", (long long)dates[i].t, d,
			dates[i].s);
	}
}

static void test_pipelined(void)
{
	static const char two[] = "GET /fib/1 HTTP/1.1\r\nHost: h\r\n\r\n"
				  "GET /fib/2 HTTP/1.1\r\nHost: h\r\n\r\n";
	const char *p = t_guarded(two, sizeof(two) - 1);
	size_t used;

	proto_limits_default(&lim);
	used = http_next(&lim, p, sizeof(two) - 1, false, &x);
	T_CHECK(used == 32 && x.n == 1);
	used = http_next(&lim, p + used, sizeof(two) - 1 - used, false, &x);
	T_CHECK(used == 32 && x.n == 2);
}

/*
 * http_append() of body under resp, compared with want, which has no Date:
 * the response must carry one right after the status line, dated today.
 */
static void check_response(const struct http_resp *resp, const char *body,
			   const char *want)
{
	const size_t line = 8 + HTTP_DATE_LEN; /* "\r\nDate: " and the date */
	char got[512], today[HTTP_DATE_LEN + 1];
	struct buf out = BUF_INIT;
	struct reply r;
	char *eol;
	size_t n;
	int ok;

	reply_set(&r, body, strlen(body));
	T_CHECK(http_append(&out, resp, &r) == 0);
	n = buf_used(&out) < sizeof(got) - 1 ? buf_used(&out) : sizeof(got) - 1;
	memcpy(got, buf_head(&out), n);
	got[n] = '\0';
	eol = strstr(got, "\r\n");
	ok = eol && strncmp(eol, "\r\nDate: ", 8) == 0 &&
	     (size_t)(eol - got) + line + 2 <= n &&
	     strncmp(eol + line, "\r\n", 2) == 0;
	T_CHECK(ok, "no Date after the status line: '%s'", got);
	if (ok) {
		today[http_format_date(today, time(NULL))] = '\0';
		T_CHECK(memcmp(eol + 8, today, 16) == 0, "Date '%.29s' on %s",
			eol + 8, today);
		n -= line;
		memmove(eol, eol + line, n - (size_t)(eol - got) + 1);
	}
	T_CHECK(n == strlen(want) && memcmp(got, want, n) == 0, "got '%s'",
		got);
	reply_release(&r);
	buf_free(&out);
}

static void test_format(void)
{
	struct http_resp ok = {.status = 200};
	struct http_resp head = {.status = 200, .head = true};
	struct http_resp ka = {.status = 404, .keep_alive = true};
	struct http_resp bye = {.status = 405, .close = true};
	struct http_resp met = {.status = 200, .metrics = true};

	check_response(&ok, "832040\n",
		       "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
		       "charset=utf-8\r\nContent-Length: 7\r\n\r\n832040\n");
	check_response(&head, "832040\n",
		       "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
		       "charset=utf-8\r\nContent-Length: 7\r\n\r\n");
	check_response(&ka, "not found\n",
		       "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; "
		       "charset=utf-8\r\nContent-Length: 10\r\n"
		       "Connection: keep-alive\r\n\r\nnot found\n");
	check_response(&bye, "x\n",
		       "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: "
		       "text/plain; charset=utf-8\r\nContent-Length: 2\r\n"
		       "Allow: GET, HEAD\r\nConnection: close\r\n\r\nx\n");
	check_response(&met, "a 1\n",
		       "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
		       "version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
		       "\r\na 1\n");
	/* A compute that failed: the 200 becomes a 500. */
	check_response(&ok, "ERR internal error\n",
		       "HTTP/1.1 500 Internal Server Error\r\nContent-Type: "
		       "text/plain; charset=utf-8\r\nContent-Length: 19\r\n"
		       "\r\nERR internal error\n");
}

/* The longest head fits HTTP_RESP_HEAD_MAX. */
static void test_format_bound(void)
{
	static const int codes[] = {200, 400, 404, 405, 408, 413,
				    414, 431, 500, 501, 503, 505};
	struct http_resp r = {.close = true, .metrics = true};
	char head[HTTP_RESP_HEAD_MAX];
	size_t max = 0, n;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		r.status = (uint16_t)codes[i];
		n = http_format_head(head, codes[i], &r, SIZE_MAX);
		max = n > max ? n : max;
	}
	T_CHECK(max < HTTP_RESP_HEAD_MAX, "longest head %zu", max);
}

/*
 * Mutated requests (bytes flipped, inserted, cut short) through the whole
 * decision path, every input at the guard page: nothing crashes or reads
 * past the end, a decision never consumes more than it was given, and a
 * head that parses also parses alone, to the same length.
 */
static void test_mutations(void)
{
	static const char seed[] = "GET /fib/30 HTTP/1.1\r\nHost: h\r\n"
				   "Connection: keep-alive\r\n"
				   "Content-Length: 0\r\n\r\n"
				   "HEAD /metrics HTTP/1.0\r\n\r\n";
	static const char alphabet[] = " \r\n:/\t\0\x7f\xffGET0123456789";
	char in[256];
	size_t len, used;
	ssize_t n, again;
	int bad = 0;

	proto_limits_default(&lim);
	srand(12345);
	for (int i = 0; i < 20000 && bad < 5; i++) {
		len = sizeof(seed) - 1;
		memcpy(in, seed, len);
		for (int k = rand() % 4; k >= 0; k--)
			in[rand() % len] =
			    alphabet[rand() % (sizeof(alphabet) - 1)];
		len = (size_t)rand() % (len + 1);
		used = next(in, len, i & 1);
		n = parse(in, len, 64);
		again = n > 0 ? parse(in, (size_t)n, 64) : n;
		if (used > len || n > (ssize_t)len || again != n) {
			fprintf(stderr, "input %d: used %zu n %zd again %zd\n",
				i, used, n, again);
			bad++;
		}
	}
	T_CHECK(bad == 0);
}

int main(void)
{
	T_RUN(test_sniff, 10);
	T_RUN(test_parse_ok, 10);
	T_RUN(test_parse_partial, 10);
	T_RUN(test_parse_bad, 10);
	T_RUN(test_parse_limits, 10);
	T_RUN(test_route_fib, 10);
	T_RUN(test_route_other, 10);
	T_RUN(test_connection, 10);
	T_RUN(test_framing_errors, 10);
	T_RUN(test_uri_too_long, 10);
	T_RUN(test_host, 10);
	T_RUN(test_leading_empty_lines, 10);
	T_RUN(test_index, 10);
	T_RUN(test_healthz_drain, 10);
	T_RUN(test_timeout, 10);
	T_RUN(test_busy, 10);
	T_RUN(test_date, 10);
	T_RUN(test_pipelined, 10);
	T_RUN(test_format, 10);
	T_RUN(test_format_bound, 10);
	T_RUN(test_mutations, 30);
	return t_done("test_http");
}
