/*
 * fib - compute and time Fibonacci numbers locally: the talk's opening demo.
 *
 *   fib N...               fib(N), exact, for each N
 *   fib --time N...        naive fib(N) with its time and growth per row;
 *                          refuses a run it estimates at over a minute
 *                          unless --force
 *   fib --estimate N       how long naive fib(N) would take: from this
 *                          machine's times fitted, from phi per step, and
 *                          by the talk's rule of thumb, side by side
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
/* fib --time runs what it estimates at up to this long without --force. */
#define TIME_LIMIT_NS 60e9
/* The n whose time here calibrates fib --time's estimate. */
#define CALIBRATE_N 25

/* --engine: who runs the naive fib that --time and --estimate time. */
static enum fib_engine engine = FIB_ENGINE_C;

static void usage(FILE *f)
{
	/* clang-format off */
	fprintf(f,
"usage: fib N...              print fib(N) for each N (exact, N <= %d)\n"
"       fib --time [--force] N...\n"
"                             time naive fib(N); show the growth per row.\n"
"                             A run estimated at over a minute is refused\n"
"                             (the estimate is printed) unless --force\n"
"       fib --estimate N      how long naive fib(N) would take: from the\n"
"                             times measured here, from phi per step, and\n"
"                             by the talk's rule (x1000 every 10 steps)\n"
"       fib -e python --time | --estimate ...\n"
"                             the same, timing the talk's Python fib in\n"
"                             the embedded CPython (-e, --engine: c or\n"
"                             python, as in fibd)\n"
"       fib -h | --help | -V | --version\n"
"Exit status: 0, 1 when a computation failed, 2 for a usage error or a\n"
"--time run refused as too long.\n",
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

/* "0.98 s", "52.3 minutes", "3.1 days", "4.2e+05 years". */
static void print_span(double ns)
{
	double s = ns / 1e9;

	if (s < 120)
		printf("%.3g s", s);
	else if (s < 7200)
		printf("%.3g minutes", s / 60);
	else if (s < 2 * 86400)
		printf("%.3g hours", s / 3600);
	else if (s < 2 * 365.25 * 86400)
		printf("%.3g days", s / 86400);
	else
		printf("%.3g years", s / (365.25 * 86400));
}

/*
 * What fib --time N... would take: fib(CALIBRATE_N) timed here, times phi
 * per step beyond, each row at least the TIME_MIN_NS of repetition (and at
 * most twice that for rows that repeat). Refuses (2) when over a minute.
 */
static int time_check(int argc, char **argv, const uint64_t *ns_of)
{
	double unit, total = 0, row, worst = 0;
	uint64_t value;
	int at = 0;

	unit = time_naive(CALIBRATE_N, &value);
	for (int i = 0; i < argc; i++) {
		row = unit * pow(PHI, (double)ns_of[i] - CALIBRATE_N);
		total += row < TIME_MIN_NS ? 2 * TIME_MIN_NS : row;
		if (row > worst) {
			worst = row;
			at = i;
		}
	}
	if (total <= TIME_LIMIT_NS)
		return 0;
	printf("fib --time: this run would take about ");
	print_span(total);
	if (argc > 1) {
		printf(", naive fib(%s) alone about ", argv[at]);
		print_span(worst);
	}
	printf(".\n(estimated from naive fib(%d) timed here at %.3g us, times "
	       "phi = %.3f for every step beyond it)\n"
	       "Give --force to run it all the same, or see fib --estimate "
	       "%s.\n",
	       CALIBRATE_N, unit / 1e3, PHI, argv[at]);
	return 2;
}

static int cmd_time(int argc, char **argv, int force)
{
	double prev_ns = 0;
	uint64_t prev_n = 0, n, value, *ns_of = calloc((size_t)argc, 8);
	int err;

	if (!ns_of)
		return 1;
	for (int i = 0; i < argc; i++) {
		if (parse_n(argv[i], FIB_U64_MAX_N, &ns_of[i])) {
			free(ns_of);
			return 2;
		}
	}
	err = force ? 0 : time_check(argc, argv, ns_of);
	if (err) {
		free(ns_of);
		return err;
	}
	printf("%4s %22s %13s %10s %9s\n", "n", "fib(n)", "naive time",
	       "x prev", "per step");
	for (int i = 0; i < argc; i++) {
		double ns;

		n = ns_of[i];
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
	free(ns_of);
	return 0;
}

/* One row of fib --estimate: the time, then what the estimate assumes. */
static void print_estimate(const char *how, double ns, const char *why)
{
	double days = ns / 1e9 / 86400;

	printf("  %-22s %9.3g s = %9.3g days = %9.3g years\n", how, ns / 1e9,
	       days, days / 365.25);
	printf("  %-22s %s\n", "", why);
}

/* The talk's rule of thumb: x1000 every 10 steps, fib(10) at 1 ms. */
static double talk_rule_ns(double n)
{
	return 1e6 * pow(1000.0, (n - 10) / 10);
}

/*
 * Naive fib(target)'s time three ways, from n = 20..30 measured here: the
 * growth fitted by least squares on log(time); fib(30)'s time with phi
 * per step; and the talk's rule. Doubles all the way: fib(1000) by the
 * talk's rule is 1e300 ns, still short of overflow.
 */
static int cmd_estimate(const char *arg)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, a, b, t30 = 0, nt;
	uint64_t target, value;
	char why[256];
	int k = 0;

	if (parse_n(arg, 1000, &target)) /* phi^1000 is about 1e209 */
		return 2;
	nt = (double)target;
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
	printf("naive fib(%llu) would take about:\n",
	       (unsigned long long)target);
	snprintf(why, sizeof(why),
		 "assumes the growth per step measured here for n = 20..30 "
		 "(%.4f) holds all the way",
		 exp(b));
	print_estimate("measured growth:", exp(a + b * nt), why);
	snprintf(why, sizeof(why),
		 "assumes fib(30)'s time here (%.3g ms) grows by phi = %.4f "
		 "per step, as the number of calls does",
		 t30 / 1e6, PHI);
	print_estimate("phi per step:", t30 * pow(PHI, nt - 30), why);
	print_estimate("the talk's rule:", talk_rule_ns(nt),
		       "assumes x1000 every 10 steps (fib(1) 1 us, fib(10) "
		       "1 ms, fib(20) 1 s, fib(30) 1000 s), a memorable round "
		       "number");
	printf(
	    "Every 10 steps really cost phi^10 = %.0f times more, not 1000:\n"
	    "started from the same fib(1), the talk's rule grows %.3g times "
	    "too fast by fib(%llu).\n",
	    pow(PHI, 10), pow(1000 / pow(PHI, 10), (nt - 1) / 10),
	    (unsigned long long)target);
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

/* -e/--engine, as in fibd. 0 or -1. */
static int parse_engine(const char *arg)
{
	if (!fib_engine_parse(arg, &engine))
		return 0;
	log_msg("-e/--engine: '%s' is not c or python%s", arg,
		arg[0] >= '0' && arg[0] <= '9'
		    ? " (-e is the engine, as in fibd; --estimate N estimates)"
		    : "");
	return -1;
}

enum {
	OPT_TIME = 256,
	OPT_FORCE,
	OPT_ESTIMATE
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"time", no_argument, NULL, OPT_TIME},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {"estimate", required_argument, NULL, OPT_ESTIMATE},
	    {"engine", required_argument, NULL, 'e'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *estimate = NULL;
	int c, timing = 0, force = 0;

	log_set_prog("fib");
	while ((c = getopt_long(argc, argv, "e:hVt", opts, NULL)) != -1) {
		switch (c) {
		case OPT_TIME:
			timing = 1;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		case OPT_ESTIMATE:
			estimate = optarg;
			break;
		case 'e':
			if (parse_engine(optarg))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("fib %s\n", FIBD_VERSION);
			return 0;
		case 't':
			log_msg("-t: the timing is --time (-t is fibload's "
				"--threads)");
			return 2;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (estimate)
		return python_ready() ? cmd_estimate(estimate) : 2;
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	if (timing)
		return python_ready()
			   ? cmd_time(argc - optind, argv + optind, force)
			   : 2;
	return cmd_values(argc - optind, argv + optind);
}
