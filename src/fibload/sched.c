/* sched - intended send times for the open loop (see sched.h). */
#include "sched.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static const char *const fl_arrivals_names[] = {
    [FL_ARRIVALS_UNIFORM] = "uniform",
    [FL_ARRIVALS_POISSON] = "poisson",
};

const char *fl_arrivals_name(enum fl_arrivals a)
{
	return fl_arrivals_names[a];
}

int fl_arrivals_parse(const char *s, enum fl_arrivals *a)
{
	for (unsigned i = 0; i < 2; i++) {
		if (!strcmp(s, fl_arrivals_names[i])) {
			*a = (enum fl_arrivals)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* splitmix64: one 64-bit state, every seed (0 included) is good. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* An exponential gap with mean s->gap_ns: -ln(U) for U in (0, 1]. */
static double sched_exp_gap(struct fl_sched *s)
{
	double u = (double)((splitmix64(&s->rng) >> 11) + 1) * 0x1p-53;

	return -log(u) * s->gap_ns;
}

void fl_sched_init(struct fl_sched *s, enum fl_arrivals kind, double rate,
		   unsigned conns, unsigned idx, uint64_t seed)
{
	double period = 1e9 / rate;

	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->gap_ns = period * conns;
	s->first = period * idx;
	/* a stream per connection: the seed and the index, mixed */
	s->rng = seed ^ (0xd1b54a32d192ed03ull * ((uint64_t)idx + 1));
	if (kind == FL_ARRIVALS_POISSON)
		s->due = sched_exp_gap(s);
}

uint64_t fl_sched_due(const struct fl_sched *s)
{
	/* uniform: from seq, so that no rounding error builds up */
	if (s->kind == FL_ARRIVALS_UNIFORM)
		return (uint64_t)(s->first + (double)s->seq * s->gap_ns);
	return (uint64_t)s->due;
}

void fl_sched_advance(struct fl_sched *s)
{
	s->seq++;
	if (s->kind == FL_ARRIVALS_POISSON)
		s->due += sched_exp_gap(s);
}
