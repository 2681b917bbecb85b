#include "loop_uring.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "stop.h"

/*
 * Completions run on the loop's own thread, inside io_uring_enter(), and
 * only this thread submits: the cheapest way to run a ring (6.1+). Older
 * kernels refuse the flags; the ring then runs without them.
 */
#define LOOP_URING_FAST_FLAGS                                                  \
	(IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |                \
	 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED)

struct io_uring_sqe *loop_uring_sqe(struct loop_uring *u)
{
	struct io_uring_sqe *sqe;

	/* Without SQPOLL a submit takes every queued SQE: room comes back. */
	while (!(sqe = io_uring_get_sqe(&u->ring)))
		io_uring_submit(&u->ring);
	return sqe;
}

void loop_uring_cancel(struct loop_uring *u, void *ptr, enum loop_uring_op op)
{
	struct io_uring_sqe *sqe = loop_uring_sqe(u);

	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)ptr | op, 0);
	loop_uring_tag(sqe, NULL, LOOP_URING_IGNORE);
}

static int loop_uring_ring_init(struct loop_uring *u)
{
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE |
					     LOOP_URING_FAST_FLAGS,
				    .cq_entries = LOOP_URING_CQ_ENTRIES};
	int err;

	err = io_uring_queue_init_params(LOOP_URING_SQ_ENTRIES, &u->ring, &p);
	u->disabled = !err;
	if (err == -EINVAL) {
		p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE,
					     .cq_entries =
						 LOOP_URING_CQ_ENTRIES};
		err = io_uring_queue_init_params(LOOP_URING_SQ_ENTRIES,
						 &u->ring, &p);
	}
	if (err)
		log_err(err, "uring: io_uring unavailable");
	return err;
}

/* Gives buffer bid back to the kernel. */
static void loop_uring_buf_put(struct loop_uring *u, unsigned bid)
{
	io_uring_buf_ring_add(u->br,
			      u->bufs + (size_t)bid * LOOP_URING_BUF_SIZE,
			      LOOP_URING_BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(LOOP_URING_BUFS), 0);
	io_uring_buf_ring_advance(u->br, 1);
}

/* The provided-buffer ring (liburing 2.3 has no io_uring_setup_buf_ring). */
static int loop_uring_bufs_init(struct loop_uring *u)
{
	size_t size = LOOP_URING_BUFS * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg = {.ring_entries = LOOP_URING_BUFS,
				       .bgid = LOOP_URING_BGID};
	void *mem;
	int err;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	u->br = mem;
	u->bufs = malloc((size_t)LOOP_URING_BUFS * LOOP_URING_BUF_SIZE);
	err = u->bufs ? 0 : -ENOMEM;
	if (err)
		goto out_unmap;
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	err = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (err)
		goto out_free_bufs;
	io_uring_buf_ring_init(u->br);
	for (unsigned bid = 0; bid < LOOP_URING_BUFS; bid++)
		loop_uring_buf_put(u, bid);
	return 0;
out_free_bufs:
	free(u->bufs);
out_unmap:
	munmap(mem, size);
	log_err(err, "uring: cannot register the buffer ring");
	return err;
}

static void loop_uring_bufs_destroy(struct loop_uring *u)
{
	free(u->bufs);
	munmap(u->br, LOOP_URING_BUFS * sizeof(struct io_uring_buf));
}

static void loop_uring_arm_accept(struct loop_uring *u)
{
	struct io_uring_sqe *sqe = loop_uring_sqe(u);

	io_uring_prep_multishot_accept(sqe, u->l.acc.lfd, NULL, NULL,
				       SOCK_CLOEXEC);
	loop_uring_tag(sqe, u, LOOP_URING_ACCEPT);
	u->accepting = true;
}

static void loop_uring_arm_stop(struct loop_uring *u)
{
	struct io_uring_sqe *sqe = loop_uring_sqe(u);

	io_uring_prep_poll_add(sqe, stop_eventfd(), POLLIN);
	loop_uring_tag(sqe, u, LOOP_URING_STOP);
}

/* Multishot: one poll SQE reports every byte on the completion pipe. */
static void loop_uring_arm_pool(struct loop_uring *u)
{
	struct io_uring_sqe *sqe = loop_uring_sqe(u);

	io_uring_prep_poll_multishot(sqe, tpool_cq_fd(u->l.cq), POLLIN);
	loop_uring_tag(sqe, u, LOOP_URING_POOL);
	u->polling_pool = true;
}

static void loop_uring_on_pool(struct loop_uring *u, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		u->polling_pool = false;
	loop_reap_pool(&u->l);
	if (!u->polling_pool)
		loop_uring_arm_pool(u);
}

/* A poll SQE waits for the refused connection's first bytes. */
static int loop_uring_busy_watch(struct loop *l, struct loop_busy *b)
{
	struct io_uring_sqe *sqe = loop_uring_sqe(loop_uring_of(l));

	io_uring_prep_poll_add(sqe, b->fd, POLLIN | POLLRDHUP);
	loop_uring_tag(sqe, b, LOOP_URING_BUSY);
	return 0;
}

/*
 * Its time is up: cancel the poll. Only its completion answers and closes
 * fd: until then an SQE names the fd (the model's close says why that
 * matters).
 */
static void loop_uring_busy_end(struct loop *l, struct loop_busy *b)
{
	loop_uring_cancel(loop_uring_of(l), b, LOOP_URING_BUSY);
	b->ending = true;
}

