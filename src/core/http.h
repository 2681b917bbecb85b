/*
 * http - HTTP/1.1 on fibd's port, sans I/O: sniffing, a request-head parser,
 * routing (http.c) and response formatting (http_resp.c). The request
 * core (evconn.c) calls it, and its drivers move the bytes and decide who
 * computes; what a request means is decided here and in proto.
 *
 * Sniffing. A connection speaks HTTP when its first bytes are a method
 * token, 1 to HTTP_METHOD_MAX upper-case letters A-Z, then a space
 * ("GET /fib/30 HTTP/1.1"). A fib/1 request never starts that way: its line
 * is blanks, an optional sign and digits, so upper-case letters and a space
 * at its start are already "ERR not a number". Anything else (a digit, a
 * blank, a sign, a lower-case letter, '\r', '\n') means the line protocol.
 * The decision is taken once per connection, on its first bytes; until they
 * decide, the engine waits for more (or, at EOF, serves them as a line).
 *
 * Empty lines first. RFC 9112 2.2 lets a server skip empty lines (CRLF or
 * LF) before a request line, and some clients send one after a previous
 * request's body. On fib/1 an empty line is a request of its own ("ERR
 * empty request", answered at once). Both hold with one rule: empty lines
 * followed, in the same bytes, by a method token and a space open HTTP
 * (the parser skips them); empty lines that are all there is, or followed
 * by anything else, are the line protocol. So a client that types Enter
 * gets its ERR at once, and an HTTP client's leading CRLF arrives with its
 * request line in one segment.
 *
 * Routes (GET, or HEAD for the same headers without the body):
 *   /         200 and a short index of this port: the routes below and
 *             the line protocol
 *   /fib/N    200 and fib(N) with '\n', exactly the line protocol's reply;
 *             a bad N is 400 whose body is the ERR line the line protocol
 *             sends (proto_parse() judges N), a failed compute 500
 *   /healthz  200 "ok" while serving; 503 "draining" during a --drain
 *             (stop_draining()), 503 "stopping" once a stop has begun;
 *             a 503 closes the connection
 *   /metrics  200 and every counter in Prometheus text format (metrics.h)
 *   other     404; a method other than GET and HEAD is 405
 * A query string is ignored; an absolute URI (http://host/fib/1) is routed
 * by its path.
 *
 * Connections. HTTP/1.1 keeps the connection open unless the request says
 * "Connection: close"; HTTP/1.0 closes it unless it says
 * "Connection: keep-alive". Pipelined requests are answered in order.
 * These close it after their response, because the framing of what follows
 * cannot be trusted: a malformed head (400), a request line that does not
 * end within HTTP_HEAD_MAX (414), a head longer than HTTP_HEAD_MAX or with
 * more than HTTP_HEADERS_MAX fields (431), a request with a body
 * (Content-Length > 0: 413, or 405 for a method we do not serve),
 * Transfer-Encoding (501), an HTTP major version other than 1 (505), an
 * HTTP/1.1 request without exactly one Host, or a Host that is not
 * uri-host [":" port] (400). fibd serves no request bodies, so it never
 * has to skip one and cannot desynchronise. An engine whose client sends
 * a head too slowly (--header-timeout) answers http_timeout(): 408, close.
 *
 * Every response carries Date (an IMF-fixdate, formatted once a second per
 * thread); a 503 carries Retry-After.
 */
#ifndef FIBD_CORE_HTTP_H
#define FIBD_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "proto.h"

#define HTTP_METHOD_MAX	   16	/* the longest method token sniffed */
#define HTTP_HEAD_MAX	   8192 /* request line + headers, as nginx's 8k */
#define HTTP_HEADERS_MAX   64	/* header fields in one request */
#define HTTP_RESP_HEAD_MAX 256	/* the longest response head we format */
#define HTTP_DATE_LEN	   29	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HTTP_RETRY_AFTER_S "1"	/* a 503's Retry-After, in seconds */
/* The longest http_busy_reply(): a head and "ERR server busy\n". */
#define HTTP_BUSY_MAX (HTTP_RESP_HEAD_MAX + 16)

/*
 * Does buf[0..len), the first bytes of a connection, open an HTTP request?
 * Returns 1 (HTTP), 0 (the line protocol) or HTTP_SNIFF_MORE when every
 * byte so far (after leading empty lines) is a possible method prefix and
 * more must come. Empty lines alone are 0 (see "Empty lines first").
 * Reads nothing past len.
 */
#define HTTP_SNIFF_MORE (-2)
int http_sniff(const char *buf, size_t len);

/* One header field: pointers into the caller's buffer, not terminated. */
struct http_header {
	const char *name;
	size_t name_len;
	const char *value; /* leading and trailing blanks removed */
	size_t value_len;
};

/* A parsed request head; every pointer points into the caller's buffer. */
struct http_request {
	const char *method;
	size_t method_len;
	const char *target; /* the request-target, as sent */
	size_t target_len;
	int major, minor; /* HTTP/major.minor */
	struct http_header *headers;
	size_t num_headers;
};

/* http_parse_request()'s results other than a length. */
#define HTTP_PARSE_FAILED    (-1) /* not a valid request head */
#define HTTP_PARSE_PARTIAL   (-2) /* no complete head yet: read more */
#define HTTP_PARSE_TOO_LARGE (-3) /* over max_head bytes or max headers */
#define HTTP_PARSE_URI_TOO_LONG                                                \
	(-4) /* the request line alone does not end within max_head */

