/*
 * proto - the fib/1 line protocol: framing, parsing and replies.
 *
 * All request semantics live here; models only move bytes and decide who
 * computes. See docs/PROTOCOL.md for the protocol as a client sees it.
 *
 * A request is one line ending in '\n'. One '\r' before the '\n' is dropped,
 * then spaces and tabs around the body. The body is a decimal integer with an
 * optional leading '+'. The reply is fib(n) in decimal and '\n', or one line
 * starting with "ERR ".
 *
 * The parser allocates nothing and never reads past the length it is given.
 * Only a reply too large for struct reply's inline buffer (a GMP result)
 * allocates.
 */
#ifndef FIBD_CORE_PROTO_H
#define FIBD_CORE_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fib.h"

/* The default --max-line: the longest request line, '\n' excluded. */
#define PROTO_DEFAULT_MAX_LINE 1024
/* --max-line is kept within [PROTO_MIN_MAX_LINE, PROTO_MAX_MAX_LINE]. */
#define PROTO_MIN_MAX_LINE 16
#define PROTO_MAX_MAX_LINE (1u << 20)

/*
 * How a connection's bytes become requests (--framing). It lives in
 * proto_limits because it is request semantics, and because the limits
 * already reach every connection engine unchanged.
 */
enum proto_framing {
	/* fib/1: a request is a line ending in '\n' (proto_frame()). */
	PROTO_FRAMING_LINE = 0,
	/* The talk's servers: whatever one read returns (at most max_line
	 * bytes) is one request (proto_parse_read()). */
	PROTO_FRAMING_READ,
};

/* What a server accepts; fixed for the server's life. */
struct proto_limits {
	enum fib_algo algo;	/* how fib is computed */
	enum fib_engine engine; /* in C or in Python (core/pyengine.h) */
	uint64_t max_n;		/* larger n get "ERR n too large (max M)" */
	size_t max_line; /* line: longer lines get "ERR line too long", then
			    close; read: the most bytes one read asks for */
	enum proto_framing framing;
};

/* Fills in the defaults: naive in C, max_n 45, max_line 1024, line framing. */
void proto_limits_default(struct proto_limits *lim);

/* "line" or "read" into *f. Returns 0, or -EINVAL for anything else. */
int proto_framing_parse(const char *name, enum proto_framing *f);

/*
 * The outcome of reading one request. PROTO_OK means "compute fib(n)";
 * everything else has a fixed error reply (proto_error_reply()).
 */
enum proto_status {
	PROTO_OK = 0,
	PROTO_EMPTY,	     /* nothing but blanks: "ERR empty request" */
	PROTO_NOT_NUMBER,    /* anything else that is not [+]digits */
	PROTO_NEGATIVE,	     /* '-' then digits: "ERR negative n" */
	PROTO_TOO_LARGE,     /* n > max_n: "ERR n too large (max M)" */
	PROTO_LINE_TOO_LONG, /* no '\n' within max_line: then close */
	PROTO_INTERNAL, /* the server failed (out of memory, a dead worker) */
	PROTO_BUSY,	/* the server is at --max-conns: then close */
};

/*
 * The reply to a request that did not arrive whole within --header-timeout
 * of its first byte; the server then closes. Not a proto_status: no parse
 * gives it, the connection's clock does.
 */
#define PROTO_TIMEOUT_LINE "ERR request timeout\n"

/*
 * Finds the end of the first request line in buf[0..len).
 * Returns the line's length including its '\n' (> 0) when a whole line is
 * there; 0 when more bytes are needed; -1 (PROTO_FRAME_TOO_LONG) when the
 * line is already longer than max_line and can never be framed. A caller
 * that gets -1 sends the PROTO_LINE_TOO_LONG reply and closes.
 */
#define PROTO_FRAME_TOO_LONG (-1)
ssize_t proto_frame(const char *buf, size_t len, size_t max_line);

/*
 * Parses one request line, line[0..len), with or without its '\n'.
 * On PROTO_OK stores the requested n in *n.
 */
enum proto_status proto_parse(const struct proto_limits *lim, const char *line,
			      size_t len, uint64_t *n);

/*
 * Read framing: parses the bytes of one read, data[0..len), as one request.
 * Leading and trailing whitespace (space, \t, \r, \n, \v, \f: what
 * Python's int() strips) is dropped, then what is left is judged exactly as
 * proto_parse() judges a line. A caller reads at most lim->max_line bytes
 * at a time, so there is no "line too long" here. On PROTO_OK stores n.
 */
enum proto_status proto_parse_read(const struct proto_limits *lim,
				   const char *data, size_t len, uint64_t *n);

/*
 * The most bytes one read of a connection may ask for: line_chunk, the
 * engine's own buffer size, in line framing (framing finds the lines in any
 * amount); max_line in read framing, where the read is the request (the
 * talk's recv(100)).
 */
static inline size_t proto_read_max(const struct proto_limits *lim,
				    size_t line_chunk)
{
	return lim->framing == PROTO_FRAMING_READ ? lim->max_line : line_chunk;
}

/* A reply line, '\n' included. Small replies live inline, large on the heap. */
#define REPLY_INLINE_CAP 72
struct reply {
	char *text; /* the reply bytes: inline_buf or malloc'd */
	size_t len; /* bytes in text, the final '\n' included */
	char inline_buf[REPLY_INLINE_CAP];
};

/* Frees a heap reply; leaves the struct empty. Safe to call twice. */
void reply_release(struct reply *r);

/*
 * Fills r with the error line for status (not PROTO_OK). Never fails.
 * lim may be NULL for every status but PROTO_TOO_LARGE and
 * PROTO_LINE_TOO_LONG, whose text quotes a limit.
 */
void proto_error_reply(const struct proto_limits *lim, enum proto_status status,
		       struct reply *r);

/*
 * Computes fib(n), which proto_parse() accepted, into r. This is the work a
 * model may hand to another thread or process. lim->engine picks C or the
 * embedded CPython (which takes the GIL for the call, from any thread).
 * Never fails: running out of memory, or a python engine that cannot run,
 * gives the PROTO_INTERNAL error line.
 */
void proto_compute(const struct proto_limits *lim, uint64_t n, struct reply *r);

/* Parse plus compute: the whole request-to-reply path for inline models. */
void proto_handle_line(const struct proto_limits *lim, const char *line,
		       size_t len, struct reply *r);

/*
 * Sets r to an arbitrary reply (used when a result crosses a process or
 * thread boundary as bytes). text must end in '\n'. Returns 0 or -ENOMEM.
 */
int reply_set(struct reply *r, const char *text, size_t len);

#endif
