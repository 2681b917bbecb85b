/*
 * uloop - one io_uring serving fib/1 connections (src/core/uconn.h), the
 * engine of the uring model: evloop's job, with completions instead of
 * readiness.
 *
 * The loop owns the ring, a provided-buffer ring of ULOOP_BUFS buffers of
 * ULOOP_BUF_SIZE bytes that every connection's multishot recv picks from, a
 * non-blocking listener with its multishot accept, a poll on
 * stop_eventfd(), and with a pool a multishot poll on its completion queue.
 * Each turn it submits what the last turn queued, waits for a completion or the
 * nearest deadline (--idle-timeout, --header-timeout, the polite close after
 * an error, the accept back-off, a refused connection's wait for its first
 * bytes) in the same io_uring_enter(), and dispatches every completion. A
 * stop cancels the accept, closes the listener, shuts every connection's read
 * side, answers what was read, and ends uloop_run() once every connection is
 * gone.
 */
#ifndef FIBD_CORE_ULOOP_H
#define FIBD_CORE_ULOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "evaccept.h"
#include "server.h"
#include "tpool.h"
#include "uconn.h"

#define ULOOP_SQ_ENTRIES 256
#define ULOOP_CQ_ENTRIES 4096
#define ULOOP_BUFS	 256  /* provided buffers per ring: a power of 2 */
#define ULOOP_BUF_SIZE	 4096 /* bytes each: 1 MiB per ring */
#define ULOOP_SHED_BATCH 64   /* backlog shed per failed accept */
/* At a stop, a client that does not read its replies gets this long. */
#define ULOOP_STOP_GRACE_MS 5000

/* A connection turned away, its poll waiting for its first bytes. */
struct uloop_busy {
	int fd;		 /* -1: a free place */
	bool cancelling; /* its time is up: the poll's cancel is queued */
	uint64_t deadline_ms;
};

struct uloop {
	struct uconn_ring ur; /* the ring, and what connections share */
	const struct server_cfg *cfg;
	struct evaccept acc;	      /* the listener, lfd -1 once stopped */
	bool accepting;		      /* the multishot accept is in flight */
	uint64_t accept_resume;	      /* out of descriptors: re-arm at (ms) */
	bool disabled;		      /* created IORING_SETUP_R_DISABLED */
	struct tpool_cq *cq;	      /* the pool's jobs come back here */
	bool polling_pool;	      /* the multishot poll on cq is armed */
	struct io_uring_buf_ring *br; /* the provided-buffer ring */
	char *bufs;		      /* its ULOOP_BUFS buffers */
	struct uloop_busy busy[EVACCEPT_BUSY_MAX]; /* refused, polled */
	unsigned nbusy;				   /* of which in use */
};

/*
 * Sets l up on listener lfd (non-blocking; the loop closes it) in the
 * calling thread; uloop_run() may run in another. pool (may be NULL, may be
 * shared with other loops) computes the expensive requests, on workers
 * threads. nopen is the connection count shared by every loop. Returns 0
 * or -errno (lfd is then closed);
 * "uring: io_uring unavailable: ..." is logged when the kernel refuses
 * io_uring.
 */
int uloop_init(struct uloop *l, const struct server_cfg *cfg, int lfd,
	       struct tpool *pool, unsigned workers, atomic_uint *nopen);

/* Serves until a stop has drained every connection. */
void uloop_run(struct uloop *l);

/* Frees what uloop_init() made (not nopen). */
void uloop_destroy(struct uloop *l);

#endif
