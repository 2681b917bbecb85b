/*
 * async_inline - where the async model's inline threshold comes from.
 *
 * An async task may compute a request itself or hand it to the worker pool.
 * The pool costs the loop a submit (lock + futex wake), a pipe wake-up
 * through epoll and a reap, and costs the request a cross-core hand-off both
 * ways. A request is worth computing inline when computing it costs less than
 * that. This program measures both sides and prints one line per result:
 *
 *   compute algo=naive n=18 ns=...
 *   pool_roundtrip workers=1 wall_ns=... loop_cpu_ns=...
 *
 * Usage: build/bench/async_inline [ROUNDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../src/core/proto.h"
#include "../src/core/tpool.h"

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Median-free but warm: the best of a few timed batches, per call. */
static double compute_ns(const struct proto_limits *lim, uint64_t n,
			 unsigned rounds)
{
	double best = 1e30;
	struct reply r;

	for (int rep = 0; rep < 5; rep++) {
		uint64_t t0 = now_ns(CLOCK_MONOTONIC);
		for (unsigned i = 0; i < rounds; i++) {
			proto_compute(lim, n, &r);
			reply_release(&r);
		}
		double per = (double)(now_ns(CLOCK_MONOTONIC) - t0) / rounds;
		if (per < best)
			best = per;
	}
	return best;
}

static void noop(struct tpool_job *job)
{
	(void)job;
}

/* One job at a time through the pool, as a 1-client ping-pong would. */
static void roundtrip(unsigned workers, unsigned rounds)
{
	struct tpool *p = tpool_create(workers);
	struct tpool_cq *q = tpool_cq_create();
	struct epoll_event ev = {.events = EPOLLIN};
	struct tpool_job job = {.run = noop, .cq = q};
	int ep = epoll_create1(0);
	uint64_t w0, c0;

	if (!p || !q || ep < 0) {
		perror("async_inline");
		exit(1);
	}
	epoll_ctl(ep, EPOLL_CTL_ADD, tpool_cq_fd(q), &ev);
	w0 = now_ns(CLOCK_MONOTONIC);
	c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned i = 0; i < rounds; i++) {
		tpool_submit(p, &job);
		while (!tpool_cq_reap(q))
			epoll_wait(ep, &ev, 1, -1);
	}
	printf("pool_roundtrip workers=%u wall_ns=%.0f loop_cpu_ns=%.0f\n",
	       workers, (double)(now_ns(CLOCK_MONOTONIC) - w0) / rounds,
	       (double)(now_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / rounds);
	tpool_destroy(p);
	tpool_cq_destroy(q);
	close(ep);
}

int main(int argc, char **argv)
{
	static const unsigned naive_n[] = {1, 10, 14, 16, 17, 18, 19, 20, 25};
	static const unsigned fast_n[] = {93, 1000, 2000, 5000, 10000, 100000};
	unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 20000;
	struct proto_limits lim;

	proto_limits_default(&lim);
	for (size_t i = 0; i < sizeof(naive_n) / sizeof(naive_n[0]); i++)
		printf("compute algo=naive n=%u ns=%.0f\n", naive_n[i],
		       compute_ns(&lim, naive_n[i],
				  naive_n[i] > 20 ? rounds / 100 : rounds));
	lim.algo = FIB_FAST;
	lim.max_n = FIB_FAST_DEFAULT_MAX_N;
	for (size_t i = 0; i < sizeof(fast_n) / sizeof(fast_n[0]); i++)
		printf("compute algo=fast n=%u ns=%.0f\n", fast_n[i],
		       compute_ns(&lim, fast_n[i],
				  fast_n[i] > 1000 ? rounds / 100 : rounds));
	roundtrip(1, rounds);
	roundtrip(2, rounds);
	return 0;
}
