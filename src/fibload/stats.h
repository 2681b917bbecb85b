/*
 * stats - what one load thread measured: error counts by kind, the
 * server's first distinct "ERR ..." texts, latency histograms, and the
 * once-a-second progress figures. Each thread records into its own; the run
 * adds them up after joining the threads. Only the progress hand-over (pub_*)
 * is read by another thread while the load runs, under pub_lock.
 */
#ifndef FIBLOAD_STATS_H
#define FIBLOAD_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hist.h"

/* Error kinds, counted separately. */
enum fl_err {
	FL_ERR_CONNECT,	 /* connect() failed or took longer than --timeout */
	FL_ERR_READ,	 /* read failed, or the server closed the connection */
	FL_ERR_WRITE,	 /* write failed */
	FL_ERR_TIMEOUT,	 /* a request got no reply within --timeout */
	FL_ERR_PROTOCOL, /* a reply that is not a reply (or none was asked) */
	FL_ERR_WRONG, /* a reply that is not the true value ("ERR ..." too) */
	FL_ERR_KINDS
};

/* "connect", "read", ... */
const char *fl_err_name(enum fl_err kind);

#define FL_ERRTEXTS    4  /* distinct "ERR ..." texts kept */
#define FL_ERRTEXT_MAX 96 /* bytes kept of each (longer ones are cut) */

/* The server's "ERR ..." replies: the first few distinct texts with their
 * counts, and how many more there were with other texts. */
struct fl_errtexts {
	struct {
		char text[FL_ERRTEXT_MAX];
		size_t len;
		uint64_t count;
	} e[FL_ERRTEXTS];
	unsigned n;
	uint64_t other;
};

/* Counts count replies of text[0..len) (cut to FL_ERRTEXT_MAX). */
void fl_errtexts_add(struct fl_errtexts *t, const char *text, size_t len,
		     uint64_t count);

/* Adds src's texts and counts to dst. */
void fl_errtexts_merge(struct fl_errtexts *dst, const struct fl_errtexts *src);

struct fl_stats {
	uint64_t requests;	       /* measured correct replies */
	uint64_t errors[FL_ERR_KINDS]; /* every error, warm-up included */
	struct fl_errtexts errtexts;   /* "ERR ..." replies, warm-up included */
	struct hist *lat;	       /* latency (from intended send) */
	struct hist *raw;	       /* --rate: latency from actual send */
	uint64_t ticketed;	       /* -n: measured requests in flight */
	uint64_t last_done;	       /* -n: when the last one was settled */

	/* --progress: this second's figures, handed over once a second. */
	uint64_t t0;	  /* the run's t0, once the load starts */
	struct hist *sec; /* NULL without --progress */
	uint64_t sec_requests;
	uint64_t sec_end;	  /* when the current second ends */
	pthread_mutex_t pub_lock; /* guards pub and pub_requests */
	struct hist *pub;	  /* seconds handed over, not yet printed */
	uint64_t pub_requests;
	atomic_uint pub_sec; /* seconds handed over so far */
};

/* Allocates the histograms: raw with open, sec and pub with progress.
 * 0 or -ENOMEM; release in every case. */
int fl_stats_init(struct fl_stats *st, int open, int progress);
void fl_stats_release(struct fl_stats *st);

/* Counts n errors of a kind. */
static inline void fl_stats_count(struct fl_stats *st, enum fl_err kind,
				  uint64_t n)
{
	st->errors[kind] += n;
}

/* A good reply done at now: latency lat (from intended send) and raw
 * (from actual send); measured says whether it counts in the result. */
void fl_stats_reply(struct fl_stats *st, int measured, uint64_t lat,
		    uint64_t raw, uint64_t now);

/* --progress: hands the last second over when now is past it. */
void fl_stats_tick(struct fl_stats *st, uint64_t now);

/* --progress: hands what is recorded over now (at the end). */
void fl_stats_publish(struct fl_stats *st);

#endif
