#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"

int http_sniff(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && i <= HTTP_METHOD_MAX; i++) {
		if (buf[i] == ' ')
			return i > 0;
		if (buf[i] < 'A' || buf[i] > 'Z')
			return 0;
	}
	return i > HTTP_METHOD_MAX ? 0 : HTTP_SNIFF_MORE;
}

/* RFC 9110's tchar: the characters of a token (a method, a field name). */
static bool http_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A field value's characters: visible, blank or obs-text; no controls. */
static bool http_vchar(unsigned char c)
{
	return c == '\t' || (c >= ' ' && c != 0x7f);
}

/*
 * The length of the head in buf[0..len): through the first empty line, or 0
 * when there is none yet. Empty lines before the request line (RFC 9112
 * lets a server skip them) are part of the head.
 */
static size_t http_head_len(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;
	bool seen_line = false;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		bool empty = nl == p || (nl == p + 1 && *p == '\r');

		p = nl + 1;
		if (empty && seen_line)
			return (size_t)(p - buf);
		seen_line = seen_line || !empty;
	}
	return 0;
}

/*
 * Cuts the next line off [*p, end): *line and its length, without its
 * CRLF or LF. A '\r' anywhere else stays in the line, where the character
 * checks reject it. The head is complete, so a '\n' is always there.
 */
static size_t http_line(const char **p, const char *end, const char **line)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = (size_t)(nl - *p);

	*line = *p;
	*p = nl + 1;
	if (n && (*line)[n - 1] == '\r')
		n--;
	return n;
}

/* Parses "HTTP/d.d" exactly. */
static int http_version(const char *s, size_t n, struct http_request *req)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' || s[5] < '0' ||
	    s[5] > '9' || s[7] < '0' || s[7] > '9')
		return HTTP_PARSE_FAILED;
	req->major = s[5] - '0';
	req->minor = s[7] - '0';
	return 0;
}

/* method SP request-target SP HTTP-version */
static int http_request_line(const char *s, size_t n, struct http_request *req)
{
	size_t i = 0, t;

	while (i < n && http_tchar((unsigned char)s[i]))
		i++;
	if (i == 0 || i == n || s[i] != ' ')
		return HTTP_PARSE_FAILED;
	req->method = s;
	req->method_len = i;
	t = ++i;
	while (i < n && (unsigned char)s[i] > ' ' && (unsigned char)s[i] < 0x7f)
		i++;
	if (i == t || i == n || s[i] != ' ')
		return HTTP_PARSE_FAILED;
	req->target = s + t;
	req->target_len = i - t;
	return http_version(s + i + 1, n - i - 1, req);
}

static bool http_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* name ":" OWS value OWS */
static int http_field(const char *s, size_t n, struct http_header *h)
{
	size_t i = 0;

	while (i < n && http_tchar((unsigned char)s[i]))
		i++;
	if (i == 0 || i == n || s[i] != ':')
		return HTTP_PARSE_FAILED; /* also a folded line or "name :" */
	h->name = s;
	h->name_len = i;
	for (size_t j = i + 1; j < n; j++)
		if (!http_vchar((unsigned char)s[j]))
			return HTTP_PARSE_FAILED;
	s += i + 1;
	n -= i + 1;
	while (n && http_blank(*s)) {
		s++;
		n--;
	}
	while (n && http_blank(s[n - 1]))
		n--;
	h->value = s;
	h->value_len = n;
	return 0;
}

ssize_t http_parse_request(const char *buf, size_t len, size_t max_head,
			   struct http_request *req,
			   struct http_header *headers, size_t max_headers)
{
	size_t head = http_head_len(buf, len < max_head ? len : max_head);
	const char *p = buf, *end = buf + head, *line;
	size_t n;

	if (!head)
		return len >= max_head ? HTTP_PARSE_TOO_LARGE
				       : HTTP_PARSE_PARTIAL;
	do
		n = http_line(&p, end, &line);
	while (n == 0); /* the empty lines before the request line */
	if (http_request_line(line, n, req))
		return HTTP_PARSE_FAILED;
	req->headers = headers;
	req->num_headers = 0;
	while ((n = http_line(&p, end, &line)) > 0) {
		if (req->num_headers == max_headers)
			return HTTP_PARSE_TOO_LARGE;
		if (http_field(line, n, &headers[req->num_headers]))
			return HTTP_PARSE_FAILED;
		req->num_headers++;
	}
	return (ssize_t)head;
}

/* What the header fields say about framing and the connection. */
struct http_fields {
	bool conn_close, conn_keep_alive;
	bool has_length, bad_length, transfer_encoding;
	uint64_t length;
	unsigned hosts;
};

