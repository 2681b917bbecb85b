/* test_hist - the HDR histogram against exactly computed percentiles. */
#include <errno.h>
#include <math.h>
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
	/* 1..n: variance (n^2 - 1) / 12; buckets hold it to 0.1%. */
	T_CHECK(fabs(hist_stddev(h) / sqrt((n * (double)n - 1) / 12) - 1) <
		    1e-3,
		"stddev %f", hist_stddev(h));
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

/* A copy of h rebuilt from what hist_bucket() and the getters export, as
 * a histogram file carries it. */
static struct hist *copy_by_export(const struct hist *h)
{
	struct hist *c = hist_new(hist_highest(h), hist_sigfigs(h));
	uint64_t low, count;
	size_t pos = 0;

	while (hist_bucket(h, &pos, &low, &count))
		if (hist_add_bucket(c, low, count))
			T_CHECK(0, "low %llu refused", (unsigned long long)low);
	T_CHECK(hist_restore(c, hist_clamped(h), hist_sum(h), hist_min(h),
			     hist_max(h)) == 0);
	return c;
}

/* Same buckets, same statistics: a and b report alike, whatever asked. */
static void check_same(const struct hist *a, const struct hist *b)
{
	uint64_t la, ca, lb = 0, cb = 0, differ = 0, n = 0;
	size_t pa = 0, pb = 0;
	int more;

	do {
		more = hist_bucket(a, &pa, &la, &ca);
		differ += more != hist_bucket(b, &pb, &lb, &cb) ||
			  (more && (la != lb || ca != cb));
		n += more;
	} while (more && !differ);
	T_CHECK(!differ && n > 0, "%llu buckets, then one differs",
		(unsigned long long)n);
	T_CHECK(hist_count(a) == hist_count(b));
	T_CHECK(hist_clamped(a) == hist_clamped(b));
	T_CHECK(hist_sum(a) == hist_sum(b) && hist_mean(a) == hist_mean(b));
	T_CHECK(hist_min(a) == hist_min(b) && hist_max(a) == hist_max(b));
	for (size_t i = 0; i < NPCTS; i++)
		T_CHECK(hist_percentile(a, pcts[i]) ==
			    hist_percentile(b, pcts[i]),
			"p%g", pcts[i]);
}

/* Exported, rebuilt and merged histograms report exactly what one
 * histogram that recorded every value reports: the promise of
 * `fibload merge`. Values above the range (clamped) included. */
static void test_export_merge(void)
{
	struct hist *all = hist_new(HIST_HOUR_NS, 3), *part[3], *merged;

	for (int i = 0; i < 3; i++)
		part[i] = hist_new(HIST_HOUR_NS, 3);
	for (int i = 0; i < 300000; i++) {
		int shift = (int)(rnd() % 30);
		uint64_t x = rnd() % (1000ull << shift);

		if (i % 10007 == 0)
			x = HIST_HOUR_NS + rnd() % HIST_HOUR_NS;
		hist_record(all, x);
		hist_record(part[rnd() % 3], x);
	}
	T_CHECK(hist_clamped(all) > 0);
	merged = hist_new(HIST_HOUR_NS, 3);
	for (int i = 0; i < 3; i++) {
		struct hist *c = copy_by_export(part[i]);

		check_same(c, part[i]);
		T_CHECK(hist_merge(merged, c) == 0);
		hist_free(c);
	}
	check_same(merged, all);
	for (int i = 0; i < 3; i++)
		hist_free(part[i]);
	hist_free(merged);
	hist_free(all);
}

/* What a damaged file could claim is refused. */
static void test_import_checks(void)
{
	struct hist *h = hist_new(HIST_HOUR_NS, 3),
		    *e = hist_new(HIST_HOUR_NS, 3);

	T_CHECK(hist_add_bucket(h, 2047, 1) == 0);	 /* exact below 2048 */
	T_CHECK(hist_add_bucket(h, 2049, 1) == -EINVAL); /* width 2 from 2048 */
	T_CHECK(hist_add_bucket(h, 4096, 2) == 0);
	T_CHECK(hist_add_bucket(h, HIST_HOUR_NS + 1, 1) == -EINVAL);
	T_CHECK(hist_add_bucket(h, 4096, UINT64_MAX) == -EINVAL);
	/* Values 2047, 4096, 4097 (4096's sub-bucket is 4096..4099). */
	T_CHECK(hist_restore(h, 0, 2047 + 4096 + 4097, 2048, 4097) == -EINVAL,
		"min above its sub-bucket");
	T_CHECK(hist_restore(h, 0, 2047 + 4096 + 4097, 2047, 4100) == -EINVAL,
		"max above its sub-bucket");
	T_CHECK(hist_restore(h, 1, 2047 + 4096 + 4097, 2047, 4097) == -EINVAL,
		"clamped without a max above the range");
	T_CHECK(hist_restore(h, 0, 3 * 4097 + 1, 2047, 4097) == -EINVAL,
		"sum above count * max");
	T_CHECK(hist_restore(h, 0, 2047 + 4096 + 4097, 2047, 4097) == 0);
	T_CHECK(hist_mean(h) == (2047 + 4096 + 4097) / 3.0);
	T_CHECK(hist_percentile(h, 100) == 4097 && hist_min(h) == 2047);
	T_CHECK(hist_restore(e, 0, 1, 0, 0) == -EINVAL, "a sum, no values");
	T_CHECK(hist_restore(e, 0, 0, 0, 0) == 0);
	hist_free(h);
	hist_free(e);
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
	T_RUN(test_export_merge, 30);
	T_RUN(test_import_checks, 20);
	T_RUN(test_edges, 20);
	return t_done("test_hist");
}
