/*
 * http_resp - the response side of http.h: the body of a decided request,
 * its status, the response head and Date, and the busy answer.
 */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

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

/* GET /: what this port answers, for a person who opens it in a browser. */
static const char http_index_text[] =
    "fibd: Fibonacci numbers over TCP; this port speaks two protocols.\n"
    "\n"
    "HTTP/1.1 (GET or HEAD):\n"
    "  /fib/N    fib(N) in decimal, e.g. /fib/30 gives 832040\n"
    "  /metrics  counters in Prometheus text format\n"
    "  /healthz  ok, or 503 while the server drains or stops\n"
    "\n"
    "fib/1, the line protocol: send N and a newline, get fib(N) and a\n"
    "newline (nc 127.0.0.1 PORT, then type 30).\n";

static void http_index_body(const struct proto_limits *lim,
			    struct http_exchange *x, struct reply *body)
{
	if (reply_set(body, http_index_text, sizeof(http_index_text) - 1)) {
		proto_error_reply(lim, PROTO_INTERNAL, body);
		x->resp.status = 500;
	}
}

void http_body(const struct proto_limits *lim, struct http_exchange *x,
	       struct reply *body)
{
	switch (x->route) {
	case HTTP_ROUTE_FIB:
		proto_error_reply(lim, x->st, body);
		break;
	case HTTP_ROUTE_HEALTHZ:
		http_text_body(body, x->resp.status == 200 ? "ok\n"
				     : x->draining	   ? "draining\n"
							   : "stopping\n");
		break;
	case HTTP_ROUTE_INDEX:
		http_index_body(lim, x, body);
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
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
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

/* Two digits, zero-padded. */
static char *http_put_2(char *p, unsigned v)
{
	*p++ = (char)('0' + v / 10 % 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

size_t http_format_date(char *dst, time_t t)
{
	static const char wdays[] = "ThuFriSatSunMonTueWed"; /* from 1970 */
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	uint64_t days = (uint64_t)(t > 0 ? t : 0) / 86400,
		 secs = (uint64_t)(t > 0 ? t : 0) % 86400;
	/* Days to a civil date (Howard Hinnant's algorithm, from 0000-03-01).
	 */
	uint64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
	uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	uint64_t mp = (5 * doy + 2) / 153, day = doy - (153 * mp + 2) / 5 + 1;
	uint64_t month = mp < 10 ? mp + 3 : mp - 9;
	uint64_t year = yoe + era * 400 + (month <= 2);
	char *p = dst;

	memcpy(p, wdays + days % 7 * 3, 3);
	p = http_put(p + 3, ", ");
	p = http_put_2(p, (unsigned)day);
	*p++ = ' ';
	memcpy(p, months + (month - 1) * 3, 3);
	p += 3;
	*p++ = ' ';
	p = http_put_2(p, (unsigned)(year / 100));
	p = http_put_2(p, (unsigned)(year % 100));
	*p++ = ' ';
	p = http_put_2(p, (unsigned)(secs / 3600));
	*p++ = ':';
	p = http_put_2(p, (unsigned)(secs / 60 % 60));
	*p++ = ':';
	p = http_put_2(p, (unsigned)(secs % 60));
	p = http_put(p, " GMT");
	return (size_t)(p - dst);
}

/*
 * Now as an IMF-fixdate. Each thread formats it once a second and keeps
 * it: time() is a vDSO read, the formatting is what would cost.
 */
static const char *http_date_now(void)
{
	static _Thread_local time_t cached = -1;
	static _Thread_local char text[HTTP_DATE_LEN + 1];
	time_t now = time(NULL);

	if (now != cached) {
		text[http_format_date(text, now)] = '\0';
		cached = now;
	}
	return text;
}

size_t http_format_head(char *dst, int status, const struct http_resp *resp,
			size_t body_len)
{
	char *p = http_put(dst, "HTTP/1.1 ");

	p = http_put_uint(p, (uint64_t)status);
	*p++ = ' ';
	p = http_put(p, http_reason_phrase(status));
	p = http_put(p, "\r\nDate: ");
	p = http_put(p, http_date_now());
	p = http_put(p, resp->metrics ? "\r\nContent-Type: text/plain; "
					"version=0.0.4; charset=utf-8"
				      : "\r\nContent-Type: text/plain; "
					"charset=utf-8");
	p = http_put(p, "\r\nContent-Length: ");
	p = http_put_uint(p, body_len);
	if (status == 405)
		p = http_put(p, "\r\nAllow: GET, HEAD");
	if (status == 503)
		p = http_put(p, "\r\nRetry-After: " HTTP_RETRY_AFTER_S);
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

size_t http_busy_reply(const char *first, size_t len, char *dst)
{
	struct http_resp resp = {.status = 503, .close = true};
	struct reply r;
	size_t n = 0;

	proto_error_reply(NULL, PROTO_BUSY, &r);
	if (len && http_sniff(first, len) != 0)
		n = http_format_head(dst, 503, &resp, r.len);
	memcpy(dst + n, r.text, r.len);
	n += r.len;
	reply_release(&r);
	return n;
}
