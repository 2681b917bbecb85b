/*
 * uconn - one fib/1 connection on io_uring: evconn's framing, replies and
 * backpressure, with the bytes moved by a multishot recv and one
 * IORING_OP_SEND at a time instead of read() and write().
 *
 * The ring's loop (src/core/uloop.c) owns the ring, the provided-buffer ring
 * and the listener; it hands every recv and send completion to
 * uconn_on_recv() / uconn_on_send(), and uconn decides which SQEs to queue
 * next. An SQE's user_data is the connection's address with the operation
 * in its three low bits (enum uconn_op).
 *
 * Input. Every recv completion is copied into ev.in at once (its provided
 * buffer goes straight back to the ring) and framed by evconn_take(); with
 * --framing read each completion is a request (cut at max_line), and those
 * that arrive while a cap holds the parsing back run together. When
 * the output caps stop the parsing, input keeps arriving until ev.in holds
 * UCONN_IN_MAX + max_line bytes; then the multishot recv is cancelled, the
 * kernel's socket buffer fills, and TCP tells the client to wait. The recv is
 * armed again once ev.in drains below the cap.
 *
 * Compute. As on the epoll loops, requests above the inline threshold go
 * to the pool (evconn's slots and jobs cap); the loop polls its completion
 * queue's pipe with a multishot poll SQE and hands the finished jobs to
 * uconn_on_jobs(), which queues their replies in order.
 *
 * Output. Replies gather in ev.out while the send in flight owns wire; when
 * it completes, ev.out becomes wire and goes out in one send. So a
 * connection holds at most about UCONN_IN_MAX + max_line of input and
 * 2 * EVCONN_OUT_MAX + the largest reply of output.
 *
 * Lifetime. A connection that is done is closed at once (its fd, its
 * buffers, its --max-conns slot), its operations still in flight are
 * cancelled, and the struct is freed when the last of them (and of its
 * pool jobs) completes.
 */
#ifndef FIBD_CORE_UCONN_H
#define FIBD_CORE_UCONN_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "evconn.h"

#define UCONN_BGID   0	   /* the provided-buffer group recv picks from */
#define UCONN_IN_MAX 65536 /* input held (+ max_line) before recv pauses */

/* The operation an SQE's user_data names: its three low bits. */
enum uconn_op {
	UCONN_OP_RECV,	     /* a connection's multishot recv */
	UCONN_OP_SEND,	     /* a connection's send */
	UCONN_OP_ACCEPT,     /* the loop's multishot accept */
	UCONN_OP_STOP,	     /* the loop's poll on stop_eventfd() */
	UCONN_OP_POOL,	     /* the loop's poll on its pool completion queue */
	UCONN_OP_BUSY,	     /* the poll on a refused connection (uloop) */
	UCONN_OP_IGNORE = 7, /* cancels: nothing to do on completion */
};
#define UCONN_OP_MASK 7u

/* What every connection of one ring shares; the loop owns it. */
struct uconn_ring {
	struct io_uring ring;
	struct evconn_cfg ecfg;	  /* its pool (shared by the rings), or none */
	struct evconn_tq idle;	  /* open connections, by last progress */
	struct evconn_tq header;  /* part of a request in: --header-timeout */
	struct evconn_tq linger;  /* closing politely, by start of linger */
	struct evconn_tq closing; /* closed, operations still in flight */
	atomic_uint *nopen;	  /* sockets open, all rings: --max-conns */
	unsigned nlive;		  /* structs not yet freed */
	bool stopping;
};

/* The multishot recv, seen from user space. */
enum uconn_recv {
	/* Not armed: input is capped, a stop or error ended it, or ENOBUFS
	 * (it is armed again as soon as input is wanted). */
	UCONN_RECV_IDLE,
	/* Armed: completions carry data until one comes without
	 * IORING_CQE_F_MORE. */
	UCONN_RECV_ARMED,
	/* A cancel is queued; the completion without F_MORE is still due. */
	UCONN_RECV_CANCELLING,
	/* The client's EOF came (or the socket broke): never armed again. */
	UCONN_RECV_EOF,
};

struct uconn {
	struct evconn ev; /* first: the timeout queues hold &ev */
	struct uconn_ring *r;
	enum uconn_recv recv;
	bool sending;	 /* a send is in flight: it owns wire */
	bool cancelling; /* its cancel is queued */
	struct buf wire; /* the bytes of the send in flight */
	int fd;		 /* closed only in uconn_free(): see uconn_close() */
};

/* Starts serving fd (connected). Returns 0 or -ENOMEM. */
int uconn_start(struct uconn_ring *r, int fd);

/* A recv completion; data holds res bytes when res > 0. */
void uconn_on_recv(struct uconn *c, int res, unsigned flags, const char *data);

/* A send completion. */
void uconn_on_send(struct uconn *c, int res);

/* Finished pool jobs (tpool_cq_reap()'s list): queue their replies. */
void uconn_on_jobs(struct tpool_job *jobs);

/* A stop began: every open connection answers what it has read, then
 * closes; one that does not read its replies gets grace_ms. */
void uconn_stop_all(struct uconn_ring *r, unsigned grace_ms);

/*
 * Closes the connections whose idle or linger deadline has passed, and
 * answers those whose request did not come whole in time (evconn_timeout()).
 */
void uconn_expire(struct uconn_ring *r);

/* Milliseconds until the nearest deadline, or -1 for none. */
int uconn_wait_ms(const struct uconn_ring *r);

/* After the ring is gone: frees every connection left (an aborted loop). */
void uconn_free_all(struct uconn_ring *r);

/* A free SQE, submitting the full queue first if need be. */
struct io_uring_sqe *uconn_sqe(struct uconn_ring *r);

/* Tags sqe with ptr and op. */
static inline void uconn_sqe_tag(struct io_uring_sqe *sqe, void *ptr,
				 enum uconn_op op)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)ptr | op);
}

/* Queues a cancel of the operation tagged ptr and op. */
void uconn_cancel(struct uconn_ring *r, void *ptr, enum uconn_op op);

uint64_t uconn_now_ms(void);

#endif
