/*
 * tfaults - what the fault suites (test_faults: the clients' faults,
 * test_faults_server: the server's own) share. Every case runs against
 * every model fibd lists; after its fault a fresh client must still get
 * correct answers, and the server must exit 0 on SIGTERM.
 */
#ifndef FIBD_TESTS_TFAULTS_H
#define FIBD_TESTS_TFAULTS_H

#include <stddef.h>

#include "tsrv.h"

struct tfaults_case {
	const char *name;
	void (*fn)(void);
	unsigned secs; /* its timeout, as t_run() takes it */
};
#define TFAULTS_CASE(fn, secs)                                                 \
	{                                                                      \
#fn, fn, secs                                                  \
	}

/*
 * For each model fibd lists (only those in $FIBD_MODELS when it is set),
 * points *cur at it and runs each of cases[0..n) as TSRV_CASE() does;
 * $FIBD_FAULTS, when set, runs only the cases whose name contains it.
 * SIGPIPE is ignored. Returns t_done(suite).
 */
int tfaults_main(const char *suite, const struct tsrv_model **cur,
		 const struct tfaults_case *cases, size_t n);

/* A fresh client gets right answers from s (model m), then s stops cleanly. */
void tfaults_serves_then_stops(const struct tsrv_model *m, struct tsrv *s);

#endif
