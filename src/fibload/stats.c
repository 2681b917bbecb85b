/* stats - one load thread's counts and histograms (see stats.h). */
#include "stats.h"

#include <errno.h>
#include <string.h>

#include "clock.h"

static const char *const fl_err_names[FL_ERR_KINDS] = {
    "connect", "read", "write", "timeout", "protocol", "wrong",
};

const char *fl_err_name(enum fl_err kind)
{
	return fl_err_names[kind];
}

void fl_errtexts_add(struct fl_errtexts *t, const char *text, size_t len,
		     uint64_t count)
{
	if (len > FL_ERRTEXT_MAX)
		len = FL_ERRTEXT_MAX;
	for (unsigned i = 0; i < t->n; i++) {
		if (t->e[i].len == len && !memcmp(t->e[i].text, text, len)) {
			t->e[i].count += count;
			return;
		}
	}
	if (t->n == FL_ERRTEXTS) {
		t->other += count;
		return;
	}
	memcpy(t->e[t->n].text, text, len);
	t->e[t->n].len = len;
	t->e[t->n].count = count;
	t->n++;
}

void fl_errtexts_merge(struct fl_errtexts *dst, const struct fl_errtexts *src)
{
	for (unsigned i = 0; i < src->n; i++)
		fl_errtexts_add(dst, src->e[i].text, src->e[i].len,
				src->e[i].count);
	dst->other += src->other;
}

int fl_stats_init(struct fl_stats *st, int open, int progress)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->pub_lock, NULL);
	st->lat = hist_new(HIST_HOUR_NS, 3);
	if (!st->lat)
		return -ENOMEM;
	if (open && !(st->raw = hist_new(HIST_HOUR_NS, 3)))
		return -ENOMEM;
	if (progress) {
		st->sec = hist_new(HIST_HOUR_NS, 3);
		st->pub = hist_new(HIST_HOUR_NS, 3);
		if (!st->sec || !st->pub)
			return -ENOMEM;
	}
	return 0;
}

void fl_stats_release(struct fl_stats *st)
{
	hist_free(st->lat);
	hist_free(st->raw);
	hist_free(st->sec);
	hist_free(st->pub);
	st->lat = st->raw = st->sec = st->pub = NULL;
	pthread_mutex_destroy(&st->pub_lock);
}

void fl_stats_publish(struct fl_stats *st)
{
	pthread_mutex_lock(&st->pub_lock);
	hist_merge(st->pub, st->sec);
	st->pub_requests += st->sec_requests;
	pthread_mutex_unlock(&st->pub_lock);
	hist_reset(st->sec);
	st->sec_requests = 0;
}

void fl_stats_tick(struct fl_stats *st, uint64_t now)
{
	uint64_t k;

	if (!st->sec || now < st->sec_end)
		return;
	fl_stats_publish(st);
	k = (now - st->t0) / FL_SEC_NS;
	st->sec_end = st->t0 + (k + 1) * FL_SEC_NS;
	atomic_store(&st->pub_sec, (unsigned)k);
}

void fl_stats_reply(struct fl_stats *st, int measured, uint64_t lat,
		    uint64_t raw, uint64_t now)
{
	if (measured) {
		st->requests++;
		hist_record(st->lat, lat);
		if (st->raw)
			hist_record(st->raw, raw);
	}
	if (st->sec) {
		fl_stats_tick(st, now);
		hist_record(st->sec, lat);
		st->sec_requests++;
	}
}
