/*
 * Unit tests for src/core/proto. Every input is placed so that it ends
 * exactly at a PROT_NONE guard page (picohttpparser's trick): reading one
 * byte too far crashes the test instead of passing silently.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/proto.h"
#include "../lib/tguard.h"
#include "../t.h"

static struct proto_limits lim;

static enum proto_status parse_n(const char *s, size_t len, uint64_t *n)
{
	return proto_parse(&lim, t_guarded(s, len), len, n);
}

#define PARSE(str, want_st, want_n)                                            \
	do {                                                                   \
		uint64_t n_ = 12345;                                           \
		enum proto_status st_ = parse_n(str, sizeof(str) - 1, &n_);    \
		T_CHECK(st_ == (want_st), "parse \"%s\": status %d", #str,     \
			st_);                                                  \
		if ((want_st) == PROTO_OK)                                     \
			T_CHECK(n_ == (want_n), "parse %s: n=%llu", #str,      \
				(unsigned long long)n_);                       \
	} while (0)

static void test_parse(void)
{
	proto_limits_default(&lim);
	PARSE("30\n", PROTO_OK, 30);
	PARSE("30", PROTO_OK, 30);
	PARSE("30\r\n", PROTO_OK, 30);
	PARSE("+30\n", PROTO_OK, 30);
	PARSE(" \t+30 \t\r\n", PROTO_OK, 30);
	PARSE("0\n", PROTO_OK, 0);
	PARSE("000045\n", PROTO_OK, 45);
	PARSE("45\n", PROTO_OK, 45);
	PARSE("\n", PROTO_EMPTY, 0);
	PARSE("\r\n", PROTO_EMPTY, 0);
	PARSE(" \t \r\n", PROTO_EMPTY, 0);
	PARSE("", PROTO_EMPTY, 0);
	PARSE("+\n", PROTO_NOT_NUMBER, 0);
	PARSE("-\n", PROTO_NOT_NUMBER, 0);
	PARSE("--5\n", PROTO_NOT_NUMBER, 0);
	PARSE("+-5\n", PROTO_NOT_NUMBER, 0);
	PARSE("++5\n", PROTO_NOT_NUMBER, 0);
	PARSE("+ 5\n", PROTO_NOT_NUMBER, 0);
	PARSE("3 0\n", PROTO_NOT_NUMBER, 0);
	PARSE("30x\n", PROTO_NOT_NUMBER, 0);
	PARSE("0x1e\n", PROTO_NOT_NUMBER, 0);
	PARSE("1e3\n", PROTO_NOT_NUMBER, 0);
	PARSE("abc\n", PROTO_NOT_NUMBER, 0);
	PARSE("1\r\r\n", PROTO_NOT_NUMBER, 0);
	PARSE("\r1\n", PROTO_NOT_NUMBER, 0);
	PARSE("3\0\n", PROTO_NOT_NUMBER, 0);
	PARSE("\0", PROTO_NOT_NUMBER, 0);
	PARSE("\xd9\xa3\n", PROTO_NOT_NUMBER, 0); /* Arabic-Indic three */
	PARSE("-5\n", PROTO_NEGATIVE, 0);
	PARSE("-0\n", PROTO_NEGATIVE, 0);
	PARSE(" -7 \n", PROTO_NEGATIVE, 0);
	PARSE("-5x\n", PROTO_NOT_NUMBER, 0);
	PARSE("46\n", PROTO_TOO_LARGE, 0);
	PARSE("18446744073709551615\n", PROTO_TOO_LARGE, 0);
	PARSE("18446744073709551616\n", PROTO_TOO_LARGE, 0);
	PARSE("99999999999999999999999999999999999999\n", PROTO_TOO_LARGE, 0);
	/* Syntax is judged before size. */
	PARSE("99999999999999999999999999999999999999x\n", PROTO_NOT_NUMBER, 0);
}

static void test_parse_large_limit(void)
{
	proto_limits_default(&lim);
	lim.algo = FIB_FAST;
	lim.max_n = 100000;
	PARSE("100000\n", PROTO_OK, 100000);
	PARSE("100001\n", PROTO_TOO_LARGE, 0);
	lim.max_n = UINT64_MAX;
	PARSE("18446744073709551615\n", PROTO_TOO_LARGE, 0);
	PARSE("1844674407370955161\n", PROTO_OK, 1844674407370955161ull);
}

#define PARSE_READ(str, want_st, want_n)                                       \
	do {                                                                   \
		uint64_t n_ = 12345;                                           \
		enum proto_status st_ =                                        \
		    proto_parse_read(&lim, t_guarded(str, sizeof(str) - 1),    \
				     sizeof(str) - 1, &n_);                    \
		T_CHECK(st_ == (want_st), "read \"%s\": status %d", #str,      \
			st_);                                                  \
		if ((want_st) == PROTO_OK)                                     \
			T_CHECK(n_ == (want_n), "read %s: n=%llu", #str,       \
				(unsigned long long)n_);                       \
	} while (0)

