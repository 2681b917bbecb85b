/*
 * shared - the state of one run that every load thread reads: the options,
 * the request table, the servers' addresses, the measured window, and the
 * few counters the threads share. Set up by the run before the threads
 * start; after that only the atomic fields (and the gate, under its lock)
 * change.
 */
#ifndef FIBLOAD_SHARED_H
#define FIBLOAD_SHARED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

struct fl_shared {
	const struct fl_config *cfg;
	const struct fl_work *work;
	struct sockaddr_storage addr[FL_MAX_PORTS]; /* one per --port entry */
	socklen_t addr_len;
	uint64_t t0;	      /* CLOCK_MONOTONIC ns when the load starts */
	uint64_t warm_end;    /* t0 + warm-up: the measured window opens */
	uint64_t end;	      /* -d: the window closes; UINT64_MAX with -r */
	atomic_llong tickets; /* -r: measured requests still to be sent */
	atomic_int abort;     /* nothing connected: workers leave at once */
	atomic_int first_err; /* first connect errno (negative), for messages */
	int stop_fd; /* eventfd: readable once a signal stops the run */
	int done_fd; /* eventfd: each worker adds 1 when it leaves */
	/* The start gate: workers check in once connected, then wait. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	unsigned gate_ready; /* workers checked in */
	int gate_open;	     /* t0 is set (or abort): go */
};

/* -r: takes up to want send tickets. Returns how many were granted. */
unsigned fl_claim(struct fl_shared *sh, unsigned want);

#endif
