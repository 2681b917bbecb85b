/*
 * stop - graceful shutdown on SIGTERM, SIGINT and SIGHUP.
 *
 * A stop sets a flag, makes an eventfd readable, and calls shutdown(SHUT_RD)
 * on the watched connections, which wakes a thread blocked in read() (it
 * returns what is queued, then 0). Accept loops wait on the eventfd, never
 * on a shut listener: shutting a listener resets every connection in its
 * accept queue. Models then take the clients already queued, answer every
 * request they have already received, and return 0.
 *
 * Lame-duck drain (--drain): the first signal begins a drain instead.
 * For that long stop_draining() is true (/healthz answers 503, so a load
 * balancer takes the instance out) and the server accepts and serves as
 * before; then the stop proceeds as above. A second signal during the
 * drain stops at once.
 *
 * Who takes the signal: in a threaded process, one thread of fibd's own,
 * named STOP_THREAD_NAME, in sigwait() (STOP_BY_THREAD). stop_install()
 * blocks both signals in the calling thread, and every thread started
 * after inherits the block, so the kernel has no other thread to hand
 * them to. No handler runs in a thread that happens to be somewhere else:
 * under TSan, which defers a handler until the thread that took the
 * signal leaves its next libc call, a main thread that took SIGTERM on
 * its way into pthread_join() never ran it, and runs of the test suite
 * hung.
 *
 * A process that forks children which run on without exec (many's
 * supervisor) stays single-threaded instead (STOP_BY_HANDLER): a fork
 * while the stop thread started could hand the child a lock that thread
 * held (ASan's allocator lock: a child's leak check at exit hung on it).
 * There, and in those children, a handler takes the signal on the one
 * thread, and does only async-signal-safe things.
 */
#ifndef FIBD_CORE_STOP_H
#define FIBD_CORE_STOP_H

#include <signal.h>
#include <stdbool.h>

/* How many descriptors stop_watch() can hold. */
#define STOP_WATCH_MAX 64

/* The thread that takes the signals (see /proc/PID/task/N/comm). */
#define STOP_THREAD_NAME "fibd-stop"

/* Who takes the signals (see above). */
enum stop_by {
	STOP_BY_THREAD,	 /* the STOP_THREAD_NAME thread, in sigwait() */
	STOP_BY_HANDLER, /* a handler, in a process that stays single-threaded
			  */
};

/*
 * Creates the eventfd and installs the handlers (without SA_RESTART, so
 * blocking calls return EINTR). With STOP_BY_THREAD, also blocks the
 * signals (stop_sigset()) in the calling thread and starts the thread that
 * takes them. drain_ms: the drain a stop begins with (0: none). Call once,
 * early, from the main thread, before any other thread or child exists.
 * Returns 0 or -errno.
 */
int stop_install(enum stop_by by, unsigned drain_ms);

/*
 * The signals a stop takes: SIGTERM, SIGINT, SIGHUP, and SIGALRM, which
 * ends a drain under STOP_BY_HANDLER. A single-threaded process blocks
 * them around its check of stop_draining() and a ppoll() that unblocks
 * them, so that none slips in between.
 */
void stop_sigset(sigset_t *set);

/*
 * In a child after fork(): gives the child an eventfd of its own (the
 * parent's is shared across fork) and forgets the parent's watches. The
 * handler takes the stop there: the parent must have used STOP_BY_HANDLER.
 * Returns 0 or -errno.
 */
int stop_after_fork(void);

/*
 * True once a stop began: its signal arrived and its drain, if any, ended
 * (or stop_request() was called).
 */
bool stop_requested(void);

/*
 * True from a stop's signal until its --drain period ends: the server
 * still accepts and serves, and /healthz answers 503 so that a load
 * balancer takes the instance out before the listener closes.
 */
bool stop_draining(void);

/* Asks for a stop, at once (no drain), from ordinary code. */
void stop_request(void);

/*
 * An eventfd that becomes (and stays) readable when a stop is requested.
 * Event loops add it to their epoll set. Never read from it.
 */
int stop_eventfd(void);

/*
 * Has a stop shutdown(fd, SHUT_RD). Returns a slot for stop_unwatch(), or
 * -ENOSPC. Watch only the connection of a serial server, which unwatches
 * before closing (never a listener: see above). The stop thread may
 * still meet that number once it is reused, but only during the stop it is
 * making, and the one socket a serial server opens then is a connection,
 * whose read side the stop shuts anyway (stop_watch() does, for a socket
 * it is given after the stop began).
 */
int stop_watch(int fd);
void stop_unwatch(int slot);

#endif
