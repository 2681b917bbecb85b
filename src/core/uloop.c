#include "uloop.h"

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
#define ULOOP_FAST_FLAGS                                                       \
	(IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |                \
	 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED)

static int uloop_ring_init(struct uloop *l)
{
	struct io_uring_params p = {.flags =
					IORING_SETUP_CQSIZE | ULOOP_FAST_FLAGS,
				    .cq_entries = ULOOP_CQ_ENTRIES};
	int err;

	err = io_uring_queue_init_params(ULOOP_SQ_ENTRIES, &l->ur.ring, &p);
	l->disabled = !err;
	if (err == -EINVAL) {
		p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE,
					     .cq_entries = ULOOP_CQ_ENTRIES};
		err = io_uring_queue_init_params(ULOOP_SQ_ENTRIES, &l->ur.ring,
						 &p);
	}
	if (err)
		log_err(err, "uring: io_uring unavailable");
	return err;
}

/* Gives buffer bid back to the kernel. */
static void uloop_buf_put(struct uloop *l, unsigned bid)
{
	io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * ULOOP_BUF_SIZE,
			      ULOOP_BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(ULOOP_BUFS), 0);
	io_uring_buf_ring_advance(l->br, 1);
}

/* The provided-buffer ring (liburing 2.3 has no io_uring_setup_buf_ring). */
static int uloop_bufs_init(struct uloop *l)
{
	size_t size = ULOOP_BUFS * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg = {.ring_entries = ULOOP_BUFS,
				       .bgid = UCONN_BGID};
	void *mem;
	int err;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	l->br = mem;
	l->bufs = malloc((size_t)ULOOP_BUFS * ULOOP_BUF_SIZE);
	err = l->bufs ? 0 : -ENOMEM;
	if (err)
		goto out_unmap;
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	err = io_uring_register_buf_ring(&l->ur.ring, &reg, 0);
	if (err)
		goto out_free_bufs;
	io_uring_buf_ring_init(l->br);
	for (unsigned bid = 0; bid < ULOOP_BUFS; bid++)
		uloop_buf_put(l, bid);
	return 0;
out_free_bufs:
	free(l->bufs);
out_unmap:
	munmap(mem, size);
	log_err(err, "uring: cannot register the buffer ring");
	return err;
}

static void uloop_bufs_destroy(struct uloop *l)
{
	free(l->bufs);
	munmap(l->br, ULOOP_BUFS * sizeof(struct io_uring_buf));
}

static void uloop_arm_accept(struct uloop *l)
{
	struct io_uring_sqe *sqe = uconn_sqe(&l->ur);

	io_uring_prep_multishot_accept(sqe, l->acc.lfd, NULL, NULL,
				       SOCK_CLOEXEC);
	uconn_sqe_tag(sqe, l, UCONN_OP_ACCEPT);
	l->accepting = true;
}

static void uloop_arm_stop(struct uloop *l)
{
	struct io_uring_sqe *sqe = uconn_sqe(&l->ur);

	io_uring_prep_poll_add(sqe, stop_eventfd(), POLLIN);
	uconn_sqe_tag(sqe, l, UCONN_OP_STOP);
}

/* Multishot: one poll SQE reports every byte on the completion pipe. */
static void uloop_arm_pool(struct uloop *l)
{
	struct io_uring_sqe *sqe = uconn_sqe(&l->ur);

	io_uring_prep_poll_multishot(sqe, tpool_cq_fd(l->cq), POLLIN);
	uconn_sqe_tag(sqe, l, UCONN_OP_POOL);
	l->polling_pool = true;
}

static void uloop_on_pool(struct uloop *l, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		l->polling_pool = false;
	uconn_on_jobs(tpool_cq_reap(l->cq));
	if (!l->polling_pool)
		uloop_arm_pool(l);
}

/* Turns fd away at once, in the protocol its first bytes (if any) show. */
static void uloop_busy_now(struct uloop *l, int fd)
{
	evaccept_tell_busy(fd, l->cfg);
	close(fd);
}

/*
 * Turns fd away once its first bytes come or EVACCEPT_BUSY_WAIT_MS pass
 * (evaccept.h says why): a poll SQE waits for them, not the loop. With
 * EVACCEPT_BUSY_MAX polls in flight already, it is answered now.
 */
