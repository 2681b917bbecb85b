/*
 * fib - compute and time Fibonacci numbers locally: the talk's opening demo.
 *
 *   fib N...               fib(N), exact, for each N
 *   fib --time N...        naive fib(N) with its time and growth per row
 *   fib --estimate N       how long naive fib(N) would take, from measured
 *                          times of smaller n
 *   --engine python        time the talk's own Python fib instead, in the
 *                          embedded CPython (core/pyengine.h)
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/fib.h"
#include "core/log.h"
#include "core/opt.h"
#include "core/proto.h"
#include "core/pyengine.h"
#include "core/version.h"

/* Each timing repeats the computation for at least this long. */
#define TIME_MIN_NS 20e6
/* The golden ratio: naive fib(n) costs about phi times naive fib(n-1). */
#define PHI 1.6180339887498949

/* --engine: who runs the naive fib that --time and --estimate time. */
static enum fib_engine engine = FIB_ENGINE_C;

static void usage(FILE *f)
{
	/* clang-format off */
	fprintf(f,
"usage: fib N...              print fib(N) for each N (exact, N <= %d)\n"
"       fib --time N...       time naive fib(N); show the growth per row\n"
"       fib --estimate N      extrapolate naive fib(N)'s time from small n\n"
"       fib --engine python --time | --estimate ...\n"
"                             the same, timing the talk's Python fib in\n"
"                             the embedded CPython\n"
"       fib --help | --version\n",
		FIB_FAST_LIMIT_N);
	/* clang-format on */
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Naive fib(n) in the embedded CPython; 0 when it failed. */
static uint64_t python_naive(unsigned n)
{
	struct reply r = {0};
	uint64_t v = 0;

	if (pyengine_fib(FIB_NAIVE, n, &r) == 0)
		v = strtoull(r.text, NULL, 10);
	reply_release(&r);
	return v;
}

/* Nanoseconds for one naive fib(n): repeats short runs for a stable mean. */
static double time_naive(unsigned n, uint64_t *value)
{
	volatile uint64_t sink = 0;
	unsigned long reps = 1;
	double start, elapsed;

	/* Double the batch until it is long enough to dwarf the clock's cost.
	 */
	for (;;) {
		start = now_ns();
		for (unsigned long i = 0; i < reps; i++)
			sink = engine == FIB_ENGINE_PYTHON ? python_naive(n)
							   : fib_naive(n);
		elapsed = now_ns() - start;
		if (elapsed >= TIME_MIN_NS)
			break;
		reps *= 2;
	}
	*value = sink;
	return elapsed / (double)reps;
}

static void print_duration(double ns)
{
	if (ns < 1e3)
		printf("%10.1f ns", ns);
	else if (ns < 1e6)
		printf("%10.2f us", ns / 1e3);
	else if (ns < 1e9)
		printf("%10.2f ms", ns / 1e6);
	else
		printf("%10.2f s ", ns / 1e9);
}

static int parse_n(const char *arg, uint64_t max, uint64_t *n)
{
	return opt_uint("N", arg, 0, max, n);
}

static int cmd_time(int argc, char **argv)
{
	double prev_ns = 0;
	uint64_t prev_n = 0, n, value;

	printf("%4s %22s %13s %10s %9s\n", "n", "fib(n)", "naive time",
	       "x prev", "per step");
	for (int i = 0; i < argc; i++) {
		double ns;

		if (parse_n(argv[i], FIB_U64_MAX_N, &n))
			return 2;
		ns = time_naive((unsigned)n, &value);
		printf("%4llu %22llu ", (unsigned long long)n,
		       (unsigned long long)value);
		print_duration(ns);
		if (i > 0 && n > prev_n)
			printf(" %10.1f %9.3f\n", ns / prev_ns,
			       pow(ns / prev_ns, 1.0 / (double)(n - prev_n)));
		else
			printf(" %10s %9s\n", "-", "-");
		prev_ns = ns;
		prev_n = n;
		fflush(stdout);
	}
	printf("(theory: each step costs phi = %.3f times the one before)\n",
	       PHI);
	return 0;
}

static void print_estimate(const char *how, double ns)
{
	double days = ns / 1e9 / 86400;

	printf("  %-32s %9.3g s = %9.3g days = %9.3g years\n", how, ns / 1e9,
	       days, days / 365.25);
}

/*
 * Extrapolates naive fib(target)'s time two ways, from n = 20..30 measured
 * here: with the theoretical growth phi per step from fib(30)'s time, and
 * with the growth fitted by least squares on log(time). Doubles all the
 * way: fib(100) is about 1e5 to 1e7 days, far from overflow.
 */
static int cmd_estimate(const char *arg)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, a, b, t30 = 0;
	uint64_t target, value;
	int k = 0;

	if (parse_n(arg, 1000, &target)) /* phi^1000 is about 1e209 */
		return 2;
	for (unsigned n = 20; n <= 30; n += 2, k++) {
		double t = time_naive(n, &value), y = log(t);
		if (n == 30)
			t30 = t;
		sx += n;
		sy += y;
		sxx += (double)n * n;
		sxy += n * y;
	}
	b = (k * sxy - sx * sy) / (k * sxx - sx * sx);
	a = (sy - b * sx) / k;
	printf("naive fib(30) takes %.3g ms here; growth per step fitted over "
	       "n = 20..30: %.4f (phi = %.4f)\n",
	       t30 / 1e6, exp(b), PHI);
	printf("naive fib(%llu) would take about:\n",
	       (unsigned long long)target);
	print_estimate("fib(30)'s time x phi per step:",
		       t30 * pow(PHI, (double)target - 30));
	print_estimate("the fitted growth:", exp(a + b * (double)target));
	return 0;
}

static int cmd_values(int argc, char **argv)
{
	uint64_t n;
	char *out;
	long len;

	for (int i = 0; i < argc; i++) {
		if (parse_n(argv[i], FIB_FAST_LIMIT_N, &n))
			return 2;
		out = malloc(fib_digits_bound(n) + 2);
		if (!out)
			return 1;
		len = fib_decimal(FIB_FAST, n, out, fib_digits_bound(n) + 2);
		if (len < 0) {
			free(out);
			return 1;
		}
		printf("%.*s\n", (int)len, out);
		free(out);
	}
	return 0;
}

/* With --engine python: starts CPython now, so no timing includes it. */
static int python_ready(void)
{
	int err;

	if (engine != FIB_ENGINE_PYTHON)
		return 1;
	err = pyengine_init();
	if (err == -ENOSYS)
		log_msg("--engine python: this fib was built without the "
			"python engine (no libpython3-dev at build time)");
	return err == 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"time", no_argument, NULL, 't'},
	    {"estimate", required_argument, NULL, 'e'},
	    {"engine", required_argument, NULL, 'E'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c, timing = 0;

	log_set_prog("fib");
	while ((c = getopt_long(argc, argv, "te:hV", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			timing = 1;
			break;
		case 'e':
			return python_ready() ? cmd_estimate(optarg) : 2;
		case 'E':
			if (fib_engine_parse(optarg, &engine)) {
				log_msg("--engine: '%s' is not c or python",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("fib %s\n", FIBD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	if (timing)
		return python_ready() ? cmd_time(argc - optind, argv + optind)
				      : 2;
	return cmd_values(argc - optind, argv + optind);
}