static bool http_name_is(const struct http_header *h, const char *name)
{
	return h->name_len == strlen(name) &&
	       strncasecmp(h->name, name, h->name_len) == 0;
}

/* The comma-separated tokens of a Connection field. */
static void http_connection(const struct http_header *h, struct http_fields *f)
{
	const char *s = h->value, *end = h->value + h->value_len;

	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma ? comma : end;
		size_t n;

		while (s < e && http_blank(*s))
			s++;
		n = (size_t)(e - s);
		while (n && http_blank(s[n - 1]))
			n--;
		if (n == 5 && strncasecmp(s, "close", 5) == 0)
			f->conn_close = true;
		if (n == 10 && strncasecmp(s, "keep-alive", 10) == 0)
			f->conn_keep_alive = true;
		s = e + 1;
	}
}

/* Content-Length: digits; repeated only with the same value. */
static void http_content_length(const struct http_header *h,
				struct http_fields *f)
{
	uint64_t v = 0;

	if (!h->value_len)
		f->bad_length = true;
	for (size_t i = 0; i < h->value_len; i++) {
		char c = h->value[i];

		if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) {
			f->bad_length = true;
			return;
		}
		v = v * 10 + (uint64_t)(c - '0');
	}
	if (f->has_length && v != f->length)
		f->bad_length = true;
	f->has_length = true;
	f->length = v;
}

static void http_scan(const struct http_request *req, struct http_fields *f)
{
	*f = (struct http_fields){0};
	for (size_t i = 0; i < req->num_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (http_name_is(h, "connection"))
			http_connection(h, f);
		else if (http_name_is(h, "content-length"))
			http_content_length(h, f);
		else if (http_name_is(h, "transfer-encoding"))
			f->transfer_encoding = true;
		else if (http_name_is(h, "host"))
			f->hosts++;
	}
}

static void http_fail(struct http_exchange *x, int status, const char *reason,
		      bool close)
{
	x->route = HTTP_ROUTE_ERROR;
	x->resp.status = (uint16_t)status;
	x->reason = reason;
	if (close) {
		x->resp.close = true;
		x->resp.keep_alive = false;
	}
}

static bool http_path_is(const char *t, size_t n, const char *path)
{
	return n == strlen(path) && memcmp(t, path, n) == 0;
}

/* The path of the request-target: no query, no scheme and authority. */
static void http_path(const char **t, size_t *n)
{
	const char *q, *slash;

	if (*n >= 7 && strncasecmp(*t, "http://", 7) == 0) {
		slash = memchr(*t + 7, '/', *n - 7);
		if (!slash) {
			*t = "/";
			*n = 1;
			return;
		}
		*n -= (size_t)(slash - *t);
		*t = slash;
	}
	q = memchr(*t, '?', *n);
	if (q)
		*n = (size_t)(q - *t);
}

static void http_route(const struct proto_limits *lim,
		       const struct http_request *req, bool draining,
		       struct http_exchange *x)
{
	const char *t = req->target;
	size_t n = req->target_len;

	http_path(&t, &n);
	if (n >= 5 && memcmp(t, "/fib/", 5) == 0) {
		x->route = HTTP_ROUTE_FIB;
		x->st = proto_parse(lim, t + 5, n - 5, &x->n);
		x->resp.status = x->st == PROTO_OK ? 200 : 400;
	} else if (http_path_is(t, n, "/healthz")) {
		x->route = HTTP_ROUTE_HEALTHZ;
		x->resp.status = draining ? 503 : 200;
		if (draining)
			x->resp.close = true; /* let a balancer move on */
	} else if (http_path_is(t, n, "/metrics")) {
		x->route = HTTP_ROUTE_METRICS;
		x->resp.status = 200;
		x->resp.metrics = true;
	} else {
		http_fail(x, 404, "not found\n", false);
	}
}

static bool http_method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) &&
	       memcmp(req->method, m, req->method_len) == 0;
}

/* Decides a well-formed head. The order is that of the questions a server
 * must ask before it may trust the framing of what follows. */
static void http_decide(const struct proto_limits *lim,
			const struct http_request *req, bool draining,
			struct http_exchange *x)
{
	bool get = http_method_is(req, "GET"),
	     head = http_method_is(req, "HEAD");
	struct http_fields f;

	http_scan(req, &f);
	x->resp.head = head;
	if (req->minor == 0 && req->major == 1)
		x->resp.keep_alive = f.conn_keep_alive && !f.conn_close;
	x->resp.close = req->minor == 0 ? !x->resp.keep_alive : f.conn_close;
	if (req->major != 1)
		http_fail(x, 505, "HTTP version not supported\n", true);
	else if (f.bad_length)
		http_fail(x, 400, "bad Content-Length\n", true);
	else if (f.transfer_encoding)
		http_fail(x, 501, "Transfer-Encoding is not supported\n", true);
	else if (f.hosts > 1 || (req->minor > 0 && f.hosts == 0))
		http_fail(x, 400, "an HTTP/1.1 request needs one Host\n", true);
	else if (!get && !head)
		http_fail(x, 405, "method not allowed\n", f.length > 0);
	else if (f.length > 0)
		http_fail(x, 413, "request bodies are not accepted\n", true);
	else
		http_route(lim, req, draining, x);
}