static void uloop_busy_later(struct uloop *l, int fd)
{
	struct uloop_busy *b = NULL;
	struct io_uring_sqe *sqe;

	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX && !b; i++)
		if (l->busy[i].fd < 0)
			b = &l->busy[i];
	if (!b) {
		uloop_busy_now(l, fd);
		return;
	}
	*b = (struct uloop_busy){
	    .fd = fd, .deadline_ms = uconn_now_ms() + EVACCEPT_BUSY_WAIT_MS};
	l->nbusy++;
	sqe = uconn_sqe(&l->ur);
	io_uring_prep_poll_add(sqe, fd, POLLIN | POLLRDHUP);
	uconn_sqe_tag(sqe, b, UCONN_OP_BUSY);
}

/*
 * The poll completed: bytes came, or its cancel (time up, a stop) ended
 * it. Only now may fd close: no SQE names it any more (uconn_close()).
 */
static void uloop_on_busy(struct uloop *l, struct uloop_busy *b)
{
	uloop_busy_now(l, b->fd);
	b->fd = -1;
	l->nbusy--;
}

/* Cancels the polls whose time is up (all: every). */
static void uloop_busy_expire(struct uloop *l, bool every)
{
	uint64_t now = uconn_now_ms();

	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++) {
		struct uloop_busy *b = &l->busy[i];

		if (b->fd < 0 || b->cancelling ||
		    (!every && b->deadline_ms > now))
			continue;
		uconn_cancel(&l->ur, b, UCONN_OP_BUSY);
		b->cancelling = true;
	}
}

/* Milliseconds until the first refused connection's time is up, or -1. */
static int uloop_busy_wait_ms(const struct uloop *l, uint64_t now)
{
	int t = -1, u;

	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++) {
		const struct uloop_busy *b = &l->busy[i];

		if (b->fd < 0 || b->cancelling)
			continue;
		u = b->deadline_ms > now ? (int)(b->deadline_ms - now) : 0;
		if (t < 0 || u < t)
			t = u;
	}
	return t;
}

/* A new connection: serve it, or turn it away. */
static void uloop_add(struct uloop *l, int fd)
{
	if (l->ur.stopping) {
		close(fd); /* accepted as the listener closed */
		return;
	}
	net_nodelay(fd);
	if (atomic_load(l->ur.nopen) >= l->cfg->max_conns)
		uloop_busy_later(l, fd);
	else if (uconn_start(&l->ur, fd))
		uloop_busy_now(l, fd); /* no memory */
}

/*
 * accept failed, out of descriptors most likely: the connection is still
 * in the backlog and would fail again at once. Shed the backlog the way
 * evaccept does; if even that fails, re-arm only after a back-off.
 */
static void uloop_accept_failed(struct uloop *l)
{
	int fd;

	for (int i = 0; i < ULOOP_SHED_BATCH; i++) {
		fd = evaccept_next(&l->acc, l->cfg);
		if (fd >= 0)
			uloop_add(l, fd);
		else if (fd == -EAGAIN)
			return;
		else if (fd != -EBUSY)
			break;
	}
	l->accept_resume = uconn_now_ms() + EVACCEPT_BACKOFF_MS;
}

static void uloop_on_accept(struct uloop *l, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		l->accepting = false;
	if (res >= 0)
		uloop_add(l, res);
	else if (res != -ECANCELED && !l->ur.stopping)
		uloop_accept_failed(l);
	if (!l->accepting && !l->ur.stopping && !l->accept_resume)
		uloop_arm_accept(l);
}

static void uloop_resume_accept(struct uloop *l)
{
	if (!l->accept_resume || uconn_now_ms() < l->accept_resume)
		return;
	l->accept_resume = 0;
	if (!l->accepting && !l->ur.stopping)
		uloop_arm_accept(l);
}

/* SIGTERM or SIGINT: stop accepting, answer what was read, close. */
static void uloop_begin_stop(struct uloop *l)
{
	if (l->accepting)
		uconn_cancel(&l->ur, l, UCONN_OP_ACCEPT);
	l->accept_resume = 0;
	evaccept_close(&l->acc);
	uloop_busy_expire(l, true);
	uconn_stop_all(&l->ur, ULOOP_STOP_GRACE_MS);
}

static void uloop_on_recv(struct uloop *l, struct uconn *c,
			  const struct io_uring_cqe *cqe)
{
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	const char *data = NULL;

	if (cqe->flags & IORING_CQE_F_BUFFER)
		data = l->bufs + (size_t)bid * ULOOP_BUF_SIZE;
	uconn_on_recv(c, cqe->res, cqe->flags, data);
	if (data)
		uloop_buf_put(l, bid); /* copied: give it back at once */
}