static void loop_uring_accept_pause(struct loop *l, bool paused)
{
	struct loop_uring *u = loop_uring_of(l);

	if (!paused && !u->accepting && !l->stopping)
		loop_uring_arm_accept(u);
}

static void loop_uring_stop(struct loop *l)
{
	struct loop_uring *u = loop_uring_of(l);

	if (u->accepting)
		loop_uring_cancel(u, u, LOOP_URING_ACCEPT);
}

static const struct loop_backend loop_uring_backend = {
    .busy_watch = loop_uring_busy_watch,
    .busy_end = loop_uring_busy_end,
    .accept_pause = loop_uring_accept_pause,
    .stop = loop_uring_stop,
};

/*
 * A failed accept is out of descriptors most likely: the connection is
 * still in the backlog and would fail again at once. Shed the backlog the
 * way the epoll loop does; if even that fails, re-arm after a back-off.
 */
static void loop_uring_on_accept(struct loop_uring *u, int res, unsigned flags)
{
	struct loop *l = &u->l;

	if (!(flags & IORING_CQE_F_MORE))
		u->accepting = false;
	if (res >= 0) {
		net_nodelay(res);
		loop_admit(l, res);
	} else if (res != -ECANCELED && !l->stopping &&
		   !loop_accept(l, LOOP_URING_SHED_BATCH)) {
		loop_accept_backoff(l);
	}
	if (!u->accepting && !l->stopping && !l->accept_paused)
		loop_uring_arm_accept(u);
}

static void loop_uring_dispatch(struct loop_uring *u,
				const struct io_uring_cqe *cqe)
{
	void *p =
	    (void *)(uintptr_t)(cqe->user_data & ~(uint64_t)LOOP_URING_OP_MASK);
	struct loop_event ev = {.op = cqe->user_data & LOOP_URING_OP_MASK,
				.res = cqe->res,
				.flags = cqe->flags};
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

	switch (ev.op) {
	case LOOP_URING_RECV:
		if (cqe->flags & IORING_CQE_F_BUFFER)
			ev.data = u->bufs + (size_t)bid * LOOP_URING_BUF_SIZE;
		u->l.ops->event(&u->l, p, &ev);
		if (ev.data)
			loop_uring_buf_put(u, bid); /* copied: give it back */
		break;
	case LOOP_URING_SEND:
		u->l.ops->event(&u->l, p, &ev);
		break;
	case LOOP_URING_ACCEPT:
		loop_uring_on_accept(u, cqe->res, cqe->flags);
		break;
	case LOOP_URING_STOP:
		loop_begin_stop(&u->l);
		break;
	case LOOP_URING_POOL:
		loop_uring_on_pool(u, cqe->flags);
		break;
	case LOOP_URING_BUSY:
		loop_busy_answer(&u->l, p);
		break;
	default:
		break; /* a cancel's own completion */
	}
}

/* Submits, and waits for a completion or ms (-1: no deadline). */
static int loop_uring_wait(struct loop_uring *u, int ms)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	return io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1,
						ms >= 0 ? &ts : NULL, NULL);
}

static void loop_uring_reap(struct loop_uring *u)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe)
	{
		loop_uring_dispatch(u, cqe);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
}

/* io_uring_enable_rings(), which liburing 2.3 declares but does not export. */
static int loop_uring_enable(struct loop_uring *u)
{
	if (!u->disabled)
		return 0;
	if (syscall(__NR_io_uring_register, u->ring.ring_fd,
		    IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
		return -errno;
	return 0;
}

void loop_uring_run(struct loop_uring *u)
{
	int err = loop_uring_enable(u), ms = loop_wait_ms(&u->l);

	while (!err && (loop_running(&u->l) || u->accepting || u->l.nbusy)) {
		err = loop_uring_wait(u, ms);
		if (err == -ETIME || err == -EINTR || err == -EBUSY ||
		    err == -EAGAIN || err > 0)
			err = 0;
		loop_uring_reap(u);
		ms = loop_turn_end(&u->l);
	}
	if (err)
		log_err(err, "uring: io_uring_enter");
}

int loop_uring_init(struct loop_uring *u, const struct loop_ops *ops,
		    const struct server_cfg *cfg, int lfd, struct tpool *pool,
		    unsigned workers, atomic_uint *nopen)
{
	int err = loop_init(&u->l, &loop_uring_backend, ops, cfg, lfd, pool,
			    workers, nopen);

	if (err)
		return err;
	u->accepting = u->polling_pool = false;
	u->closing = (struct evconn_tq){0};
	err = loop_uring_ring_init(u);
	if (err)
		goto out_destroy;
	err = loop_uring_bufs_init(u);
	if (err)
		goto out_exit_ring;
	loop_uring_arm_stop(u);
	loop_uring_arm_accept(u);
	if (pool)
		loop_uring_arm_pool(u);
	return 0;
out_exit_ring:
	io_uring_queue_exit(&u->ring);
out_destroy:
	loop_destroy(&u->l);
	return err;
}

void loop_uring_destroy(struct loop_uring *u)
{
	/* Cancels and reaps whatever is still in flight (an aborted loop). */
	io_uring_queue_exit(&u->ring);
	loop_uring_bufs_destroy(u);
	loop_destroy(&u->l);
}
