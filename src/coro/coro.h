/*
 * coro - goroutine-style coroutines in C: an M:N scheduler with work
 * stealing and an epoll netpoller.
 *
 * How it maps onto Go's runtime (G, M, P):
 *
 *   G  struct coro: a coroutine with its own mmap'd stack (guard page at
 *      the low end, default 64 KiB, stacks reused from a bounded pool).
 *      Stacks do not grow as Go's do: size them for the deepest call.
 *   M  a worker thread. Each one runs its scheduler loop on its own thread
 *      stack ("g0" in Go) and switches into coroutines with a hand-written
 *      x86-64 context switch (switch.S); a coroutine always switches back
 *      to g0, never straight into another coroutine, as Go's mcall does.
 *   P  folded into M: each worker owns a local run queue (a mutex-protected
 *      FIFO). There is no global run queue; readying a coroutine from a
 *      worker puts it on that worker's queue, from any other thread on a
 *      worker picked round-robin. Idle workers steal half a victim's queue.
 *
 *   worker 0           worker 1           ...   offload threads
 *   [g0 loop]          [g0 loop]                (coro_offload jobs)
 *   runq: G G G  <-steal-  runq: G
 *       \                   /
 *        +-- netpoller: one epoll set, fds registered once (EPOLLET) --+
 *
 * The netpoller has no thread of its own. A worker that finds no work
 * spins briefly, then sleeps in epoll_wait on the one shared epoll set,
 * with the nearest timer as timeout. All idle workers sleep there, and the
 * kernel wakes one waiter per event, each taking one event, so the worker
 * woken by a readable fd runs that fd's coroutine itself: no hand-off
 * between threads on the request path. Work queued while everyone sleeps
 * rings a doorbell (an eventfd in the same set), which wakes one sleeper;
 * a new deadline rings only if no sleeper would wake for it anyway. Busy
 * workers poll without blocking when their queue runs dry (if nobody
 * sleeps in epoll_wait) and every 61 scheduling rounds, so I/O is not
 * starved by a long queue. The per-fd parking word follows Go's pollDesc
 * (pdReady/pdWait), so a readiness edge that lands between "got EAGAIN"
 * and "parked" is never lost.
 *
 * There is no preemption: a coroutine runs until it blocks, yields or
 * returns. With N workers, N coroutines computing at once stall everyone
 * else, timers and I/O included. coro_offload() is the way out: it runs a
 * blocking or long function on a small pool of plain threads while the
 * coroutine is parked, as Go hands blocking syscalls to extra threads.
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno on failure; constructors return NULL and set errno. The I/O calls
 * must be made from a coroutine (else -EPERM). Descriptors used with them
 * are made non-blocking and registered on first use; close them with
 * coro_close(), never with close(); a descriptor belongs to one runtime.
 * Threads started here inherit the creator's signal mask. Everything is
 * thread-safe. Under ASan and TSan every switch is annotated (san.h).
 */
#ifndef FIBD_CORO_CORO_H
#define FIBD_CORO_CORO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct coro_rt;
struct coro;

struct coro_rt_opts {
	unsigned workers;	  /* worker threads (Ms); 0: online CPUs */
	size_t stack_size;	  /* usable bytes per stack; 0: 64 KiB */
	unsigned stack_cache;	  /* idle stacks kept for reuse; 0: 256 */
	unsigned offload_threads; /* threads behind coro_offload(); 0: 2 */
};

/*
 * Starts a runtime: its workers, its netpoller and its offload threads.
 * opts may be NULL for the defaults. Returns NULL with errno set on failure.
 */
struct coro_rt *coro_rt_new(const struct coro_rt_opts *opts);

/* Blocks the calling thread (not a coroutine) until no coroutine is alive. */
void coro_rt_wait(struct coro_rt *rt);

/*
 * coro_rt_wait(), then stops and joins every thread and frees everything.
 * A coroutine that never finishes makes this hang: that is the caller's bug.
 */
void coro_rt_free(struct coro_rt *rt);

/*
 * Stop switch for servers: every coroutine blocked in coro_read, coro_write,
 * coro_accept or coro_wait_readable wakes with -ECANCELED, and from now on
 * those calls return -ECANCELED instead of blocking (calls that need not
 * block still succeed, so data already received can be answered).
 * Safe from any thread, not from a signal handler.
 */
void coro_rt_cancel_io(struct coro_rt *rt);

/* The runtime of the calling coroutine, or NULL outside one. */
struct coro_rt *coro_self_rt(void);

/*
 * Creates a joinable coroutine running fn(arg); the caller must
 * coro_join() it exactly once. Returns NULL with errno (ENOMEM) on failure.
 * From a coroutine it goes on the caller's worker queue, like `go` in Go.
 */
struct coro *coro_spawn(struct coro_rt *rt, void (*fn)(void *), void *arg);