/* Read framing: int()'s whitespace around the body, proto_parse() inside. */
static void test_parse_read(void)
{
	enum proto_framing f = PROTO_FRAMING_READ;

	proto_limits_default(&lim);
	T_CHECK(lim.framing == PROTO_FRAMING_LINE, "line is the default");
	T_CHECK(proto_framing_parse("line", &f) == 0 &&
		f == PROTO_FRAMING_LINE);
	T_CHECK(proto_framing_parse("read", &f) == 0 &&
		f == PROTO_FRAMING_READ);
	T_CHECK(proto_framing_parse("lines", &f) == -EINVAL);
	T_CHECK(proto_framing_parse("", &f) == -EINVAL);
	PARSE_READ("30", PROTO_OK, 30);
	PARSE_READ("1", PROTO_OK, 1);
	PARSE_READ("30\n", PROTO_OK, 30);
	PARSE_READ("\r\n\t\v\f +30\r\r\n\n \v", PROTO_OK, 30);
	PARSE_READ("007", PROTO_OK, 7);
	PARSE_READ("", PROTO_EMPTY, 0);
	PARSE_READ(" \t\r\n\v\f", PROTO_EMPTY, 0);
	PARSE_READ("1\n2", PROTO_NOT_NUMBER, 0);
	PARSE_READ("1 2", PROTO_NOT_NUMBER, 0);
	PARSE_READ("\0"
		   "1",
		   PROTO_NOT_NUMBER, 0);
	PARSE_READ("1\0", PROTO_NOT_NUMBER, 0);
	PARSE_READ("\x1c"
		   "1",
		   PROTO_NOT_NUMBER, 0);
	PARSE_READ("abc", PROTO_NOT_NUMBER, 0);
	PARSE_READ("\v-3\f", PROTO_NEGATIVE, 0);
	PARSE_READ("46", PROTO_TOO_LARGE, 0);
	PARSE_READ("99999999999999999999999", PROTO_TOO_LARGE, 0);
}

#define FRAME(str, max, want)                                                  \
	T_CHECK(proto_frame(t_guarded(str, sizeof(str) - 1), sizeof(str) - 1,  \
			    max) == (want),                                    \
		"frame %s max %d", #str, max)

static void test_frame(void)
{
	FRAME("30\n40\n", 1024, 3);
	FRAME("30", 1024, 0);
	FRAME("", 1024, 0);
	FRAME("\n", 1024, 1);
	FRAME("1234\n", 4, 5);
	FRAME("1234", 4, 0);
	FRAME("12345", 4, PROTO_FRAME_TOO_LONG);
	FRAME("12345\n", 4, PROTO_FRAME_TOO_LONG);
	FRAME("1\n2345678", 4, 2);
}

#define ERRTEXT(st, want)                                                      \
	do {                                                                   \
		struct reply r_;                                               \
		proto_error_reply(&lim, st, &r_);                              \
		T_CHECK(r_.len == strlen(want) &&                              \
			    memcmp(r_.text, want, r_.len) == 0,                \
			"error text for %d: %.*s", st, (int)r_.len, r_.text);  \
		reply_release(&r_);                                            \
	} while (0)

static void test_errors(void)
{
	proto_limits_default(&lim);
	ERRTEXT(PROTO_EMPTY, "ERR empty request\n");
	ERRTEXT(PROTO_NOT_NUMBER, "ERR not a number\n");
	ERRTEXT(PROTO_NEGATIVE, "ERR negative n\n");
	ERRTEXT(PROTO_TOO_LARGE, "ERR n too large (max 45)\n");
	ERRTEXT(PROTO_LINE_TOO_LONG, "ERR line too long (max 1024 bytes)\n");
	ERRTEXT(PROTO_BUSY, "ERR server busy\n");
}

static void check_reply(const char *line, const char *want)
{
	struct reply r;

	proto_handle_line(&lim, t_guarded(line, strlen(line)), strlen(line),
			  &r);
	T_CHECK(r.len == strlen(want) && memcmp(r.text, want, r.len) == 0,
		"reply to %s", line);
	reply_release(&r);
	T_CHECK(r.text == NULL && r.len == 0, "released");
	reply_release(&r);
}

static void test_replies(void)
{
	proto_limits_default(&lim);
	check_reply("30\n", "832040\n");
	check_reply("0\n", "0\n");
	check_reply("-1\n", "ERR negative n\n");
	lim.algo = FIB_FAST;
	lim.max_n = 100000;
	check_reply("93\n", "12200160415121876738\n");
	check_reply("100\n", "354224848179261915075\n");
}

static void test_reply_set(void)
{
	struct reply r;
	char big[5000];

	memset(big, '7', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	T_CHECK(reply_set(&r, "5\n", 2) == 0 && r.text == r.inline_buf);
	reply_release(&r);
	T_CHECK(reply_set(&r, big, sizeof(big)) == 0 && r.len == sizeof(big));
	T_CHECK(memcmp(r.text, big, sizeof(big)) == 0);
	reply_release(&r);
}

int main(void)
{
	T_RUN(test_parse, 10);
	T_RUN(test_parse_large_limit, 10);
	T_RUN(test_parse_read, 10);
	T_RUN(test_frame, 10);
	T_RUN(test_errors, 10);
	T_RUN(test_replies, 10);
	T_RUN(test_reply_set, 10);
	return t_done("test_proto");
}
