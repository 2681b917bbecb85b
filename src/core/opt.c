#include "opt.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "log.h"

int opt_uint(const char *opt, const char *arg, uint64_t min, uint64_t max,
	     uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)arg[0]))
		goto out_bad;
	v = strtoull(arg, &end, 10);
	if (errno || *end)
		goto out_bad;
	if (v < min || v > max) {
		log_msg("%s: %s is out of range [%" PRIu64 ", %" PRIu64 "]",
			opt, arg, min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;

out_bad:
	log_msg("%s: '%s' is not a whole number", opt, arg);
	return -EINVAL;
}

int opt_double(const char *opt, const char *arg, double min, double max,
	       double *out)
{
	double v;
	char *end;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || isnan(v)) {
		log_msg("%s: '%s' is not a number", opt, arg);
		return -EINVAL;
	}
	if (v < min || v > max) {
		log_msg("%s: %s is out of range [%g, %g]", opt, arg, min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}