/* Like coro_spawn() but detached: freed when fn returns. 0 or -ENOMEM. */
int coro_go(struct coro_rt *rt, void (*fn)(void *), void *arg);

/* Waits until co has returned and frees it. From a coroutine or a thread. */
void coro_join(struct coro *co);

/* Lets the other runnable coroutines of this worker run. No-op outside. */
void coro_yield(void);

/* Parks the coroutine for ms milliseconds. 0, or -EPERM outside one. */
int coro_sleep(unsigned ms);

/*
 * Runs fn(arg) on an offload thread while the calling coroutine is parked,
 * so a blocking or long call does not hold a worker. Outside a coroutine it
 * just calls fn(arg). Returns 0.
 */
int coro_offload(void (*fn)(void *), void *arg);

/* ---- I/O through the netpoller: call from a coroutine ---------------- */

/*
 * read(2) that parks instead of EAGAIN. Bytes read (0 at EOF) or -errno.
 * After a short read from a stream socket the next call waits for data
 * before it reads (the socket was empty), saving the read that would meet
 * EAGAIN: so read such a socket only through these calls.
 */
ssize_t coro_read(int fd, void *buf, size_t len);

/* coro_read() for at most timeout_ms milliseconds (-1: no limit), then
 * -ETIMEDOUT. */
ssize_t coro_read_timeout(int fd, void *buf, size_t len, int timeout_ms);

/* Writes all len bytes, parking as needed (no SIGPIPE). len or -errno. */
ssize_t coro_write(int fd, const void *buf, size_t len);

/*
 * accept4(2) that parks instead of EAGAIN. The new fd is non-blocking and
 * close-on-exec. Returns it, or -errno (ECONNABORTED and EINTR are retried).
 */
int coro_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);

/*
 * Waits until fd is readable (or at EOF or in error), at most timeout_ms
 * milliseconds (-1: no limit). Returns 0, -ETIMEDOUT, -ECANCELED or -EBADF.
 * Readiness is an edge: call it only after a read returned EAGAIN, or on a
 * fd not read yet, or it may wait for the next arrival.
 */
int coro_wait_readable(int fd, int timeout_ms);

/*
 * Waits, as coro_wait_readable(), when coro_read would wait before reading
 * (the last read of the stream socket fd was short, so it was emptied);
 * otherwise returns 0 at once. Lets a caller wait for input before it
 * sets a buffer aside for it. It may return with nothing to read (an edge
 * came while nobody waited): the read after it then meets EAGAIN and waits,
 * as it would have. Same returns as coro_wait_readable().
 */
int coro_wait_input(int fd, int timeout_ms);

/*
 * Closes a descriptor used with the calls above: coroutines blocked on it
 * wake with -EBADF. If another coroutine is inside a call on fd, the
 * close(2) itself is done when that call returns. Returns 0 or -EBADF.
 * Works outside coroutines too.
 */
int coro_close(int fd);

/* ---- Synchronisation (callable from coroutines and plain threads) ----- */

/*
 * An auto-reset event with at most one waiter at a time: signal() wakes the
 * waiter, or, if there is none, lets the next wait() return at once.
 */
struct coro_event {
	_Atomic uintptr_t slot;
};
#define CORO_EVENT_INIT                                                        \
	{                                                                      \
		0                                                              \
	}
void coro_event_signal(struct coro_event *ev);
void coro_event_wait(struct coro_event *ev);

/*
 * A wait group, as Go's sync.WaitGroup: add(n) before starting work,
 * done() when each piece ends, wait() until the count is zero. One waiter
 * at a time. The group may be freed as soon as wait() returns.
 */
struct coro_wg {
	_Atomic unsigned long state; /* count << 1 | a waiter is parked */
	_Atomic uintptr_t slot;
};
#define CORO_WG_INIT                                                           \
	{                                                                      \
		0, 0                                                           \
	}
void coro_wg_add(struct coro_wg *wg, unsigned long n);
void coro_wg_done(struct coro_wg *wg);
void coro_wg_wait(struct coro_wg *wg);

/* ---- Observability ---------------------------------------------------- */

struct coro_worker_stats {
	uint64_t runs;	 /* coroutine switches into this worker */
	uint64_t stolen; /* coroutines this worker stole from others */
	uint64_t polls;	 /* non-blocking epoll_wait calls */
	uint64_t parks;	 /* times it slept in epoll_wait */
};

struct coro_rt_stats {
	unsigned workers;
	unsigned long live;	/* coroutines not yet finished */
	uint64_t stacks_mapped; /* mmap calls for stacks, ever */
	uint64_t stacks_cached; /* stacks idle in the pool now */
};

/* Fills st. Returns 0, or -EINVAL if worker is out of range. */
int coro_worker_stats(struct coro_rt *rt, unsigned worker,
		      struct coro_worker_stats *st);
void coro_rt_stats(struct coro_rt *rt, struct coro_rt_stats *st);

#endif