size_t http_next(const struct proto_limits *lim, const char *buf, size_t len,
		 bool draining, struct http_exchange *x)
{
	struct http_header headers[HTTP_HEADERS_MAX];
	struct http_request req;
	ssize_t n;

	*x = (struct http_exchange){.route = HTTP_ROUTE_ERROR};
	n = http_parse_request(buf, len, HTTP_HEAD_MAX, &req, headers,
			       HTTP_HEADERS_MAX);
	if (n == HTTP_PARSE_PARTIAL)
		return 0;
	if (n == HTTP_PARSE_TOO_LARGE) {
		http_fail(x, 431, "request head too large (max 8192 bytes)\n",
			  true);
		return len;
	}
	if (n < 0) {
		http_fail(x, 400, "bad request\n", true);
		return len;
	}
	http_decide(lim, &req, draining, x);
	return (size_t)n;
}

/* The metrics text, on the heap: it is larger than a reply's inline room. */
static void http_metrics_body(const struct proto_limits *lim,
			      struct http_exchange *x, struct reply *body)
{
	char *text = malloc(METRICS_TEXT_MAX);
	int n = text ? metrics_render(text, METRICS_TEXT_MAX) : -ENOMEM;

	if (n < 0) {
		free(text);
		proto_error_reply(lim, PROTO_INTERNAL, body);
		x->resp.status = 500;
		x->resp.metrics = false;
		return;
	}
	body->text = text;
	body->len = (size_t)n;
}

static void http_text_body(struct reply *body, const char *text)
{
	/* Every fixed text fits the inline buffer: this cannot fail. */
	reply_set(body, text, strlen(text));
}

void http_body(const struct proto_limits *lim, struct http_exchange *x,
	       struct reply *body)
{
	switch (x->route) {
	case HTTP_ROUTE_FIB:
		proto_error_reply(lim, x->st, body);
		break;
	case HTTP_ROUTE_HEALTHZ:
		http_text_body(body,
			       x->resp.status == 200 ? "ok\n" : "stopping\n");
		break;
	case HTTP_ROUTE_METRICS:
		http_metrics_body(lim, x, body);
		break;
	case HTTP_ROUTE_ERROR:
	default:
		http_text_body(body, x->reason);
		break;
	}
}

int http_status(const struct http_resp *resp, const struct reply *body)
{
	if (resp->status == 200 && body->len >= 4 &&
	    memcmp(body->text, "ERR ", 4) == 0)
		return 500;
	return resp->status;
}

static const char *http_reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Content Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Internal Server Error";
	}
}

static char *http_put(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* Decimal, without printf: this runs once per response. */
static char *http_put_uint(char *p, uint64_t v)
{
	char tmp[20];
	int i = 0;

	do
		tmp[i++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (i)
		*p++ = tmp[--i];
	return p;
}

size_t http_format_head(char *dst, int status, const struct http_resp *resp,
			size_t body_len)
{
	char *p = http_put(dst, "HTTP/1.1 ");

	p = http_put_uint(p, (uint64_t)status);
	*p++ = ' ';
	p = http_put(p, http_reason_phrase(status));
	p = http_put(p, resp->metrics ? "\r\nContent-Type: text/plain; "
					"version=0.0.4; charset=utf-8"
				      : "\r\nContent-Type: text/plain; "
					"charset=utf-8");
	p = http_put(p, "\r\nContent-Length: ");
	p = http_put_uint(p, body_len);
	if (status == 405)
		p = http_put(p, "\r\nAllow: GET, HEAD");
	if (resp->close)
		p = http_put(p, "\r\nConnection: close");
	else if (resp->keep_alive)
		p = http_put(p, "\r\nConnection: keep-alive");
	p = http_put(p, "\r\n\r\n");
	return (size_t)(p - dst);
}

int http_append(struct buf *out, const struct http_resp *resp,
		const struct reply *body)
{
	char head[HTTP_RESP_HEAD_MAX];
	size_t n =
	    http_format_head(head, http_status(resp, body), resp, body->len);
	int err = buf_reserve(out, n + (resp->head ? 0 : body->len));

	if (!err)
		err = buf_append(out, head, n);
	if (!err && !resp->head)
		err = buf_append(out, body->text, body->len);
	return err;
}
