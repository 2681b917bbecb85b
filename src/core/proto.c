#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyengine.h"

void proto_limits_default(struct proto_limits *lim)
{
	lim->algo = FIB_NAIVE;
	lim->engine = FIB_ENGINE_C;
	lim->max_n = FIB_NAIVE_DEFAULT_MAX_N;
	lim->max_line = PROTO_DEFAULT_MAX_LINE;
	lim->framing = PROTO_FRAMING_LINE;
}

int proto_framing_parse(const char *name, enum proto_framing *f)
{
	if (strcmp(name, "line") == 0)
		*f = PROTO_FRAMING_LINE;
	else if (strcmp(name, "read") == 0)
		*f = PROTO_FRAMING_READ;
	else
		return -EINVAL;
	return 0;
}

ssize_t proto_frame(const char *buf, size_t len, size_t max_line)
{
	/* A line may hold max_line bytes plus its '\n'. */
	size_t scan = len < max_line + 1 ? len : max_line + 1;
	const char *nl = memchr(buf, '\n', scan);

	if (nl)
		return nl - buf + 1;
	return len > max_line ? PROTO_FRAME_TOO_LONG : 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Strips '\n', one '\r' before it, then blanks on both sides. */
static void trim(const char **line, size_t *len)
{
	const char *s = *line;
	size_t n = *len;

	if (n && s[n - 1] == '\n')
		n--;
	if (n && s[n - 1] == '\r')
		n--;
	while (n && is_blank(s[n - 1]))
		n--;
	while (n && is_blank(*s)) {
		s++;
		n--;
	}
	*line = s;
	*len = n;
}

/* True when s[0..n) is one or more decimal digits. */
static int all_digits(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

enum proto_status proto_parse(const struct proto_limits *lim, const char *line,
			      size_t len, uint64_t *n)
{
	uint64_t v = 0;

	trim(&line, &len);
	if (len == 0)
		return PROTO_EMPTY;
	if (line[0] == '-')
		return all_digits(line + 1, len - 1) ? PROTO_NEGATIVE
						     : PROTO_NOT_NUMBER;
	if (line[0] == '+') {
		line++;
		len--;
	}
	if (!all_digits(line, len))
		return PROTO_NOT_NUMBER;
	for (size_t i = 0; i < len; i++) {
		/* Past max_n the exact value no longer matters: saturate. */
		if (v > lim->max_n || v > (UINT64_MAX - 9) / 10)
			return PROTO_TOO_LARGE;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > lim->max_n)
		return PROTO_TOO_LARGE;
	*n = v;
	return PROTO_OK;
}

/* The whitespace Python's int() strips around a number, NUL excepted. */
static int is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

enum proto_status proto_parse_read(const struct proto_limits *lim,
				   const char *data, size_t len, uint64_t *n)
{
	while (len && is_space(data[len - 1]))
		len--;
	while (len && is_space(*data)) {
		data++;
		len--;
	}
	return proto_parse(lim, data, len, n);
}

void reply_release(struct reply *r)
{
	if (r->text && r->text != r->inline_buf)
		free(r->text);
	r->text = NULL;
	r->len = 0;
}

/* Points r at its inline buffer holding s. s must fit. */
static void reply_inline(struct reply *r, const char *s, size_t len)
{
	memcpy(r->inline_buf, s, len);
	r->text = r->inline_buf;
	r->len = len;
}

void proto_error_reply(const struct proto_limits *lim, enum proto_status status,
		       struct reply *r)
{
	char line[REPLY_INLINE_CAP];
	int n;

	switch (status) {
	case PROTO_EMPTY:
		n = snprintf(line, sizeof(line), "ERR empty request\n");
		break;
	case PROTO_NEGATIVE:
		n = snprintf(line, sizeof(line), "ERR negative n\n");
		break;
	case PROTO_TOO_LARGE:
		n = snprintf(line, sizeof(line), "ERR n too large (max %llu)\n",
			     (unsigned long long)lim->max_n);
		break;
	case PROTO_LINE_TOO_LONG:
		n = snprintf(line, sizeof(line),
			     "ERR line too long (max %zu bytes)\n",
			     lim->max_line);
		break;
	case PROTO_BUSY:
		n = snprintf(line, sizeof(line), "ERR server busy\n");
		break;
	case PROTO_INTERNAL:
		n = snprintf(line, sizeof(line), "ERR internal error\n");
		break;
	case PROTO_NOT_NUMBER:
	default:
		n = snprintf(line, sizeof(line), "ERR not a number\n");
		break;
	}
	reply_inline(r, line, (size_t)n);
}

void proto_compute(const struct proto_limits *lim, uint64_t n, struct reply *r)
{
	size_t cap = fib_digits_bound(n) + 2;
	char *out = r->inline_buf;
	long len;

	if (lim->engine == FIB_ENGINE_PYTHON) {
		if (pyengine_fib(lim->algo, n, r) < 0)
			proto_error_reply(lim, PROTO_INTERNAL, r);
		return;
	}
	if (cap > sizeof(r->inline_buf)) {
		out = malloc(cap);
		if (!out) {
			proto_error_reply(lim, PROTO_INTERNAL, r);
			return;
		}
	}
	len = fib_decimal(lim->algo, n, out, cap - 1);
	if (len < 0) {
		if (out != r->inline_buf)
			free(out);
		proto_error_reply(lim, PROTO_INTERNAL, r);
		return;
	}
	out[len++] = '\n';
	r->text = out;
	r->len = (size_t)len;
}

void proto_handle_line(const struct proto_limits *lim, const char *line,
		       size_t len, struct reply *r)
{
	enum proto_status st;
	uint64_t n;

	st = proto_parse(lim, line, len, &n);
	if (st == PROTO_OK)
		proto_compute(lim, n, r);
	else
		proto_error_reply(lim, st, r);
}

int reply_set(struct reply *r, const char *text, size_t len)
{
	char *heap;

	if (len <= sizeof(r->inline_buf)) {
		reply_inline(r, text, len);
		return 0;
	}
	heap = malloc(len);
	if (!heap)
		return -ENOMEM;
	memcpy(heap, text, len);
	r->text = heap;
	r->len = len;
	return 0;
}
