/*
 * http - the request side of http.h: sniffing, parsing a head, and deciding
 * what it asks for (http_resp.c writes the answer).
 */
#include "http.h"

#include <string.h>
#include <strings.h>

#include "stop.h"

/* The empty lines (CRLF or LF) at the start of buf[0..len): their length. */
static size_t http_leading_empty(const char *buf, size_t len)
{
	size_t i = 0;

	for (;;) {
		if (i < len && buf[i] == '\n')
			i++;
		else if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
			i += 2;
		else
			return i;
	}
}

int http_sniff(const char *buf, size_t len)
{
	size_t skip = http_leading_empty(buf, len), i;

	/* Empty lines alone are the line protocol's empty requests. */
	if (skip && skip == len)
		return 0;
	buf += skip;
	len -= skip;
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

/*
 * No head within buf[0..max_head): was it the request line that did not
 * end (a request-target too long: 414), or the fields after it (431)?
 */
static int http_too_large(const char *buf, size_t max_head)
{
	size_t skip = http_leading_empty(buf, max_head);

	if (skip < max_head && !memchr(buf + skip, '\n', max_head - skip))
		return HTTP_PARSE_URI_TOO_LONG;
	return HTTP_PARSE_TOO_LARGE;
}

ssize_t http_parse_request(const char *buf, size_t len, size_t max_head,
			   struct http_request *req,
			   struct http_header *headers, size_t max_headers)
{
	size_t head = http_head_len(buf, len < max_head ? len : max_head);
	const char *p = buf, *end = buf + head, *line;
	size_t n;

	if (!head)
		return len >= max_head ? http_too_large(buf, max_head)
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
	bool bad_host; /* a Host that is not uri-host [":" port] */
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

static bool http_hexdig(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* RFC 3986's unreserved and sub-delims: what a reg-name is made of. */
static bool http_host_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') ||
	       (c && strchr("-._~!$&'()*+,;=", c) != NULL);
}

/* [":" port]: what may follow the host. */
static bool http_port_ok(const char *s, size_t n)
{
	if (!n)
		return true;
	if (s[0] != ':')
		return false;
	for (size_t i = 1; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * Host = uri-host [":" port] (RFC 9110 7.2, RFC 3986 3.2.2): a reg-name
 * (unreserved, sub-delims, %XX), which covers IPv4 too, or an IP-literal
 * in brackets. Empty is allowed: RFC 9112 3.2 asks a client with no
 * authority to send it so. "a b/c", "a/b" or "user@host" are not hosts.
 */
static bool http_host_ok(const char *s, size_t n)
{
	size_t i = 0;

	if (n && s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++)
			if (!http_hexdig(s[i]) && s[i] != ':' && s[i] != '.' &&
			    !http_host_char(s[i]))
				return false;
		return i < n && i > 1 && http_port_ok(s + i + 1, n - i - 1);
	}
	while (i < n && s[i] != ':') {
		if (s[i] == '%') {
			if (i + 2 >= n || !http_hexdig(s[i + 1]) ||
			    !http_hexdig(s[i + 2]))
				return false;
			i += 3;
			continue;
		}
		if (!http_host_char(s[i]))
			return false;
		i++;
	}
	return http_port_ok(s + i, n - i);
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
		else if (http_name_is(h, "host")) {
			f->hosts++;
			f->bad_host |= !http_host_ok(h->value, h->value_len);
		}
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

/* Where /healthz asks whether a --drain is on (http_set_drain_probe()). */
static bool (*http_drain_probe)(void) = stop_draining;

void http_set_drain_probe(bool (*probe)(void))
{
	http_drain_probe = probe ? probe : stop_draining;
}

static void http_route(const struct proto_limits *lim,
		       const struct http_request *req, bool stopping,
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
		x->draining = http_drain_probe();
		x->resp.status = stopping || x->draining ? 503 : 200;
		if (x->resp.status == 503)
			x->resp.close = true; /* let a balancer move on */
	} else if (http_path_is(t, n, "/")) {
		x->route = HTTP_ROUTE_INDEX;
		x->resp.status = 200;
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
			const struct http_request *req, bool stopping,
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
	else if (f.bad_host)
		http_fail(x, 400, "bad Host\n", true);
	else if (!get && !head)
		http_fail(x, 405, "method not allowed\n", f.length > 0);
	else if (f.length > 0)
		http_fail(x, 413, "request bodies are not accepted\n", true);
	else
		http_route(lim, req, stopping, x);
}

size_t http_next(const struct proto_limits *lim, const char *buf, size_t len,
		 bool stopping, struct http_exchange *x)
{
	struct http_header headers[HTTP_HEADERS_MAX];
	struct http_request req;
	ssize_t n;

	*x = (struct http_exchange){.route = HTTP_ROUTE_ERROR};
	n = http_parse_request(buf, len, HTTP_HEAD_MAX, &req, headers,
			       HTTP_HEADERS_MAX);
	if (n == HTTP_PARSE_PARTIAL)
		return 0;
	if (n == HTTP_PARSE_URI_TOO_LONG) {
		http_fail(x, 414, "request line too long (max 8192 bytes)\n",
			  true);
		return len;
	}
	if (n == HTTP_PARSE_TOO_LARGE) {
		http_fail(x, 431, "request head too large (max 8192 bytes)\n",
			  true);
		return len;
	}
	if (n < 0) {
		http_fail(x, 400, "bad request\n", true);
		return len;
	}
	http_decide(lim, &req, stopping, x);
	return (size_t)n;
}

void http_timeout(struct http_exchange *x)
{
	*x = (struct http_exchange){.route = HTTP_ROUTE_ERROR};
	http_fail(x, 408, "request timeout\n", true);
}
