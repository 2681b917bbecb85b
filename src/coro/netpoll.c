/*
 * netpoll - blocking-style I/O on non-blocking descriptors, over epoll.
 *
 * Each fd gets a poll descriptor (struct coro__pd, Go's pollDesc) the first
 * time a coroutine uses it: O_NONBLOCK is set and the fd joins the epoll set
 * once, edge-triggered, for EPOLLIN|EPOLLOUT|EPOLLRDHUP. After that no
 * request costs an epoll_ctl. An I/O call tries the system call first and
 * parks on the pd's rg or wg slot only on EAGAIN; an edge for the fd makes
 * the slot READY or readies the parked coroutine (park.c closes the race).
 *
 * Poll descriptors live in a process-wide table indexed by fd number (as
 * fd numbers are process-wide) and are never freed while a runtime exists,
 * so a stale epoll event can only cause a spurious, harmless retry.
 *
 * Closing: pd->ref counts calls in flight; coro_close() sets REF_CLOSING,
 * kicks both slots, and whoever brings the count to zero does close(2). So
 * a number is never reused while a call may still pass it to the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "internal.h"

#define PD_CHUNK    1024
#define PD_CHUNKS   1024 /* fds below 1M */
#define REF_CLOSING (1u << 30)
#define REF_CLOSED  (1u << 31)
#define REF_COUNT   (REF_CLOSING - 1)

struct coro__pd {
	int fd;
	bool is_sock;	      /* send(MSG_NOSIGNAL) rather than write */
	bool is_stream;	      /* a stream socket: a short read drains it */
	_Atomic bool drained; /* its last read was short: wait, then read */
	_Atomic bool hup;     /* EOF or an error seen: reads never block */
	_Atomic bool registered;
	struct coro_rt *rt; /* whose epoll set holds it */
	_Atomic unsigned ref;
	_Atomic uintptr_t rg, wg; /* parking slots of a reader, a writer */
	/* A parked reader's deadline (ns), PD_NO_DEADLINE when none, and
	 * the lazy timer that enforces it (pd_arm_deadline()). */
	_Atomic int64_t rdeadline;
	struct coro__timer rtimer;
};

#define PD_NO_DEADLINE INT64_MAX

static void pd_rtimer_fire(struct coro__timer *t);

static pthread_mutex_t pd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct coro__pd *_Atomic pd_chunks[PD_CHUNKS];
static unsigned nruntimes; /* the table is freed with the last runtime */

static struct coro__pd *pd_lookup(int fd, bool create)
{
	struct coro__pd *chunk;
	unsigned i;

	if (fd < 0 || fd >= PD_CHUNK * PD_CHUNKS)
		return NULL;
	chunk = atomic_load_explicit(&pd_chunks[fd / PD_CHUNK],
				     memory_order_acquire);
	if (!chunk && create) {
		pthread_mutex_lock(&pd_lock);
		chunk = atomic_load(&pd_chunks[fd / PD_CHUNK]);
		if (!chunk && (chunk = calloc(PD_CHUNK, sizeof(*chunk)))) {
			for (i = 0; i < PD_CHUNK; i++) {
				chunk[i].fd = fd / PD_CHUNK * PD_CHUNK + i;
				atomic_init(&chunk[i].rdeadline,
					    PD_NO_DEADLINE);
				chunk[i].rtimer.idx = TIMER_IDLE;
				chunk[i].rtimer.fire = pd_rtimer_fire;
				atomic_init(&chunk[i].rtimer.queued_when,
					    INT64_MAX);
			}
			atomic_store_explicit(&pd_chunks[fd / PD_CHUNK], chunk,
					      memory_order_release);
		}
		pthread_mutex_unlock(&pd_lock);
	}
	return chunk ? &chunk[fd % PD_CHUNK] : NULL;
}

int coro__netpoll_init(struct coro_rt *rt)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
	int err;

	rt->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (rt->epfd < 0)
		return -errno;
	/*
	 * The doorbell (data.ptr NULL). Edge-triggered, so that one ring
	 * wakes one sleeping worker, not all of them.
	 */
	rt->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rt->evfd < 0)
		goto out_close_epfd;
	if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->evfd, &ev) < 0)
		goto out_close_evfd;
	pthread_mutex_lock(&pd_lock);
	nruntimes++;
	pthread_mutex_unlock(&pd_lock);
	return 0;

out_close_evfd:
	err = -errno;
	close(rt->evfd);
	close(rt->epfd);
	return err;
out_close_epfd:
	err = -errno;
	close(rt->epfd);
	return err;
}

/*
 * Forgets a registration: its fd was closed, or its runtime is gone. A
 * timer still queued goes too (it would fire into the next fd's reader,
 * or sit in a dead runtime's heap).
 */
