/*
 * metrics - the server's counters, and their Prometheus text rendering
 * (GET /metrics, src/core/http.h).
 *
 * What is counted (docs/OPERATIONS.md lists every metric):
 *   - fib requests answered, by protocol (line, http) and result (ok, or
 *     the proto_status of the error),
 *   - HTTP responses by status code,
 *   - requests in flight: a compute under way, or handed to a worker and
 *     not back yet (cheap inline computes, metrics_cheap(), are skipped),
 *   - connections open, served in total, and turned away (--max-conns),
 *   - a histogram of request latency with fixed buckets: from the read that
 *     brought the request in to the moment its reply was queued for
 *     writing.
 *
 * Cost. The reactor and uring models run one loop per core and the thread
 * model a thread per connection, so one shared counter per request would be
 * a cache line bouncing between cores. The counters live in METRICS_SHARDS
 * shards, each on cache lines of its own; a thread takes one shard, round
 * robin, the first time it counts, and adds to it with relaxed atomics (two
 * threads may share a shard once there are more threads than shards).
 * A scrape sums the shards. On top of that, the hot path counts in a
 * struct metrics_batch, plain memory owned by one connection or loop, and
 * flushes it once per read: two clock reads and a few atomic adds per
 * batch of pipelined requests, one plain increment per request.
 *
 * Processes. The many model is several processes, and a scrape reaches one
 * of them: metrics_init() puts the shards in a MAP_SHARED mapping before
 * the first fork, so every process adds to, and every scrape reads, the
 * whole server's counters. Without metrics_init() (unit tests) the shards
 * are private static memory. A child's gauges (connections open, requests
 * in flight) live in a slot of its own in that mapping, which its parent
 * drops when the child dies (metrics_process_gone()): a child killed with
 * connections open does not leave them counted for ever.
 *
 * The process metrics (process_cpu_seconds_total, _resident_memory_bytes,
 * _open_fds, _start_time_seconds...; src/core/procstat.h) are read from
 * /proc at each scrape, for the process that answers it.
 *
 * Latency in a batch. Every request of one pipelined batch is timed from the
 * batch's first request to its flush: the blocking loop writes the batch's
 * replies at once, so that is when the client gets them; for an event loop
 * it is an upper bound. Requests handed to a worker pool are timed one by
 * one (metrics_job_*).
 */
#ifndef FIBD_CORE_METRICS_H
#define FIBD_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define METRICS_SHARDS 64 /* thread slots; more threads share them */

/* Results of a fib request: PROTO_OK and each proto error kind. */
#define METRICS_RESULTS (PROTO_BUSY + 1)

enum metrics_proto {
	METRICS_LINE, /* the fib/1 line protocol */
	METRICS_HTTP, /* GET /fib/N */
	METRICS_PROTOS,
};

/* The HTTP status codes fibd sends; any other is counted as 500. */
#define METRICS_CODES 12

/* The latency buckets' upper bounds, in nanoseconds; then +Inf. */
#define METRICS_BUCKETS 22

/*
 * Counts of one connection's or loop's current batch; plain memory, owned
 * by one thread. Zero it (METRICS_BATCH_INIT) before first use.
 */
struct metrics_batch {
	uint64_t t0;	  /* clock at the batch's first request, 0: empty */
	uint32_t n;	  /* fib requests in the batch */
	uint32_t touched; /* bit p * METRICS_RESULTS + result: results[p][r] */
	uint32_t results[METRICS_PROTOS][METRICS_RESULTS];
	uint32_t codes[METRICS_CODES];
	bool any_code;
};

#define METRICS_BATCH_INIT                                                     \
	{                                                                      \
		0                                                              \
	}

/*
 * Moves the shards to a MAP_SHARED mapping that processes forked from now on
 * share. Call once, before any thread or child exists. Returns 0 or -errno
 * (the counters then stay private to each process).
 */
int metrics_init(void);

/*
 * Child pid, forked after metrics_init(), is dead and reaped: drops its
 * gauges (its connections closed with it). Call before pid can be reused.
 */
void metrics_process_gone(pid_t pid);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t metrics_now_ns(void);

/*
 * The result to count for a request whose parse gave st and whose reply is
 * r: a compute that failed (an ERR reply, where fib(n) is digits) is
 * PROTO_INTERNAL.
 */
static inline enum proto_status metrics_result(enum proto_status st,
					       const struct reply *r)
{
	return st == PROTO_OK && r->len && r->text[0] == 'E' ? PROTO_INTERNAL
							     : st;
}

/*
 * Counts one answered fib request in b (starting its clock if empty).
 * Inline: this is the per-request cost of counting.
 */
static inline void metrics_batch_request(struct metrics_batch *b,
					 enum metrics_proto p,
					 enum proto_status result)
{
	if (!b->n)
		b->t0 = metrics_now_ns();
	b->n++;
	b->results[p][result]++;
	b->touched |= 1u << (p * METRICS_RESULTS + result);
}

/* Counts one HTTP response with this status code in b. */
void metrics_batch_code(struct metrics_batch *b, int code);

/* Adds b to the shards, timing its requests from b->t0; empties b. */
void metrics_batch_flush(struct metrics_batch *b);

/*
 * One request on its own (a pool job): begin when it is handed over (the
 * in-flight gauge goes up; returns the start time), end when its reply is
 * back.
 */
uint64_t metrics_job_begin(void);
void metrics_job_end(enum metrics_proto p, enum proto_status result,
		     uint64_t t0);

/* The in-flight gauge alone, for a compute that blocks its caller. */
void metrics_compute_begin(void);
void metrics_compute_end(void);

/*
 * Computes at or below these n take well under a microsecond (naive
 * fib(12), fast fib(500): the levels evconn.h measured), so no scrape could
 * ever see one in flight; they are the IO-bound hot path, and the in-flight
 * gauge skips them when they run inline.
 */
#define METRICS_CHEAP_NAIVE_N 12
#define METRICS_CHEAP_FAST_N  500

static inline bool metrics_cheap(const struct proto_limits *lim, uint64_t n)
{
	return n <= (lim->algo == FIB_NAIVE ? METRICS_CHEAP_NAIVE_N
					    : METRICS_CHEAP_FAST_N);
}

/* A connection starts being served; it closes; one is turned away. */
void metrics_conn_open(void);
void metrics_conn_close(void);
void metrics_conn_rejected(void);

/*
 * The buffer metrics_render() needs at most: the text is about 3.4 KiB
 * with small counts and under 5 KiB with every counter at 2^64 - 1.
 */
#define METRICS_TEXT_MAX 8192

/*
 * Renders every metric in the Prometheus text exposition format (0.0.4)
 * into buf[0..cap). Returns its length, or -ENOSPC when cap is too small.
 */
int metrics_render(char *buf, size_t cap);

/* The sum over shards of the requests counted for (p, result): tests. */
uint64_t metrics_requests(enum metrics_proto p, enum proto_status result);

#endif
