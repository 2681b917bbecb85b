#include "proto_check.h"

#include <stdio.h>
#include <string.h>

#include "core/proto.h"

/* The reference: DESIGN's grammar read literally, in the plainest C. */
static enum proto_status ref_parse(const char *s, size_t n, uint64_t max_n,
				   uint64_t *out)
{
	size_t b = 0, e = n, i;
	int neg = 0;
	uint64_t v = 0;

	if (e && s[e - 1] == '\n')
		e--;
	if (e && s[e - 1] == '\r')
		e--;
	while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	while (b < e && (s[b] == ' ' || s[b] == '\t'))
		b++;
	if (b == e)
		return PROTO_EMPTY;
	if (s[b] == '+' || s[b] == '-')
		neg = s[b++] == '-';
	if (b == e)
		return PROTO_NOT_NUMBER;
	for (i = b; i < e; i++)
		if (s[i] < '0' || s[i] > '9')
			return PROTO_NOT_NUMBER;
	if (neg)
		return PROTO_NEGATIVE;
	for (i = b; i < e; i++) {
		if (v > max_n)
			return PROTO_TOO_LARGE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max_n)
		return PROTO_TOO_LARGE;
	*out = v;
	return PROTO_OK;
}

static int check_reply(const struct reply *r, enum proto_status st)
{
	size_t i;

	if (r->len == 0 || r->text[r->len - 1] != '\n')
		return 0;
	if (st != PROTO_OK)
		return r->len > 4 && memcmp(r->text, "ERR ", 4) == 0;
	for (i = 0; i + 1 < r->len; i++)
		if (r->text[i] < '0' || r->text[i] > '9')
			return 0;
	return i > 0;
}

static int check_line(const struct proto_limits *lim, const char *line,
		      size_t len)
{
	uint64_t n = 0, ref_n = 0;
	enum proto_status st, ref;
	struct reply r;
	int bad = 0;

	st = proto_parse(lim, line, len, &n);
	ref = ref_parse(line, len, lim->max_n, &ref_n);
	if (st != ref || (st == PROTO_OK && n != ref_n)) {
		fprintf(stderr,
			"parse disagrees: %d/%llu vs reference %d/%llu\n", st,
			(unsigned long long)n, ref, (unsigned long long)ref_n);
		bad++;
	}
	proto_handle_line(lim, line, len, &r);
	if (!check_reply(&r, st)) {
		fprintf(stderr, "bad reply for status %d\n", st);
		bad++;
	}
	reply_release(&r);
	return bad;
}

/* Frames data as a server would; checks each line and the framing itself. */
static int check_stream(const struct proto_limits *lim, const char *data,
			size_t size)
{
	size_t off = 0;
	ssize_t len;
	int bad = 0;

	while (off < size) {
		len = proto_frame(data + off, size - off, lim->max_line);
		if (len == 0 || len == PROTO_FRAME_TOO_LONG) {
			const char *nl = memchr(data + off, '\n', size - off);
			size_t dist =
			    nl ? (size_t)(nl - data - off) : size - off;
			if ((len == 0) != (!nl && dist <= lim->max_line)) {
				fprintf(stderr, "framing verdict wrong\n");
				bad++;
			}
			/* What a server does at EOF with a partial line. */
			if (len == 0)
				bad += check_line(lim, data + off, size - off);
			break;
		}
		if (data[off + (size_t)len - 1] != '\n' ||
		    memchr(data + off, '\n', (size_t)len - 1) ||
		    (size_t)len > lim->max_line + 1) {
			fprintf(stderr, "framed a wrong line\n");
			bad++;
		}
		bad += check_line(lim, data + off, (size_t)len);
		off += (size_t)len;
	}
	return bad;
}

/* The whitespace of Python's int(), as the brief for --framing read says. */
static int ref_space(char c)
{
	return c != '\0' && strchr(" \t\r\n\v\f", c) != NULL;
}

/* One read as one request: the reference strips, then judges the body. */
static int check_read(const struct proto_limits *lim, const char *s, size_t n)
{
	uint64_t got = 0, ref_n = 0;
	enum proto_status st, ref;
	size_t b = 0, e = n;

	while (e > 0 && ref_space(s[e - 1]))
		e--;
	while (b < e && ref_space(s[b]))
		b++;
	st = proto_parse_read(lim, s, n, &got);
	ref = ref_parse(s + b, e - b, lim->max_n, &ref_n);
	if (st != ref || (st == PROTO_OK && got != ref_n)) {
		fprintf(stderr,
			"read parse disagrees: %d/%llu vs reference %d/%llu\n",
			st, (unsigned long long)got, ref,
			(unsigned long long)ref_n);
		return 1;
	}
	return 0;
}

/* Read framing: the input as reads of at most max_line bytes each. */
static int check_reads(const struct proto_limits *lim, const char *data,
		       size_t size)
{
	int bad = 0;

	for (size_t off = 0; off < size; off += lim->max_line) {
		size_t len = size - off;
		bad += check_read(lim, data + off,
				  len < lim->max_line ? len : lim->max_line);
	}
	return bad;
}

int proto_check_input(const uint8_t *data, size_t size)
{
	struct proto_limits lim;
	int bad;

	/* Two servers: the default naive one (fib kept cheap), and fast. */
	proto_limits_default(&lim);
	lim.max_n = 25;
	lim.max_line = 64;
	bad = check_stream(&lim, (const char *)data, size);
	bad += check_reads(&lim, (const char *)data, size);
	lim.algo = FIB_FAST;
	lim.max_n = 3000;
	lim.max_line = PROTO_DEFAULT_MAX_LINE;
	bad += check_stream(&lim, (const char *)data, size);
	return bad;
}