/*
 * Parses one request head (request line, header fields, empty line) at the
 * start of buf[0..len), picohttpparser's way: it allocates nothing and
 * fills req with pointers into buf; headers[0..max_headers) receives the
 * fields. Lines end in CRLF or a bare LF.
 * Returns the head's length (> 0), the request's first body byte being
 * buf[len]; HTTP_PARSE_PARTIAL (-2) when the head is not complete yet and
 * may still fit; HTTP_PARSE_URI_TOO_LONG (-4) when not even the request
 * line ends within max_head; HTTP_PARSE_TOO_LARGE (-3) when the head is
 * longer than max_head otherwise, or has more than max_headers fields;
 * HTTP_PARSE_FAILED (-1) when it is
 * malformed (a bad request line, a control character, a field without a
 * colon or with blanks before it, an obsolete folded line). Never reads
 * past len.
 */
ssize_t http_parse_request(const char *buf, size_t len, size_t max_head,
			   struct http_request *req,
			   struct http_header *headers, size_t max_headers);

/* What a request resolved to. */
enum http_route {
	HTTP_ROUTE_FIB,	    /* /fib/N: st and n say what proto_parse said */
	HTTP_ROUTE_HEALTHZ, /* /healthz */
	HTTP_ROUTE_METRICS, /* /metrics */
	HTTP_ROUTE_INDEX,   /* /: what this port serves */
	HTTP_ROUTE_ERROR,   /* status is an error with a fixed reason */
};

/* How to frame one response; small, so that a reply slot can hold it. */
struct http_resp {
	uint16_t status; /* 200, 400, ... (0 in a line-protocol slot) */
	bool head;	 /* HEAD: the headers only, Content-Length kept */
	bool close;	 /* "Connection: close", then the engine closes */
	bool keep_alive; /* an HTTP/1.0 keep-alive: say so */
	bool metrics;	 /* the body is the Prometheus exposition format */
};

/* One request, decided. */
struct http_exchange {
	struct http_resp resp;
	enum http_route route;
	enum proto_status st; /* HTTP_ROUTE_FIB: proto_parse()'s verdict */
	uint64_t n;	      /* HTTP_ROUTE_FIB with PROTO_OK: compute this */
	const char *reason;   /* HTTP_ROUTE_ERROR: the body */
	bool draining;	      /* HTTP_ROUTE_HEALTHZ: a --drain is on */
};

/*
 * Takes the next request from buf[0..len) (an HTTP connection's unread
 * input) and decides it into x. stopping: a stop has begun (healthz says
 * 503 "stopping"; during a --drain it says 503 "draining" on its own).
 * Returns the bytes to consume (> 0), or 0 when the head is not complete
 * yet. A head that can never be served (malformed, too large) is decided
 * as an error that closes the connection, and consumes all of buf.
 */
size_t http_next(const struct proto_limits *lim, const char *buf, size_t len,
		 bool stopping, struct http_exchange *x);

/*
 * Where /healthz asks whether a --drain is on: stop_draining() by default.
 * For tests, which cannot start a drain without a server: probe replaces
 * it, NULL restores stop_draining(). Not thread-safe: set it before serving.
 */
void http_set_drain_probe(bool (*probe)(void));

/* x becomes the 408 Request Timeout (and close) of a head sent too slowly. */
void http_timeout(struct http_exchange *x);

/*
 * What to send a connection the server turns away (--max-conns, or out of
 * descriptors), given the first bytes it sent, first[0..len), perhaps none:
 * "503 Service Unavailable" with Retry-After and Connection: close, whose
 * body is "ERR server busy\n", when they open an HTTP request (a method
 * token, or a prefix of one); the line "ERR server busy\n" otherwise.
 * Writes at most HTTP_BUSY_MAX bytes into dst; returns the length.
 */
size_t http_busy_reply(const char *first, size_t len, char *dst);

/*
 * Formats t (seconds since the epoch) as an IMF-fixdate,
 * "Sun, 06 Nov 1994 08:49:37 GMT", into dst[0..HTTP_DATE_LEN). Returns
 * HTTP_DATE_LEN.
 */
size_t http_format_date(char *dst, time_t t);

/* Must the engine compute fib(x->n) (where its model computes)? */
static inline bool http_wants_compute(const struct http_exchange *x)
{
	return x->route == HTTP_ROUTE_FIB && x->st == PROTO_OK;
}

/*
 * Fills body for any exchange that http_wants_compute() refuses: an ERR
 * line, "ok", the metrics text, the index, a reason. Never fails: out of
 * memory, the metrics or the index become an error reply and
 * x->resp.status 500.
 */
void http_body(const struct proto_limits *lim, struct http_exchange *x,
	       struct reply *body);

/*
 * The status to send for resp and body: resp->status, except that a 200
 * whose body is an ERR line (a compute that failed) is 500.
 */
int http_status(const struct http_resp *resp, const struct reply *body);

/*
 * Formats the status line and header fields (Date first) for a body of
 * body_len bytes into dst[0..HTTP_RESP_HEAD_MAX). Returns the length.
 */
size_t http_format_head(char *dst, int status, const struct http_resp *resp,
			size_t body_len);

/*
 * Appends the whole response (head, and body unless HEAD) to out.
 * Returns 0 or -ENOMEM.
 */
int http_append(struct buf *out, const struct http_resp *resp,
		const struct reply *body);

#endif
