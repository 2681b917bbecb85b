/*
 * opt - argument checks shared by fibd, fib and fibload.
 *
 * Each parses one option argument whole (no trailing junk, no sign
 * surprises), and on failure logs "PROG: --option: why" and returns -EINVAL.
 */
#ifndef FIBD_CORE_OPT_H
#define FIBD_CORE_OPT_H

#include <stdint.h>

/* A decimal integer in [min, max]. */
int opt_uint(const char *opt, const char *arg, uint64_t min, uint64_t max,
	     uint64_t *out);

/* A decimal number (e.g. seconds: "2.5") in [min, max]. */
int opt_double(const char *opt, const char *arg, double min, double max,
	       double *out);

#endif
