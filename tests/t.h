/*
 * t - the smallest test harness that does the job.
 *
 * T_CHECK(cond, fmt, ...) records one assertion; a failure prints where and
 * why and the test goes on. T_RUN(fn) runs one test function in a forked
 * child with a timeout (libuv's way), so a crash or a hang fails that test
 * alone. t_done() prints "<binary>: N passed, N failed" and returns the exit
 * status; tests/run.sh adds those lines up.
 */
#ifndef FIBD_TESTS_T_H
#define FIBD_TESTS_T_H

#include <stdio.h>

extern int t_passed, t_failed;

void t_check(int ok, const char *file, int line, const char *expr,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define T_CHECK(cond, ...)                                                     \
	t_check(!!(cond), __FILE__, __LINE__, #cond, " " __VA_ARGS__)

/*
 * $T_SLOW (a whole number, default 1): every deadline the suite sets, from
 * t_run()'s to a client socket's receive timeout, is this many times
 * longer. tests/run.sh sets it when it runs more jobs than there are CPUs,
 * so a job given half a CPU gets twice the time; a deadline only says how
 * long to wait for a hang, never how fast anything must be.
 */
unsigned t_slow(void);

/* Runs fn in a child process with a timeout of secs * t_slow() seconds. */
void t_run(const char *name, void (*fn)(void), unsigned secs);
#define T_RUN(fn, secs) t_run(#fn, fn, secs)

/* Prints the summary line; returns the process exit status. */
int t_done(const char *suite);

#endif
