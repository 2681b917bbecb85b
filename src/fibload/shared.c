/* shared - the run's state every load thread reads (see shared.h). */
#include "shared.h"

unsigned fl_claim(struct fl_shared *sh, unsigned want)
{
	long long left =
	    atomic_load_explicit(&sh->tickets, memory_order_relaxed);
	long long take;

	while (left > 0) {
		take = left < (long long)want ? left : (long long)want;
		if (atomic_compare_exchange_weak(&sh->tickets, &left,
						 left - take))
			return (unsigned)take;
	}
	return 0;
}
