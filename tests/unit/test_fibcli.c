/*
 * test_fibcli - the fib program as a person runs it: fib --time refuses a
 * run it estimates at over a minute (unless --force), fib --estimate
 * explains its three estimates, and the short flags mean what fibd's do.
 * Each run is capped at 20 s (coreutils timeout), so a fib that would run
 * for an hour fails the test instead of hanging it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../lib/tsrv.h"
#include "../t.h"

static char out[1 << 14];

/* Runs BUILD/fib ARGS (one string) with stderr into out. Returns the exit
 * status; 124 when the cap stopped it. */
static int fib(const char *args)
{
	char cmd[512];
	size_t n;
	FILE *p;
	int status;

	snprintf(cmd, sizeof(cmd), "timeout %u %s/fib %s 2>&1", 20 * t_slow(),
		 tsrv_build_dir(), args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	status = pclose(p);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "--- fib %s:\n%s", args, out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* fib(60) takes the better part of an hour: refused, with the estimate. */
static void test_time_refuses_long(void)
{
	T_CHECK(fib("--time 60") == 2, "%s", out);
	T_CHECK(strstr(out, "would take about") && strstr(out, "--force"), "%s",
		out);
	T_CHECK(!strstr(out, "fib(n)"), "no row may be timed: %s", out);
	T_CHECK(fib("--time 10 20 70") == 2, "%s", out);
	T_CHECK(strstr(out, "naive fib(70) alone about"), "%s", out);
}

/* Short runs run as before, the row format unchanged (bench/run reads
 * it); --force is accepted. */
static void test_time_short(void)
{
	T_CHECK(fib("--time 1 20") == 0, "%s", out);
	T_CHECK(strstr(out, "\n  20                   6765 "), "%s", out);
	T_CHECK(!strstr(out, "would take"), "%s", out);
	T_CHECK(fib("--time --force 10") == 0, "%s", out);
	T_CHECK(strstr(out, "\n  10                     55 "), "%s", out);
}

/* Three estimates, each with what it assumes, and the talk's rule set
 * against phi^10 = 123. */
static void test_estimate_explains(void)
{
	T_CHECK(fib("--estimate 100") == 0, "%s", out);
	T_CHECK(strstr(out, "measured growth:") &&
		    strstr(out, "assumes the growth per step measured here"),
		"%s", out);
	T_CHECK(strstr(out, "phi per step:") &&
		    strstr(out, "grows by phi = 1.6180"),
		"%s", out);
	/* 1 us x 1000^10 = 1e24 s: the talk's ~1e19 days for fib(100) */
	T_CHECK(strstr(out, "the talk's rule:") && strstr(out, "1.16e+19 days"),
		"%s", out);
	T_CHECK(strstr(out, "x1000 every 10 steps"), "%s", out);
	T_CHECK(strstr(out, "phi^10 = 123 times"), "%s", out);
}

/* -e is the engine (fibd's -e); -t is not fib's (fibload's threads). */
static void test_short_flags(void)
{
	T_CHECK(fib("-e c 10") == 0 && !strcmp(out, "55\n"), "%s", out);
	T_CHECK(fib("-e 100") == 2, "%s", out);
	T_CHECK(strstr(out, "--estimate"), "%s", out);
	T_CHECK(fib("-t 10") == 2, "%s", out);
	T_CHECK(strstr(out, "--time"), "%s", out);
	T_CHECK(fib("-h") == 0 && strstr(out, "usage: fib"), "%s", out);
	T_CHECK(fib("-V") == 0 && !strncmp(out, "fib ", 4), "%s", out);
}

int main(void)
{
	T_RUN(test_time_refuses_long, 60);
	T_RUN(test_time_short, 60);
	T_RUN(test_estimate_explains, 60);
	T_RUN(test_short_flags, 30);
	return t_done("test_fibcli");
}
