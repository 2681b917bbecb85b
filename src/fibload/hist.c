/*
 * The HdrHistogram layout (Gil Tene's), with the unit fixed at 1:
 *
 *   bucket 0 covers [0, 2S) with S sub-buckets of width 1, where 2S is
 *   2 * 10^sigfigs rounded up to a power of two;
 *   bucket b > 0 covers [S << b, S << (b + 1)) with S sub-buckets of width
 *   2^b (its lower half would repeat bucket b - 1, so it is not stored).
 *
 * counts[] is laid out bucket after bucket, S slots each (2S for bucket 0).
 */
#include "hist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct hist {
	uint64_t highest;  /* the largest value stored exactly */
	int sigfigs;	   /* significant decimal digits */
	int half_mag;	   /* log2(S): S = sub-buckets stored per bucket */
	uint64_t sub_mask; /* 2S - 1 */
	int bucket_count;  /* buckets needed to reach highest */
	size_t counts_len; /* slots in counts[] */
	uint64_t total;	   /* values recorded */
	uint64_t clamped;  /* values above highest, recorded as highest */
	uint64_t sum;	   /* sum of the exact values (for the mean) */
	uint64_t min, max; /* exact extremes */
	uint64_t counts[]; /* one count per sub-bucket */
};

struct hist *hist_new(uint64_t highest, int sigfigs)
{
	uint64_t largest = 2, reach;
	int sub_mag = 0, buckets = 1;
	struct hist *h;
	size_t len;

	if (sigfigs < 1 || sigfigs > 5)
		return NULL;
	for (int i = 0; i < sigfigs; i++)
		largest *= 10;
	while ((1ull << sub_mag) < largest)
		sub_mag++;
	if (highest < (1ull << sub_mag) || highest > (UINT64_MAX >> 2))
		return NULL;
	/* Each bucket doubles the reach; stop once highest is covered. */
	for (reach = 1ull << sub_mag; reach <= highest; reach <<= 1)
		buckets++;
	len = (size_t)(buckets + 1) << (sub_mag - 1);
	h = calloc(1, sizeof(*h) + len * sizeof(h->counts[0]));
	if (!h)
		return NULL;
	h->highest = highest;
	h->sigfigs = sigfigs;
	h->half_mag = sub_mag - 1;
	h->sub_mask = (1ull << sub_mag) - 1;
	h->bucket_count = buckets;
	h->counts_len = len;
	h->min = UINT64_MAX;
	return h;
}

void hist_free(struct hist *h)
{
	free(h);
}

/* The slot of v: its bucket from the position of its top bit, then the
 * sub-bucket from the bits just below it. */
static size_t hist_index(const struct hist *h, uint64_t v)
{
	int bucket = 63 - __builtin_clzll(v | h->sub_mask) - h->half_mag;
	uint64_t sub = v >> bucket;

	return ((size_t)bucket << h->half_mag) + (size_t)sub;
}

/* The lowest value of slot i, and the width of its sub-bucket. */
static uint64_t hist_slot_low(const struct hist *h, size_t i, uint64_t *width)
{
	size_t half = (size_t)1 << h->half_mag;
	int bucket = (int)(i >> h->half_mag) - 1;
	uint64_t sub = (i & (half - 1)) + half;

	if (bucket < 0) {
		sub -= half;
		bucket = 0;
	}
	*width = 1ull << bucket;
	return sub << bucket;
}

