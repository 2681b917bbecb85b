/*
 * sched - the open loop's (--rate) schedule of intended send times for one
 * connection. A leaf: pure arithmetic on a seeded PRNG, no clock, no I/O,
 * so a given seed always gives the same schedule.
 *
 * The run as a whole sends `rate` requests per second, spread over `conns`
 * connections:
 *  - uniform: request k of the run is due at k / rate; connection i of C
 *    sends requests i, i + C, i + 2C, ... (constant gaps of C / rate).
 *  - poisson: each connection is a Poisson process of rate / C (gaps drawn
 *    from the exponential distribution with mean C / rate); C independent
 *    ones add up to a Poisson process of the whole rate.
 * Times are ns after the run's t0.
 */
#ifndef FIBLOAD_SCHED_H
#define FIBLOAD_SCHED_H

#include <stdint.h>

enum fl_arrivals {
	FL_ARRIVALS_UNIFORM,
	FL_ARRIVALS_POISSON,
};

/* "uniform" or "poisson". */
const char *fl_arrivals_name(enum fl_arrivals a);

/* Parses a name into *a. 0 or -EINVAL. */
int fl_arrivals_parse(const char *s, enum fl_arrivals *a);

struct fl_sched {
	enum fl_arrivals kind;
	double gap_ns; /* the mean gap of this connection: C / rate */
	double first;  /* uniform: when this connection's first is due */
	uint64_t seq;  /* requests of this connection scheduled so far */
	double due;    /* poisson: when request seq is due */
	uint64_t rng;  /* poisson: splitmix64 state */
};

/* The schedule of connection idx of conns, rate requests/s in total,
 * draws seeded from seed (poisson). rate > 0, conns > idx. */
void fl_sched_init(struct fl_sched *s, enum fl_arrivals kind, double rate,
		   unsigned conns, unsigned idx, uint64_t seed);

/* When this connection's next request is due (ns after t0). */
uint64_t fl_sched_due(const struct fl_sched *s);

/* The next request was sent: moves on to the one after it. */
void fl_sched_advance(struct fl_sched *s);

#endif
