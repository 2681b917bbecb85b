/*
 * test_sched - the open loop's schedule (src/fibload/sched.c), in process:
 * the statistics of the poisson gaps from a fixed seed, the uniform gaps'
 * constancy, and that a seed gives one schedule. Pure arithmetic: no clock.
 */
#include <math.h>
#include <stdint.h>

#include "../t.h"
#include "fibload/sched.h"

#define GAPS 100000

/* Mean and variance of GAPS successive gaps (ns) of s. */
static void gap_stats(struct fl_sched *s, double *mean, double *var)
{
	double sum = 0, sum2 = 0, prev = (double)fl_sched_due(s), g;

	for (unsigned i = 0; i < GAPS; i++) {
		fl_sched_advance(s);
		g = (double)fl_sched_due(s) - prev;
		prev += g;
		sum += g;
		sum2 += g * g;
	}
	*mean = sum / GAPS;
	*var = sum2 / GAPS - *mean * *mean;
}

/*
 * Exponential gaps with mean m = 1/rate: the sample mean has standard
 * error m / sqrt(n), and the variance is m^2 (CV 1). With n = 100,000 the
 * mean must be within 4 standard errors (1.3%); the CV estimate's own
 * standard error is about 1/sqrt(n) * 1.1, so 3% is many of them.
 */
static void test_poisson_statistics(void)
{
	static const double rates[] = {1000.0, 25000.0};
	static const unsigned conns[] = {1, 8};

	for (unsigned r = 0; r < 2; r++) {
		for (unsigned c = 0; c < 2; c++) {
			struct fl_sched s;
			double mean, var, want, se, cv;

			fl_sched_init(&s, FL_ARRIVALS_POISSON, rates[r],
				      conns[c], conns[c] - 1, 42);
			gap_stats(&s, &mean, &var);
			want = 1e9 / rates[r] * conns[c];
			se = want / sqrt(GAPS);
			cv = sqrt(var) / mean;
			T_CHECK(fabs(mean - want) < 4 * se,
				"rate %g conns %u: mean gap %g ns, want %g "
				"+- %g",
				rates[r], conns[c], mean, want, 4 * se);
			T_CHECK(fabs(cv - 1) < 0.03,
				"rate %g conns %u: CV %g, want 1 (exponential)",
				rates[r], conns[c], cv);
		}
	}
}

/* The exponential's shape, not only its moments: P(gap > mean) = 1/e. */
static void test_poisson_tail(void)
{
	struct fl_sched s;
	double prev, g, mean = 1e6;
	unsigned above = 0;

	fl_sched_init(&s, FL_ARRIVALS_POISSON, 1000.0, 1, 0, 7);
	prev = (double)fl_sched_due(&s);
	for (unsigned i = 0; i < GAPS; i++) {
		fl_sched_advance(&s);
		g = (double)fl_sched_due(&s) - prev;
		prev += g;
		above += g > mean;
	}
	/* binomial: sd = sqrt(n p (1 - p)) = 152; 4 sd */
	T_CHECK(fabs(above - GAPS * exp(-1)) < 4 * 152.5, "%u above the mean",
		above);
}

/* The same seed gives the same schedule; another seed another. */
static void test_poisson_seed(void)
{
	struct fl_sched a, b, c;
	int same_ab = 1, same_ac = 1;

	fl_sched_init(&a, FL_ARRIVALS_POISSON, 500.0, 4, 2, 99);
	fl_sched_init(&b, FL_ARRIVALS_POISSON, 500.0, 4, 2, 99);
	fl_sched_init(&c, FL_ARRIVALS_POISSON, 500.0, 4, 2, 100);
	for (unsigned i = 0; i < 1000; i++) {
		same_ab &= fl_sched_due(&a) == fl_sched_due(&b);
		same_ac &= fl_sched_due(&a) == fl_sched_due(&c);
		fl_sched_advance(&a);
		fl_sched_advance(&b);
		fl_sched_advance(&c);
	}
	T_CHECK(same_ab, "seed 99 twice gave two schedules");
	T_CHECK(!same_ac, "seeds 99 and 100 gave one schedule");
}

/* Uniform: connection i of C is due at i / rate, then every C / rate. */
static void test_uniform(void)
{
	struct fl_sched s;
	uint64_t prev, gap, lo = UINT64_MAX, hi = 0;

	fl_sched_init(&s, FL_ARRIVALS_UNIFORM, 1000.0, 4, 3, 42);
	T_CHECK(fl_sched_due(&s) == 3000000, "first due %llu",
		(unsigned long long)fl_sched_due(&s));
	prev = fl_sched_due(&s);
	for (unsigned i = 0; i < GAPS; i++) {
		fl_sched_advance(&s);
		gap = fl_sched_due(&s) - prev;
		prev = fl_sched_due(&s);
		lo = gap < lo ? gap : lo;
		hi = gap > hi ? gap : hi;
	}
	T_CHECK(lo == 4000000 && hi == 4000000, "gaps %llu..%llu",
		(unsigned long long)lo, (unsigned long long)hi);
	/* A period that is not a whole number of ns: no drift, at most
	 * 1 ns of rounding per gap. */
	fl_sched_init(&s, FL_ARRIVALS_UNIFORM, 3000.0, 1, 0, 0);
	for (unsigned i = 0; i < GAPS; i++)
		fl_sched_advance(&s);
	T_CHECK(fl_sched_due(&s) >= 33333333333ull - 1 &&
		    fl_sched_due(&s) <= 33333333334ull,
		"due %llu after %u gaps", (unsigned long long)fl_sched_due(&s),
		GAPS);
}

static void test_names(void)
{
	enum fl_arrivals a;

	T_CHECK(fl_arrivals_parse("poisson", &a) == 0 &&
		a == FL_ARRIVALS_POISSON);
	T_CHECK(fl_arrivals_parse("uniform", &a) == 0 &&
		a == FL_ARRIVALS_UNIFORM);
	T_CHECK(fl_arrivals_parse("Poisson", &a) < 0);
}

int main(void)
{
	T_RUN(test_poisson_statistics, 30);
	T_RUN(test_poisson_tail, 30);
	T_RUN(test_poisson_seed, 10);
	T_RUN(test_uniform, 10);
	T_RUN(test_names, 10);
	return t_done("test_sched");
}
