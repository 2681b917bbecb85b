/*
 * tcoro - what the coroutine runtime's tests share: checks made inside
 * coroutines (t_check() counts in plain ints and is not thread-safe, so
 * coroutines on worker threads count failures in an atomic that the test
 * thread checks at the end), and a runtime that must start.
 */
#ifndef FIBD_TESTS_TCORO_H
#define FIBD_TESTS_TCORO_H

#include <stdatomic.h>
#include <stdio.h>

#include "coro/coro.h"

extern _Atomic int tcoro_failed;

#define CO_CHECK(cond)                                                         \
	do {                                                                   \
		if (!(cond)) {                                                 \
			atomic_fetch_add(&tcoro_failed, 1);                    \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,          \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

/*
 * Checks that no CO_CHECK failed, then (under ASan) that nothing leaked:
 * T_RUN's children _exit(), so LSan would not look on its own.
 */
void tcoro_check_clean(void);

/* A runtime with this many workers; exits the test child if none. */
struct coro_rt *tcoro_rt_new(unsigned workers);

#endif
