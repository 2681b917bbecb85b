/*
 * clock - the one clock every part of a run reads: CLOCK_MONOTONIC in
 * nanoseconds. A leaf: it depends on nothing else in fibload.
 */
#ifndef FIBLOAD_CLOCK_H
#define FIBLOAD_CLOCK_H

#include <stdint.h>

#define FL_MS_NS  1000000ull
#define FL_SEC_NS 1000000000ull

/* CLOCK_MONOTONIC in ns (vDSO: no system call). */
uint64_t fl_now(void);

#endif
