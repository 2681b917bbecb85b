/*
 * coro_bench - what the coroutine runtime's basic operations cost, with
 * glibc's swapcontext measured in the same run for comparison.
 *
 * One line per result, "coro_bench: NAME VALUE UNIT", each the median of
 * REPEATS runs:
 *   switch_raw        coro__switch alone (switch.S), per switch
 *   switch_ucontext   swapcontext, per switch (it also saves the signal
 *                     mask with a system call)
 *   yield_pingpong    two coroutines yielding to each other on one worker,
 *                     per coroutine switch (through g0: two raw switches
 *                     and a run-queue round trip)
 *   event_pingpong    the same with coro_event wake-ups (park + ready)
 *   spawn_join        coro_spawn + coro_join from a coroutine, one worker
 *   cross_pingpong    a round trip between coroutines of two one-worker
 *                     runtimes, so each wake-up crosses threads (and, on
 *                     an idle machine, cores: futex wake + wake-up latency)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#include "coro/coro.h"
#include "coro/internal.h"

#define REPEATS 5

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Runs fn(iters) REPEATS times; prints the median of ns / per. */
static void report(const char *name, double (*fn)(long), long iters, double per,
		   const char *unit)
{
	double r[REPEATS];
	int i;

	for (i = 0; i < REPEATS; i++)
		r[i] = fn(iters) / (iters * per);
	qsort(r, REPEATS, sizeof(r[0]), cmp_double);
	printf("coro_bench: %s %.1f %s\n", name, r[REPEATS / 2], unit);
	fflush(stdout);
}

/* ---- raw switch ------------------------------------------------------- */

static void *raw_main_sp, *raw_co_sp;
static char raw_stack[64 * 1024] __attribute__((aligned(16)));

static void raw_entry(void *arg)
{
	(void)arg;
	for (;;)
		coro__switch(&raw_co_sp, raw_main_sp);
}

/* The frame switch.S pops, as coro__frame_init() builds it. */
static void raw_init(void)
{
	uint64_t *sp = (uint64_t *)(raw_stack + sizeof(raw_stack) - 80);

	sp[0] = 0x1f80 | (uint64_t)0x037f << 32;
	sp[1] = sp[2] = sp[4] = sp[5] = sp[6] = 0;
	sp[3] = (uintptr_t)raw_entry;
	sp[7] = (uintptr_t)coro__trampoline;
	raw_co_sp = sp;
}

static double bench_raw(long iters)
{
	double t0 = now_ns();
	long i;

	for (i = 0; i < iters; i++)
		coro__switch(&raw_main_sp, raw_co_sp);
	return now_ns() - t0;
}

/* ---- swapcontext ------------------------------------------------------ */

static ucontext_t uc_main, uc_co;
static char uc_stack[64 * 1024] __attribute__((aligned(16)));

static void uc_entry(void)
{
	for (;;)
		swapcontext(&uc_co, &uc_main);
}

static double bench_ucontext(long iters)
{
	double t0 = now_ns();
	long i;

	for (i = 0; i < iters; i++)
		swapcontext(&uc_main, &uc_co);
	return now_ns() - t0;
}

static void uc_init(void)
{
	getcontext(&uc_co);
	uc_co.uc_stack.ss_sp = uc_stack;
	uc_co.uc_stack.ss_size = sizeof(uc_stack);
	uc_co.uc_link = NULL;
	makecontext(&uc_co, uc_entry, 0);
}

/* ---- through the runtime ---------------------------------------------- */

static struct coro_rt *rt1, *rt2;
static long g_iters;
static double g_ns;

static void yielder(void *arg)
{
	long i;

	(void)arg;
	for (i = 0; i < g_iters; i++)
		coro_yield();
}

static void yield_main(void *arg)
{
	struct coro *a, *b;
	double t0 = now_ns();

	(void)arg;
	a = coro_spawn(rt1, yielder, NULL);
	b = coro_spawn(rt1, yielder, NULL);
	coro_join(a);
	coro_join(b);
	g_ns = now_ns() - t0;
}

struct pingpong {
	struct coro_event a, b;
	long iters;
};

static void pong(void *arg)
{
	struct pingpong *p = arg;
	long i;

	for (i = 0; i < p->iters; i++) {
		coro_event_wait(&p->b);
		coro_event_signal(&p->a);
	}
}

static void ping(void *arg)
{
	struct pingpong *p = arg;
	double t0 = now_ns();
	long i;

	for (i = 0; i < p->iters; i++) {
		coro_event_signal(&p->b);
		coro_event_wait(&p->a);
	}
	g_ns = now_ns() - t0;
}

/* Runs main_fn as a coroutine of rt1 and returns the time it measured. */
static double in_coro(void (*main_fn)(void *), void *arg)
{
	coro_join(coro_spawn(rt1, main_fn, arg));
	return g_ns;
}

static double bench_yield(long iters)
{
	g_iters = iters;
	return in_coro(yield_main, NULL);
}

static void event_main(void *arg)
{
	struct coro *p = coro_spawn(rt1, pong, arg);

	ping(arg);
	coro_join(p);
}

static double bench_event(long iters)
{
	struct pingpong p = {.iters = iters};

	return in_coro(event_main, &p);
}

static void nothing(void *arg)
{
	(void)arg;
}

static void spawn_main(void *arg)
{
	double t0 = now_ns();
	long i;

	(void)arg;
	for (i = 0; i < g_iters; i++)
		coro_join(coro_spawn(rt1, nothing, NULL));
	g_ns = now_ns() - t0;
}

static double bench_spawn(long iters)
{
	g_iters = iters;
	return in_coro(spawn_main, NULL);
}

static double bench_cross(long iters)
{
	struct pingpong p = {.iters = iters};
	struct coro *b = coro_spawn(rt2, pong, &p);

	coro_join(coro_spawn(rt1, ping, &p));
	coro_join(b);
	return g_ns;
}

int main(void)
{
	struct coro_rt_opts one = {.workers = 1};

	raw_init();
	uc_init();
	report("switch_raw", bench_raw, 10000000, 2, "ns/switch");
	report("switch_ucontext", bench_ucontext, 1000000, 2, "ns/switch");
	rt1 = coro_rt_new(&one);
	rt2 = coro_rt_new(&one);
	if (!rt1 || !rt2) {
		perror("coro_rt_new");
		return 1;
	}
	report("yield_pingpong", bench_yield, 1000000, 2, "ns/switch");
	report("event_pingpong", bench_event, 1000000, 2, "ns/switch");
	report("spawn_join", bench_spawn, 200000, 1, "ns/op");
	report("cross_pingpong", bench_cross, 20000, 1, "ns/roundtrip");
	coro_rt_free(rt2);
	coro_rt_free(rt1);
	return 0;
}
