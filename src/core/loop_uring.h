/*
 * loop_uring - the loop (loop.h) on io_uring: completions. The loop owns the
 * ring, a provided-buffer ring of LOOP_URING_BUFS buffers of
 * LOOP_URING_BUF_SIZE bytes for the model's multishot recvs to pick from,
 * a multishot accept on the listener, a poll on stop_eventfd(), with a
 * pool a multishot poll on its completion queue, and a poll on each
 * refused connection. Each turn submits what the last turn queued and
 * waits for a completion or the nearest deadline in the same
 * io_uring_enter(), then hands the model its completions (ops->event(),
 * with ev->op, ev->res, ev->flags and for a recv ev->data).
 *
 * An SQE's user_data is a pointer with the operation in its three low bits
 * (enum loop_uring_op): loop_uring_tag().
 */
#ifndef FIBD_CORE_LOOP_URING_H
#define FIBD_CORE_LOOP_URING_H

#include <liburing.h>

#include "loop.h"

#define LOOP_URING_SQ_ENTRIES 256
#define LOOP_URING_CQ_ENTRIES 4096
#define LOOP_URING_BUFS	      256  /* provided buffers: a power of 2 */
#define LOOP_URING_BUF_SIZE   4096 /* bytes each: 1 MiB per ring */
#define LOOP_URING_BGID	      0	   /* the buffer group recvs pick from */
#define LOOP_URING_SHED_BATCH 64   /* backlog shed per failed accept */

enum loop_uring_op {
	LOOP_URING_RECV,       /* the model's: a recv from the buffer ring */
	LOOP_URING_SEND,       /* the model's: any other operation */
	LOOP_URING_ACCEPT,     /* the loop's multishot accept */
	LOOP_URING_STOP,       /* the loop's poll on stop_eventfd() */
	LOOP_URING_POOL,       /* the loop's poll on its completion queue */
	LOOP_URING_BUSY,       /* the poll on a refused connection */
	LOOP_URING_IGNORE = 7, /* cancels: nothing to do on completion */
};
#define LOOP_URING_OP_MASK 7u

struct loop_uring {
	struct loop l; /* first: a model's callbacks get &l */
	struct io_uring ring;
	bool accepting;		      /* the multishot accept is in flight */
	bool disabled;		      /* created IORING_SETUP_R_DISABLED */
	bool polling_pool;	      /* the multishot poll on cq is armed */
	struct io_uring_buf_ring *br; /* the provided-buffer ring */
	char *bufs;		      /* its LOOP_URING_BUFS buffers */
	struct evconn_tq closing;     /* the model's: closed, ops in flight */
};

/*
 * loop_init() and the ring, in the calling thread (loop_uring_run() may run
 * in another). 0 or -errno (lfd is then closed); "uring: io_uring
 * unavailable: ..." is logged when the kernel refuses io_uring.
 */
int loop_uring_init(struct loop_uring *u, const struct loop_ops *ops,
		    const struct server_cfg *cfg, int lfd, struct tpool *pool,
		    unsigned workers, atomic_uint *nopen);

/* Serves until a stop has seen every live thing and operation go. */
void loop_uring_run(struct loop_uring *u);

/* Exits the ring (cancelling what is in flight: an aborted loop) and frees
 * what loop_uring_init() made; the model frees its connections after. */
void loop_uring_destroy(struct loop_uring *u);

/* A free SQE, submitting the full queue first if need be. */
struct io_uring_sqe *loop_uring_sqe(struct loop_uring *u);

/* Tags sqe with ptr and op. */
static inline void loop_uring_tag(struct io_uring_sqe *sqe, void *ptr,
				  enum loop_uring_op op)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)ptr | op);
}

/* Queues a cancel of the operation tagged ptr and op. */
void loop_uring_cancel(struct loop_uring *u, void *ptr, enum loop_uring_op op);

/* The loop_uring of a model's callback. */
static inline struct loop_uring *loop_uring_of(struct loop *l)
{
	return (struct loop_uring *)l;
}

#endif