void hist_record(struct hist *h, uint64_t v)
{
	uint64_t slot_v = v;

	if (v > h->highest) {
		slot_v = h->highest;
		h->clamped++;
	}
	h->counts[hist_index(h, slot_v)]++;
	h->total++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

int hist_merge(struct hist *dst, const struct hist *src)
{
	if (dst->highest != src->highest || dst->sigfigs != src->sigfigs)
		return -EINVAL;
	if (!src->total)
		return 0;
	for (size_t i = 0; i < dst->counts_len; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->clamped += src->clamped;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	return 0;
}

void hist_reset(struct hist *h)
{
	if (!h->total)
		return;
	memset(h->counts, 0, h->counts_len * sizeof(h->counts[0]));
	h->total = h->clamped = h->sum = h->max = 0;
	h->min = UINT64_MAX;
}

uint64_t hist_count(const struct hist *h)
{
	return h->total;
}

uint64_t hist_clamped(const struct hist *h)
{
	return h->clamped;
}

/* ceil(p% of total) in [1, total], in integers so 99.9% of 1000 is 999. */
static uint64_t hist_rank(const struct hist *h, double p)
{
	unsigned __int128 ppm;
	uint64_t rank;

	if (p < 0 || isnan(p))
		p = 0;
	if (p > 100)
		p = 100;
	ppm = (unsigned __int128)llround(p * 10000.0);
	rank = (uint64_t)((ppm * h->total + 999999) / 1000000);
	return rank ? rank : 1;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0, width, top;

	if (!h->total)
		return 0;
	rank = hist_rank(h, p);
	for (size_t i = 0; i < h->counts_len; i++) {
		seen += h->counts[i];
		if (seen < rank)
			continue;
		top = hist_slot_low(h, i, &width) + width - 1;
		return top < h->max ? top : h->max;
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->total ? (double)h->sum / (double)h->total : 0.0;
}

double hist_stddev(const struct hist *h)
{
	double mean = hist_mean(h), d, sq = 0;
	uint64_t width;

	if (h->total < 2)
		return 0.0;
	for (size_t i = 0; i < h->counts_len; i++) {
		if (!h->counts[i])
			continue;
		d = (double)hist_slot_low(h, i, &width) +
		    (double)(width - 1) / 2 - mean;
		sq += d * d * (double)h->counts[i];
	}
	return sqrt(sq / (double)h->total);
}

uint64_t hist_min(const struct hist *h)
{
	return h->total ? h->min : 0;
}

uint64_t hist_max(const struct hist *h)
{
	return h->max;
}

size_t hist_bytes(const struct hist *h)
{
	return sizeof(*h) + h->counts_len * sizeof(h->counts[0]);
}

uint64_t hist_highest(const struct hist *h)
{
	return h->highest;
}

int hist_sigfigs(const struct hist *h)
{
	return h->sigfigs;
}

uint64_t hist_sum(const struct hist *h)
{
	return h->sum;
}

int hist_bucket(const struct hist *h, size_t *pos, uint64_t *low,
		uint64_t *count)
{
	uint64_t width;

	for (size_t i = *pos; i < h->counts_len; i++) {
		if (!h->counts[i])
			continue;
		*low = hist_slot_low(h, i, &width);
		*count = h->counts[i];
		*pos = i + 1;
		return 1;
	}
	*pos = h->counts_len;
	return 0;
}

int hist_add_bucket(struct hist *h, uint64_t low, uint64_t count)
{
	uint64_t width;
	size_t i;

	/* The slot of highest is the last one a value can land in. */
	if (low > h->highest || count > UINT64_MAX - h->total)
		return -EINVAL;
	i = hist_index(h, low);
	if (hist_slot_low(h, i, &width) != low)
		return -EINVAL;
	h->counts[i] += count;
	h->total += count;
	return 0;
}

/* The slot a value lands in (clamped at highest, as hist_record does). */
static size_t hist_slot_of(const struct hist *h, uint64_t v)
{
	return hist_index(h, v > h->highest ? h->highest : v);
}

int hist_restore(struct hist *h, uint64_t clamped, uint64_t sum, uint64_t min,
		 uint64_t max)
{
	size_t first = 0, last = h->counts_len - 1;
	unsigned __int128 lo_sum, hi_sum;

	if (!h->total)
		return clamped || sum || min || max ? -EINVAL : 0;
	while (!h->counts[first])
		first++;
	while (!h->counts[last])
		last--;
	/* min and max are in the outermost non-empty slots; values above
	 * the range (and only they) are clamped into highest's slot. */
	if (min > max || hist_slot_of(h, min) != first ||
	    hist_slot_of(h, max) != last || (max > h->highest) != !!clamped ||
	    (min > h->highest && clamped != h->total) ||
	    clamped > h->counts[hist_slot_of(h, h->highest)])
		return -EINVAL;
	lo_sum = (unsigned __int128)min * h->total;
	hi_sum = (unsigned __int128)max * h->total;
	if (sum < lo_sum || sum > hi_sum)
		return -EINVAL;
	h->clamped = clamped;
	h->sum = sum;
	h->min = min;
	h->max = max;
	return 0;
}
