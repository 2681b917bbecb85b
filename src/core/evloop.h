/*
 * evloop - one epoll event loop serving fib/1 connections (src/core/evconn.h),
 * the engine of the event-driven models.
 *
 * The loop owns a non-blocking listener, the epoll set, the connections and
 * their timeouts (--idle-timeout; --header-timeout, from the first byte of
 * a request until it is whole; the polite close after an error), and the
 * connections it turns away while they wait for their first bytes. With
 * a worker pool, expensive requests go to it and the pipe of the loop's
 * own completion queue wakes the loop (reactor, whose loops share one
 * pool); without one every request is computed on the loop. A stop
 * (stop_eventfd()) closes the listener, shuts every connection's read side,
 * answers what was read, and ends evloop_run() once every connection is gone.
 *
 * Several loops may share one connection count (nopen) for --max-conns.
 */
#ifndef FIBD_CORE_EVLOOP_H
#define FIBD_CORE_EVLOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "evaccept.h"
#include "evconn.h"
#include "server.h"
#include "tpool.h"

#define EVLOOP_EVENTS	    64 /* epoll events taken per wake-up */
#define EVLOOP_ACCEPT_BATCH 64 /* accepts per listener wake-up: fairness */
/* At a stop, a client that does not read its replies gets this long. */
#define EVLOOP_STOP_GRACE_MS 5000

/* A connection turned away, waiting for its first bytes (evaccept.h). */
struct evloop_busy {
	int fd; /* -1: a free place */
	uint64_t deadline_ms;
};

struct evloop {
	const struct server_cfg *cfg;
	int ep;		     /* the epoll set */
	struct evaccept acc; /* the listener, lfd -1 once stopped */
	bool accept_paused;  /* out of descriptors: not watching it */
	uint64_t accept_resume_ms;
	struct tpool *pool;
	struct tpool_cq *cq; /* the pool's jobs come back here */
	struct evconn_cfg ecfg;
	struct evconn_tq idle;	 /* open connections, by last progress */
	struct evconn_tq header; /* part of a request in: --header-timeout */
	struct evconn_tq linger; /* closing politely, by start of linger */
	atomic_uint *nopen;	 /* connections with a socket: --max-conns */
	unsigned nlive;		 /* structs not yet freed, closed ones too */
	struct evconn *dead;	 /* to free after this batch, via tq_next */
	bool stopping;
	struct evloop_busy busy[EVACCEPT_BUSY_MAX]; /* refused, not answered */
	unsigned nbusy;				    /* busy[] places taken */
};

/*
 * Sets l up on listener lfd (non-blocking; the loop closes it). pool may be
 * NULL, and may be shared with other loops; workers (the pool's threads)
 * sizes the per-connection job cap. nopen is the connection
 * count shared by every loop of the server. Returns 0 or -errno (lfd is
 * then closed).
 */
int evloop_init(struct evloop *l, const struct server_cfg *cfg, int lfd,
		struct tpool *pool, unsigned workers, atomic_uint *nopen);

/* Serves until a stop has drained every connection. */
void evloop_run(struct evloop *l);

/* Frees what evloop_init() made (not the pool, not nopen). */
void evloop_destroy(struct evloop *l);

#endif