static void uloop_dispatch(struct uloop *l, const struct io_uring_cqe *cqe)
{
	void *p =
	    (void *)(uintptr_t)(cqe->user_data & ~(uint64_t)UCONN_OP_MASK);

	switch (cqe->user_data & UCONN_OP_MASK) {
	case UCONN_OP_RECV:
		uloop_on_recv(l, p, cqe);
		break;
	case UCONN_OP_SEND:
		uconn_on_send(p, cqe->res);
		break;
	case UCONN_OP_ACCEPT:
		uloop_on_accept(l, cqe->res, cqe->flags);
		break;
	case UCONN_OP_STOP:
		uloop_begin_stop(l);
		break;
	case UCONN_OP_POOL:
		uloop_on_pool(l, cqe->flags);
		break;
	case UCONN_OP_BUSY:
		uloop_on_busy(l, p);
		break;
	default:
		break; /* a cancel's own completion */
	}
}

/* Submits, and waits for a completion or the nearest deadline. */
static int uloop_wait(struct uloop *l)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;
	int ms = uconn_wait_ms(&l->ur);
	uint64_t now = uconn_now_ms();
	int b = uloop_busy_wait_ms(l, now);

	if (b >= 0 && (ms < 0 || b < ms))
		ms = b;
	if (l->accept_resume) {
		if (l->accept_resume <= now)
			ms = 0;
		else if (ms < 0 || l->accept_resume - now < (uint64_t)ms)
			ms = (int)(l->accept_resume - now);
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	return io_uring_submit_and_wait_timeout(&l->ur.ring, &cqe, 1,
						ms >= 0 ? &ts : NULL, NULL);
}

static void uloop_reap(struct uloop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&l->ur.ring, head, cqe)
	{
		uloop_dispatch(l, cqe);
		n++;
	}
	io_uring_cq_advance(&l->ur.ring, n);
}

/* io_uring_enable_rings(), which liburing 2.3 declares but does not export. */
static int uloop_enable(struct uloop *l)
{
	if (!l->disabled)
		return 0;
	if (syscall(__NR_io_uring_register, l->ur.ring.ring_fd,
		    IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
		return -errno;
	return 0;
}

void uloop_run(struct uloop *l)
{
	int err = uloop_enable(l);

	while (!err &&
	       (!l->ur.stopping || l->ur.nlive || l->accepting || l->nbusy)) {
		err = uloop_wait(l);
		if (err == -ETIME || err == -EINTR || err == -EBUSY ||
		    err == -EAGAIN || err > 0)
			err = 0;
		uloop_reap(l);
		uconn_expire(&l->ur);
		uloop_busy_expire(l, false);
		uloop_resume_accept(l);
	}
	if (err)
		log_err(err, "uring: io_uring_enter");
}

int uloop_init(struct uloop *l, const struct server_cfg *cfg, int lfd,
	       struct tpool *pool, unsigned workers, atomic_uint *nopen)
{
	int err;

	*l = (struct uloop){.cfg = cfg};
	l->ur.nopen = nopen;
	l->ur.idle.timeout_ms = cfg->idle_timeout_ms;
	l->ur.header.timeout_ms =
	    evconn_header_ms(cfg->header_timeout_ms, cfg->idle_timeout_ms);
	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++)
		l->busy[i].fd = -1;
	l->ur.linger.timeout_ms = EVCONN_LINGER_MS;
	evconn_cfg_init(&l->ur.ecfg, &cfg->limits, pool, workers);
	evaccept_init(&l->acc, lfd);
	if (pool) {
		l->cq = tpool_cq_create();
		if (!l->cq) {
			err = -errno;
			goto out_close_listener;
		}
		l->ur.ecfg.cq = l->cq;
	}
	err = uloop_ring_init(l);
	if (err)
		goto out_destroy_cq;
	err = uloop_bufs_init(l);
	if (err)
		goto out_exit_ring;
	uloop_arm_stop(l);
	uloop_arm_accept(l);
	if (pool)
		uloop_arm_pool(l);
	return 0;
out_exit_ring:
	io_uring_queue_exit(&l->ur.ring);
out_destroy_cq:
	if (l->cq)
		tpool_cq_destroy(l->cq);
out_close_listener:
	evaccept_close(&l->acc);
	return err;
}

void uloop_destroy(struct uloop *l)
{
	/* Cancels and reaps whatever is still in flight (an aborted loop). */
	io_uring_queue_exit(&l->ur.ring);
	uconn_free_all(&l->ur);
	for (unsigned i = 0; i < EVACCEPT_BUSY_MAX; i++)
		if (l->busy[i].fd >= 0)
			close(l->busy[i].fd);
	/* After a stop every connection is gone, so no job is in the pool. */
	if (l->cq)
		tpool_cq_destroy(l->cq);
	uloop_bufs_destroy(l);
	if (l->acc.lfd >= 0)
		evaccept_close(&l->acc);
}
