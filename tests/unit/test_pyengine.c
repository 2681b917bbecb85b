/*
 * Unit tests for src/core/pyengine: CPython's answers against the C/GMP
 * engine, from many threads at once, in subinterpreters made and ended
 * hundreds of times (no memory growth), and in short-lived threads (each
 * one's interpreter state is freed when it exits). In a build without
 * libpython, checks that everything says -ENOSYS.
 *
 * Each case runs in a child of its own (T_RUN), which starts its own
 * interpreter on first use.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/proto.h"
#include "core/pyengine.h"
#include "../t.h"

#define THREADS	      8
#define CALLS	      150
#define SUB_ROUNDS    400
#define SUB_WARMUP    50
#define THREAD_ROUNDS 600
/*
 * Growth allowed from round SUB_WARMUP on. Measured here: 188 KiB over 350
 * subinterpreters, 64 KiB over 250 threads; with each thread's state
 * leaked (the destructor left out), 1.1 MiB over 250 threads.
 */
#define SUB_GROWTH_MAX	  (16L << 20) /* under 47 KiB a round */
#define THREAD_GROWTH_MAX (1L << 20)  /* under 2 KiB a thread */

/*
 * ASan's quarantine keeps freed memory resident (256 MB of it), so under
 * ASan RSS says nothing about leaks: the plain build checks growth.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

/*
 * 0 when the python engine's fib(n) equals the C engine's, else why not.
 * No T_CHECK here: worker threads call it, and the counters are not atomic.
 */
static int py_differs(enum fib_algo algo, uint64_t n)
{
	struct proto_limits lim;
	struct reply py = {0}, c = {0};
	int err;

	proto_limits_default(&lim);
	lim.algo = algo;
	err = pyengine_fib(algo, n, &py);
	if (err)
		return err;
	proto_compute(&lim, n, &c);
	err = py.len == c.len && memcmp(py.text, c.text, c.len) == 0 ? 0 : 1;
	if (err)
		fprintf(stderr, "%s fib(%llu): python '%.40s' c '%.40s'\n",
			fib_algo_name(algo), (unsigned long long)n, py.text,
			c.text);
	reply_release(&py);
	reply_release(&c);
	return err;
}

/* Checks one value (main thread only). 1 when right. */
static int same_as_c(enum fib_algo algo, uint64_t n)
{
	int err = py_differs(algo, n);

	T_CHECK(err == 0, "%s fib(%llu): %d", fib_algo_name(algo),
		(unsigned long long)n, err);
	return err == 0;
}

static void test_values(void)
{
	static const uint64_t big[] = {93, 94, 1000, 20577, 25000, 100000};
	struct reply r = {0};

	T_CHECK(pyengine_init() == 0);
	for (unsigned n = 0; n <= 90; n++)
		same_as_c(FIB_FAST, n);
	for (unsigned n = 0; n <= 25; n++)
		same_as_c(FIB_NAIVE, n);
	/* Past 4300 digits CPython's str() refuses: the engine avoids it. */
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
		same_as_c(FIB_FAST, big[i]);
	T_CHECK(pyengine_fib(FIB_NAIVE, FIB_U64_MAX_N + 1, &r) == -ERANGE);
	T_CHECK(r.text == NULL, "r touched on failure");
}

/* A thread of test_threads: mixed requests, each checked. */
static void *threads_worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	long bad = 0;

	for (int i = 0; i < CALLS; i++) {
		seed = seed * 1103515245u + 12345u;
		if (seed >> 31)
			bad += py_differs(FIB_NAIVE, (seed >> 8) % 19) != 0;
		else
			bad += py_differs(FIB_FAST, (seed >> 8) % 3000) != 0;
	}
	return (void *)bad;
}

static void test_threads(void)
{
	pthread_t th[THREADS];
	void *bad;

	for (uintptr_t i = 0; i < THREADS; i++)
		T_CHECK(pthread_create(&th[i], NULL, threads_worker,
				       (void *)(i + 1)) == 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], &bad);
		T_CHECK(bad == NULL, "thread %d: %ld wrong", i, (long)bad);
	}
}

/* Resident set size in bytes. */
static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

/*
 * One subinterpreter's life on the calling thread: 0 when all went well.
 * No T_CHECK: threads call it.
 */
static int sub_round(void)
{
	int err = pyengine_sub_begin();

	if (err)
		return err;
	if (pyengine_sub_begin() != -EBUSY)
		err = -EINVAL;
	if (!err)
		err = py_differs(FIB_NAIVE, 20);
	if (!err)
		err = py_differs(FIB_FAST, 500);
	pyengine_sub_end();
	return err;
}

static void test_sub_no_growth(void)
{
	long before = 0, after;
	int ok = 1;

	for (int i = 0; i < SUB_ROUNDS && ok; i++) {
		ok = sub_round() == 0;
		if (i == SUB_WARMUP)
			before = rss_bytes();
	}
	T_CHECK(ok, "a subinterpreter round failed");
	after = rss_bytes();
	T_CHECK(!RSS_MEANINGFUL || after - before < SUB_GROWTH_MAX,
		"RSS grew %ld KiB over %d subinterpreters",
		(after - before) >> 10, SUB_ROUNDS - SUB_WARMUP);
	/* The main interpreter still answers once they are gone. */
	same_as_c(FIB_NAIVE, 21);
}

static void *sub_worker(void *arg)
{
	long bad = 0;

	(void)arg;
	for (int i = 0; i < 20; i++)
		bad += sub_round() != 0;
	return (void *)bad;
}

/* Subinterpreters on several threads at once, sharing the one GIL. */
static void test_sub_threads(void)
{
	pthread_t th[4];
	void *bad;

	for (int i = 0; i < 4; i++)
		T_CHECK(pthread_create(&th[i], NULL, sub_worker, NULL) == 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], &bad);
		T_CHECK(bad == NULL, "thread %d: %ld bad rounds", i, (long)bad);
	}
}

static void *one_call(void *arg)
{
	(void)arg;
	return (void *)(long)(py_differs(FIB_NAIVE, 15) != 0);
}

/* The thread model's pattern: a thread per connection, each calling in. */
static void test_thread_exit_frees(void)
{
	long before = 0, after;
	pthread_t th;
	void *bad;

	for (int i = 0; i < THREAD_ROUNDS; i++) {
		T_CHECK(pthread_create(&th, NULL, one_call, NULL) == 0);
		pthread_join(th, &bad);
		T_CHECK(bad == NULL);
		if (i == SUB_WARMUP)
			before = rss_bytes();
	}
	after = rss_bytes();
	T_CHECK(!RSS_MEANINGFUL || after - before < THREAD_GROWTH_MAX,
		"RSS grew %ld KiB over %d threads", (after - before) >> 10,
		THREAD_ROUNDS - SUB_WARMUP);
}

static void test_no_engine(void)
{
	struct reply r = {0};

	T_CHECK(pyengine_init() == -ENOSYS);
	T_CHECK(pyengine_fib(FIB_NAIVE, 10, &r) == -ENOSYS);
	T_CHECK(pyengine_sub_begin() == -ENOSYS);
	pyengine_sub_end();
}

int main(void)
{
	if (!pyengine_available()) {
		fprintf(stderr, "test_pyengine: built without libpython\n");
		T_RUN(test_no_engine, 10);
		return t_done("test_pyengine");
	}
	T_RUN(test_values, 60);
	T_RUN(test_threads, 120);
	T_RUN(test_sub_no_growth, 180);
	T_RUN(test_sub_threads, 120);
	T_RUN(test_thread_exit_frees, 120);
	return t_done("test_pyengine");
}
