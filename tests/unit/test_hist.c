/* test_hist - the HDR histogram against exactly computed percentiles. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "../t.h"
#include "fibload/hist.h"

static const double pcts[] = {0,  1,  10,   25,	   50,	   75, 90,
			      95, 99, 99.9, 99.99, 99.999, 100};
#define NPCTS (sizeof(pcts) / sizeof(pcts[0]))

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of sorted v[0..n). */
static uint64_t exact_pct(const uint64_t *v, size_t n, double p)
{
	uint64_t ppm = (uint64_t)(p * 10000 + 0.5);
	uint64_t rank = (ppm * n + 999999) / 1000000;

	return v[rank ? rank - 1 : 0];
}

/* h's percentiles are the exact ones to 3 significant digits: never
 * below, and above by less than one part in a thousand. */
static void check_against(const struct hist *h, uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(v[0]), cmp_u64);
	for (size_t i = 0; i < NPCTS; i++) {
		uint64_t want = exact_pct(v, n, pcts[i]);
		uint64_t got = hist_percentile(h, pcts[i]);

		T_CHECK(got >= want && got - want <= want / 1000,
			"p%g: got %llu, exact %llu", pcts[i],
			(unsigned long long)got, (unsigned long long)want);
	}
	T_CHECK(hist_max(h) == v[n - 1]);
	T_CHECK(hist_min(h) == v[0]);
}

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_uniform(void)
{
	size_t n = 100000;
	uint64_t *v = malloc(n * sizeof(*v));
	struct hist *h = hist_new(HIST_HOUR_NS, 3);

	for (size_t i = 0; i < n; i++) {
		v[i] = i + 1;
		hist_record(h, v[i]);
	}
	T_CHECK(hist_count(h) == n);
	T_CHECK(hist_mean(h) == 50000.5, "mean %f", hist_mean(h));
	check_against(h, v, n);
	/* Below 2048 every value is exact. */
	T_CHECK(hist_percentile(h, 1) == 1000);
	free(v);
	hist_free(h);
}

static void test_constant(void)
{
	struct hist *h = hist_new(HIST_HOUR_NS, 3);

	for (int i = 0; i < 100000; i++)
		hist_record(h, 123456789);
	for (size_t i = 0; i < NPCTS; i++)
		T_CHECK(hist_percentile(h, pcts[i]) == 123456789, "p%g",
			pcts[i]);
	T_CHECK(hist_mean(h) == 123456789.0);
	hist_free(h);
}

static void test_bimodal(void)
{
	size_t n = 10000, i;
	uint64_t *v = malloc(n * sizeof(*v));
	struct hist *h = hist_new(HIST_HOUR_NS, 3);

	for (i = 0; i < n; i++) {
		v[i] = i < 9000 ? 50000 : 5000000;
		hist_record(h, v[i]);
	}
	check_against(h, v, n);
	T_CHECK(hist_percentile(h, 90) <= 50050);
	T_CHECK(hist_percentile(h, 90.01) >= 5000000);
	free(v);
	hist_free(h);
}

/* Log-uniform values from 1 us to 10 s, like real latencies. */
static void test_random(void)
{
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v));
	struct hist *h = hist_new(HIST_HOUR_NS, 3);

	for (size_t i = 0; i < n; i++) {
		int shift = (int)(rnd() % 24);

		v[i] = 1000 + (rnd() % (1000ull << shift));
		hist_record(h, v[i]);
	}
	check_against(h, v, n);
	free(v);
	hist_free(h);
}

static void test_merge(void)
{
	struct hist *all = hist_new(HIST_HOUR_NS, 3);
	struct hist *a = hist_new(HIST_HOUR_NS, 3);
	struct hist *b = hist_new(HIST_HOUR_NS, 3);
	struct hist *other = hist_new(1000000, 2);

	for (int i = 0; i < 50000; i++) {
		uint64_t x = rnd() % 100000000;

		hist_record(all, x);
		hist_record(i % 3 ? a : b, x);
	}
	T_CHECK(hist_merge(a, b) == 0);
	T_CHECK(hist_count(a) == hist_count(all));
	T_CHECK(hist_max(a) == hist_max(all) && hist_min(a) == hist_min(all));
	T_CHECK(hist_mean(a) == hist_mean(all));
	for (size_t i = 0; i < NPCTS; i++)
		T_CHECK(hist_percentile(a, pcts[i]) ==
			    hist_percentile(all, pcts[i]),
			"p%g", pcts[i]);
	T_CHECK(hist_merge(a, other) == -EINVAL);
	hist_reset(a);
	T_CHECK(hist_count(a) == 0 && hist_percentile(a, 50) == 0);
	T_CHECK(hist_max(a) == 0 && hist_mean(a) == 0);
	hist_free(all);
	hist_free(a);
	hist_free(b);
	hist_free(other);
}

static void test_edges(void)
{
	struct hist *h = hist_new(HIST_HOUR_NS, 3);

	T_CHECK(h != NULL);
	T_CHECK(hist_bytes(h) <= 300 * 1024, "%zu bytes", hist_bytes(h));
	T_CHECK(hist_percentile(h, 50) == 0);
	hist_record(h, 0);
	T_CHECK(hist_percentile(h, 100) == 0 && hist_count(h) == 1);
	hist_record(h, HIST_HOUR_NS);
	T_CHECK(hist_clamped(h) == 0);
	hist_record(h, 10 * HIST_HOUR_NS); /* beyond the range */
	T_CHECK(hist_clamped(h) == 1);
	T_CHECK(hist_max(h) == 10 * HIST_HOUR_NS);
	T_CHECK(hist_percentile(h, 60) >= HIST_HOUR_NS);
	T_CHECK(hist_new(100, 3) == NULL); /* range below the precision */
	T_CHECK(hist_new(HIST_HOUR_NS, 0) == NULL);
	T_CHECK(hist_new(HIST_HOUR_NS, 6) == NULL);
	hist_free(h);
	hist_free(NULL);
}

int main(void)
{
	T_RUN(test_uniform, 20);
	T_RUN(test_constant, 20);
	T_RUN(test_bimodal, 20);
	T_RUN(test_random, 20);
	T_RUN(test_merge, 20);
	T_RUN(test_edges, 20);
	return t_done("test_hist");
}