static void pd_reset(struct coro__pd *pd)
{
	if (atomic_load(&pd->registered))
		coro__timer_del(pd->rt, &pd->rtimer);
	atomic_store(&pd->rdeadline, PD_NO_DEADLINE);
	atomic_store(&pd->drained, false);
	atomic_store(&pd->hup, false);
	atomic_store(&pd->rg, SLOT_NIL);
	atomic_store(&pd->wg, SLOT_NIL);
	atomic_store(&pd->registered, false);
	atomic_store(&pd->ref, 0);
}

void coro__netpoll_destroy(struct coro_rt *rt)
{
	struct coro__pd *chunk;
	unsigned i, j;

	close(rt->evfd);
	close(rt->epfd);
	pthread_mutex_lock(&pd_lock);
	for (i = 0; i < PD_CHUNKS; i++) {
		chunk = atomic_load(&pd_chunks[i]);
		for (j = 0; chunk && j < PD_CHUNK; j++)
			if (chunk[j].rt == rt)
				pd_reset(&chunk[j]);
		if (nruntimes == 1) {
			free(chunk);
			atomic_store(&pd_chunks[i], NULL);
		}
	}
	nruntimes--;
	pthread_mutex_unlock(&pd_lock);
}

int coro__netpoll_wait(struct coro_rt *rt, struct epoll_event *evs, int max,
		       int timeout_ms)
{
	int n = epoll_wait(rt->epfd, evs, max, timeout_ms);

	return n < 0 ? 0 : n; /* EINTR: the caller looks around and retries */
}

bool coro__netpoll_ready(struct coro_rt *rt, struct epoll_event *evs, int n,
			 struct coro__list *list)
{
	bool bell = false;
	uint64_t v;
	int i;

	for (i = 0; i < n; i++) {
		struct coro__pd *pd = evs[i].data.ptr;
		uint32_t e = evs[i].events;

		if (!pd) {
			/* Drain, then allow the next ring (not the reverse). */
			(void)!read(rt->evfd, &v, sizeof(v));
			atomic_store(&rt->bell_pending, 0);
			bell = true;
			continue;
		}
		/* Before the wake-up, so the reader sees it (pd_wait_first). */
		if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			atomic_store(&pd->hup, true);
		if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			coro__slot_take(&pd->rg, true, list);
		if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			coro__slot_take(&pd->wg, true, list);
	}
	return bell;
}

void coro__netpoll_ring_force(struct coro_rt *rt)
{
	uint64_t one = 1;

	atomic_store(&rt->bell_pending, 1);
	(void)!write(rt->evfd, &one, sizeof(one));
}

void coro__netpoll_ring(struct coro_rt *rt)
{
	if (!atomic_load(&rt->bell_pending))
		coro__netpoll_ring_force(rt);
}

static int pd_register(struct coro_rt *rt, struct coro__pd *pd)
{
	struct epoll_event ev = {
	    .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	    .data.ptr = pd,
	};
	socklen_t tlen = sizeof(int);
	struct stat st;
	int fl, type, err = 0;

	pthread_mutex_lock(&pd_lock);
	if (atomic_load(&pd->registered))
		goto out_unlock;
	fl = fcntl(pd->fd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) &&
		       fcntl(pd->fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
		err = -errno;
		goto out_unlock;
	}
	pd->is_sock = !fstat(pd->fd, &st) && S_ISSOCK(st.st_mode);
	pd->is_stream =
	    pd->is_sock &&
	    !getsockopt(pd->fd, SOL_SOCKET, SO_TYPE, &type, &tlen) &&
	    type == SOCK_STREAM;
	atomic_store(&pd->drained, false);
	atomic_store(&pd->hup, false);
	pd->rt = rt;
	atomic_store(&pd->rg, SLOT_NIL);
	atomic_store(&pd->wg, SLOT_NIL);
	if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, pd->fd, &ev) < 0) {
		err = -errno;
		goto out_unlock;
	}
	atomic_store(&pd->registered, true);
out_unlock:
	pthread_mutex_unlock(&pd_lock);
	return err;
}

static void pd_close_now(struct coro__pd *pd)
{
	epoll_ctl(pd->rt->epfd, EPOLL_CTL_DEL, pd->fd, NULL);
	pd_reset(pd);
	close(pd->fd); /* last: from now on the number can be reused */
}

static void pd_release(struct coro__pd *pd)
{
	unsigned closing = REF_CLOSING;

	if (atomic_fetch_sub(&pd->ref, 1) - 1 == REF_CLOSING &&
	    atomic_compare_exchange_strong(&pd->ref, &closing,
					   REF_CLOSING | REF_CLOSED))
		pd_close_now(pd);
}

