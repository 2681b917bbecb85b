/*
 * hist - a latency histogram in the HdrHistogram layout.
 *
 * Values are unsigned integers (fibload records nanoseconds). The value
 * range [0, highest] is cut into buckets that double in width; each bucket
 * holds the same number of linear sub-buckets, enough that any value is
 * stored with `sigfigs` significant decimal digits: a recorded value v is
 * reported as some value in [v, v + v / 10^sigfigs]. Values below
 * 2 * 10^sigfigs (rounded up to a power of two) are exact.
 *
 * Recording is O(1) (a count-leading-zeros and an increment) and never
 * allocates. Histograms of the same shape merge by adding counts, so each
 * thread records into its own and the results are merged at the end.
 *
 * With highest = 1 hour in ns and 3 significant digits a histogram is
 * about 270 KiB (hist_bytes()).
 *
 * Not thread-safe: one writer at a time, and no reader while it writes.
 */
#ifndef FIBLOAD_HIST_H
#define FIBLOAD_HIST_H

#include <stddef.h>
#include <stdint.h>

/* One hour in nanoseconds: fibload's histogram range. */
#define HIST_HOUR_NS (3600ull * 1000000000ull)

struct hist;

/*
 * A histogram for values in [0, highest] with sigfigs significant digits
 * (1..5). highest must be at least 2 * 10^sigfigs. Returns NULL on bad
 * arguments or when out of memory.
 */
struct hist *hist_new(uint64_t highest, int sigfigs);

/* Frees h; NULL is fine. */
void hist_free(struct hist *h);

/*
 * Records one value. Values above the range are counted as the highest
 * value (and counted in hist_clamped()); the exact max is still kept.
 */
void hist_record(struct hist *h, uint64_t v);

/*
 * Adds src's counts into dst. Returns 0, or -EINVAL when the two were made
 * with different highest/sigfigs.
 */
int hist_merge(struct hist *dst, const struct hist *src);

/* Forgets every value recorded. */
void hist_reset(struct hist *h);

/* Number of values recorded. */
uint64_t hist_count(const struct hist *h);

/* Number of values that were above the range and recorded as highest. */
uint64_t hist_clamped(const struct hist *h);

/*
 * The value at percentile p (0..100) by the nearest-rank rule: the smallest
 * recorded value v such that at least p% of the values are <= v, reported
 * as the top of its sub-bucket (never above the exact max). 0 when empty.
 */
uint64_t hist_percentile(const struct hist *h, double p);

/* Exact mean, min and max of the values recorded (0 when empty). */
double hist_mean(const struct hist *h);
uint64_t hist_min(const struct hist *h);
uint64_t hist_max(const struct hist *h);

/*
 * Standard deviation of the values recorded, each taken as the middle of
 * its sub-bucket (so within 10^-sigfigs of exact, relatively), about the
 * exact mean; 0 with fewer than two values.
 */
double hist_stddev(const struct hist *h);

/* Bytes one histogram occupies. */
size_t hist_bytes(const struct hist *h);

/*
 * Export and import, for files that carry a histogram exactly (fibload's
 * --hist-out; the text format itself lives in histfile.c).
 */

/* The shape hist_new() was given, and the exact sum of the values. */
uint64_t hist_highest(const struct hist *h);
int hist_sigfigs(const struct hist *h);
uint64_t hist_sum(const struct hist *h);

/*
 * Walks the non-empty sub-buckets in ascending order: start with
 * *pos = 0; each call that returns 1 sets *low (the lowest value the
 * sub-bucket holds) and *count, and advances *pos. Returns 0 at the end.
 */
int hist_bucket(const struct hist *h, size_t *pos, uint64_t *low,
		uint64_t *count);

/*
 * Adds count values to the sub-bucket whose lowest value is low (the
 * inverse of hist_bucket()). Returns 0, or -EINVAL when low is not the
 * lowest value of a sub-bucket in range, or the total would overflow.
 * The exact statistics are left for hist_restore().
 */
int hist_add_bucket(struct hist *h, uint64_t low, uint64_t count);

/*
 * Once every bucket is added: sets the exact statistics the buckets cannot
 * tell (values clamped, their sum, min and max). Returns 0, or -EINVAL
 * when they contradict the buckets (min or max outside the lowest or
 * highest non-empty sub-bucket, clamped values without a max above the
 * range, a sum outside [count * min, count * max], any of them on an
 * empty histogram).
 */
int hist_restore(struct hist *h, uint64_t clamped, uint64_t sum, uint64_t min,
		 uint64_t max);

#endif
