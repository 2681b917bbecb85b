/*
 * stop - graceful shutdown on SIGTERM and SIGINT.
 *
 * The signal handler only does async-signal-safe things: it sets a flag,
 * makes an eventfd readable, and calls shutdown(SHUT_RD) on the watched
 * descriptors, which wakes a thread blocked in accept() (it fails) or in
 * read() (it returns what is queued, then 0). Models then stop accepting,
 * answer every request they have already received, and return 0.
 */
#ifndef FIBD_CORE_STOP_H
#define FIBD_CORE_STOP_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

/* How many descriptors stop_watch() can hold. */
#define STOP_WATCH_MAX 64

/*
 * Installs the SIGTERM and SIGINT handlers (without SA_RESTART, so blocking
 * calls return EINTR) and creates the eventfd. Call once, early, before any
 * thread or child exists. Returns 0 or -errno.
 */
int stop_install(void);

/*
 * In a child after fork(): gives the child an eventfd of its own (the
 * parent's is shared across fork) and forgets the parent's watches.
 * Returns 0 or -errno.
 */
int stop_after_fork(void);

/* True once SIGTERM or SIGINT arrived (or stop_request() was called). */
bool stop_requested(void);

/* Asks for a stop as a signal would, from ordinary code. */
void stop_request(void);

/*
 * An eventfd that becomes (and stays) readable when a stop is requested.
 * Event loops add it to their epoll set. Never read from it.
 */
int stop_eventfd(void);

/*
 * Has the handler shutdown(fd, SHUT_RD) on a stop. Returns a slot for
 * stop_unwatch(), or -ENOSPC. Watch only listeners that live until exit, or
 * connections of a single-threaded process, which unwatch before closing:
 * the handler must never meet a descriptor number that was reused.
 */
int stop_watch(int fd);
void stop_unwatch(int slot);

/*
 * Every thread but the one that called stop_install() should run with
 * SIGTERM and SIGINT blocked, so that the kernel always hands a stop to
 * that thread. Otherwise the handler may run on any thread, in any state:
 * TSan defers it until the thread that took the signal next enters libc,
 * and a loop thread that took it on its way into a wait that never ends
 * (no stop, no traffic) never ran it: runs of the test suite hung.
 *
 * stop_signals_block() blocks both in the calling thread and saves the old
 * mask in *old; threads it then creates inherit the block, and
 * stop_signals_restore() puts *old back. stop_thread_create() wraps
 * pthread_create() in the pair and returns 0 or -errno.
 */
void stop_signals_block(sigset_t *old);
void stop_signals_restore(const sigset_t *old);
int stop_thread_create(pthread_t *thread, const pthread_attr_t *attr,
		       void *(*fn)(void *), void *arg);

#endif