static void pd_forget(int fd)
{
	struct coro__pd *pd = pd_lookup(fd, false);

	if (pd && atomic_load(&pd->registered)) {
		pthread_mutex_lock(&pd_lock);
		pd_reset(pd);
		pthread_mutex_unlock(&pd_lock);
	}
}

/* Enters a call on fd: 0 and *out, or -errno. Pair with pd_release(). */
static int pd_acquire(int fd, struct coro__pd **out)
{
	struct coro__worker *w = coro__self();
	struct coro__pd *pd;
	int err;

	if (!w || !w->cur)
		return -EPERM;
	pd = pd_lookup(fd, true);
	if (!pd)
		return fd < 0 ? -EBADF : -ENOMEM;
	if (atomic_fetch_add(&pd->ref, 1) & REF_CLOSING) {
		pd_release(pd);
		return -EBADF;
	}
	if (!atomic_load(&pd->registered)) {
		err = pd_register(w->rt, pd);
		if (err) {
			pd_release(pd);
			return err;
		}
	}
	*out = pd;
	return 0;
}

static bool pd_abort(void *arg)
{
	struct coro__pd *pd = arg;

	return (atomic_load(&pd->ref) & REF_CLOSING) ||
	       atomic_load(&pd->rt->cancelled);
}

/*
 * A reader's deadline is lazy, as nginx's timers are: an idle timeout moves
 * the deadline forward on every read, and queueing and removing a timer each
 * time cost two heap operations under the runtime's timer lock per request
 * (at 10,000 connections, 7% of the server's CPU in the heap alone). So the
 * pd keeps one timer queued across reads; a reader only publishes its
 * deadline (rdeadline), and takes the lock only when no timer is queued to
 * fire by then. When the timer fires it looks at rdeadline again: nobody
 * waiting, it leaves; a deadline still ahead, it queues itself for that;
 * only a deadline passed wakes the reader. A connection with a 300 s idle
 * timeout then touches the heap about once per 300 s, not twice a request.
 *
 * The reader stores rdeadline then loads queued_when; the fire has
 * cleared queued_when (heap_remove) before it loads rdeadline (both
 * seq_cst), so either the reader sees no timer queued and arms one, or the
 * fire sees the new deadline and requeues: never neither.
 */
static void pd_rtimer_fire(struct coro__timer *t)
{
	struct coro__pd *pd =
	    (struct coro__pd *)((char *)t - offsetof(struct coro__pd, rtimer));
	int64_t deadline = atomic_load(&pd->rdeadline);

	if (deadline == PD_NO_DEADLINE)
		return;
	if (deadline > coro__now())
		coro__timer_requeue(pd->rt, t, deadline);
	else
		coro__slot_unblock(&pd->rg, false);
}

static int pd_arm_deadline(struct coro__pd *pd, int64_t deadline)
{
	atomic_store(&pd->rdeadline, deadline);
	if (atomic_load(&pd->rtimer.queued_when) <= deadline)
		return 0;
	return coro__timer_arm_by(pd->rt, &pd->rtimer, deadline);
}

/* An absolute deadline for a timeout in ms (-1: none), or -1. */
static int64_t pd_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1
			      : coro__now() + (int64_t)timeout_ms * 1000000;
}

/*
 * Parks on slot until deadline (CLOCK_MONOTONIC ns, -1: none; only a
 * reader, on rg, has one). Returns 1 ready, 0 woken for nothing (try
 * again), or -errno.
 */
static int pd_wait(struct coro__pd *pd, _Atomic uintptr_t *slot,
		   int64_t deadline)
{
	bool ready;
	int err;

	if (deadline >= 0) {
		if (slot != &pd->rg)
			return -EINVAL; /* the timer wakes rg only */
		if (deadline <= coro__now())
			return -ETIMEDOUT;
		err = pd_arm_deadline(pd, deadline);
		if (err)
			return err;
	}
	ready = coro__slot_wait(slot, pd_abort, pd);
	if (deadline >= 0)
		atomic_store(&pd->rdeadline, PD_NO_DEADLINE);
	if (ready)
		return 1;
	if (atomic_load(&pd->ref) & REF_CLOSING)
		return -EBADF;
	if (atomic_load(&pd->rt->cancelled))
		return -ECANCELED;
	return deadline >= 0 && coro__now() >= deadline ? -ETIMEDOUT : 0;
}

void coro_rt_cancel_io(struct coro_rt *rt)
{
	struct coro__pd *chunk;
	unsigned i, j;

	atomic_store(&rt->cancelled, true);
	pthread_mutex_lock(&pd_lock);
	for (i = 0; i < PD_CHUNKS; i++) {
		chunk = atomic_load(&pd_chunks[i]);
		for (j = 0; chunk && j < PD_CHUNK; j++) {
			if (!atomic_load(&chunk[j].registered) ||
			    chunk[j].rt != rt)
				continue;
			coro__slot_unblock(&chunk[j].rg, false);
			coro__slot_unblock(&chunk[j].wg, false);
		}
	}
	pthread_mutex_unlock(&pd_lock);
}

