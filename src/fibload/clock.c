/* clock - CLOCK_MONOTONIC in ns (see clock.h). */
#include "clock.h"

#include <time.h>

uint64_t fl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * FL_SEC_NS + (uint64_t)ts.tv_nsec;
}
