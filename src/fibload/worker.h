/*
 * worker - one load thread: an epoll loop over its share of the
 * connections. It connects them, waits at the run's gate for the start,
 * then loops: replies in, requests out, and between events the timers
 * (timeouts and reconnects, the --rate schedule, the end of the window,
 * the progress second). It records into its own stats, which the run adds
 * up after joining the thread.
 */
#ifndef FIBLOAD_WORKER_H
#define FIBLOAD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "conn.h"
#include "shared.h"
#include "stats.h"

struct fl_worker {
	pthread_t tid;
	struct fl_conn_ctx ctx; /* lent to the connections */
	struct fl_stats st;	/* what this thread measured */
	struct fl_conn *conns;	/* this worker's connections */
	unsigned nconns;
	unsigned connected;  /* connections up when the load started */
	int stopping;	     /* a signal asked the run to stop */
	uint64_t stop_ns;    /* when the loop ended */
	atomic_int finished; /* the loop has ended */
};

/* Allocates w's connections nconns from global index first_conn on, and
 * its buffers. Returns 0 or -errno; release in every case. */
int fl_worker_init(struct fl_worker *w, struct fl_shared *sh,
		   unsigned first_conn, unsigned nconns);
void fl_worker_release(struct fl_worker *w);

/* The thread body (pthread_create's start routine; arg is the worker). */
void *fl_worker_main(void *arg);

#endif