int coro_close(int fd)
{
	struct coro__pd *pd = pd_lookup(fd, false);
	unsigned s, closing = REF_CLOSING;

	if (!pd || !atomic_load(&pd->registered))
		return close(fd) < 0 ? -errno : 0;
	s = atomic_fetch_or(&pd->ref, REF_CLOSING);
	if (s & REF_CLOSING)
		return -EBADF;
	coro__slot_unblock(&pd->rg, false);
	coro__slot_unblock(&pd->wg, false);
	if (!(s & REF_COUNT) &&
	    atomic_compare_exchange_strong(&pd->ref, &closing,
					   REF_CLOSING | REF_CLOSED))
		pd_close_now(pd);
	return 0;
}

/*
 * A short read from a stream socket emptied it, and whatever arrives next
 * brings an edge. So the next read waits for that edge first instead of
 * meeting EAGAIN: one system call less per request and reply (nginx clears
 * rev->ready after a short recv the same way). Not after a full read (more
 * may be queued) nor for other fds, where a short read (a tty line, a
 * datagram) can leave more behind. Nor once EOF or an error was reported:
 * the FIN may have come with the data whose edge this reader used up, and a
 * read at EOF never blocks. Nor after a cancel, so that data already there
 * is still read.
 */
static bool pd_wait_first(struct coro__pd *pd)
{
	return atomic_exchange(&pd->drained, false) && !atomic_load(&pd->hup) &&
	       !atomic_load(&pd->rt->cancelled);
}

ssize_t coro_read_timeout(int fd, void *buf, size_t len, int timeout_ms)
{
	struct coro__pd *pd;
	int64_t deadline;
	ssize_t n = 0;
	bool wait;
	int err = pd_acquire(fd, &pd);

	if (err)
		return err;
	deadline = pd_deadline(timeout_ms);
	for (wait = pd_wait_first(pd);; wait = true) {
		if (wait && (n = pd_wait(pd, &pd->rg, deadline)) < 0)
			break;
		while ((n = read(fd, buf, len)) < 0 && errno == EINTR)
			;
		if (n >= 0 || (n = -errno) != -EAGAIN)
			break;
	}
	if (n > 0 && (size_t)n < len && pd->is_stream)
		atomic_store(&pd->drained, true);
	pd_release(pd);
	return n;
}

ssize_t coro_read(int fd, void *buf, size_t len)
{
	return coro_read_timeout(fd, buf, len, -1);
}

ssize_t coro_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	struct coro__pd *pd;
	size_t done = 0;
	ssize_t n = 0;
	int err = pd_acquire(fd, &pd);

	if (err)
		return err;
	while (done < len) {
		n = pd->is_sock ? send(fd, p + done, len - done, MSG_NOSIGNAL)
				: write(fd, p + done, len - done);
		if (n >= 0) {
			done += (size_t)n;
			continue;
		}
		n = -errno;
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN || (n = pd_wait(pd, &pd->wg, -1)) < 0)
			break;
	}
	pd_release(pd);
	return n < 0 ? n : (ssize_t)len;
}

int coro_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	struct coro__pd *pd;
	int n, err = pd_acquire(fd, &pd);

	if (err)
		return err;
	for (;;) {
		n = accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (n >= 0) {
			/* A fresh number: drop what a close(2) left behind. */
			pd_forget(n);
			break;
		}
		n = -errno;
		if (n == -EINTR || n == -ECONNABORTED)
			continue;
		if (n != -EAGAIN || (n = pd_wait(pd, &pd->rg, -1)) < 0)
			break;
	}
	pd_release(pd);
	return n;
}

/*
 * Waits for fd to turn readable; with drained_only, only if its next read
 * would wait first (pd_wait_first()). Either way that read is due now.
 */
static int pd_wait_readable(int fd, int timeout_ms, bool drained_only)
{
	struct coro__pd *pd;
	int64_t deadline;
	int err = pd_acquire(fd, &pd);

	if (err)
		return err;
	deadline = pd_deadline(timeout_ms);
	if (!drained_only || pd_wait_first(pd))
		while (!(err = pd_wait(pd, &pd->rg, deadline)))
			;
	atomic_store(&pd->drained, false);
	pd_release(pd);
	return err < 0 ? err : 0;
}

int coro_wait_readable(int fd, int timeout_ms)
{
	return pd_wait_readable(fd, timeout_ms, false);
}

int coro_wait_input(int fd, int timeout_ms)
{
	return pd_wait_readable(fd, timeout_ms, true);
}
