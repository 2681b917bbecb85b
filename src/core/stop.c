#include "stop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static atomic_bool stop_flag;
static atomic_bool drain_flag; /* see stop_draining() */
static int stop_efd = -1;
static atomic_int stop_watched[STOP_WATCH_MAX];

/*
 * Only async-signal-safe calls from here on down: the stop thread calls
 * this, and so does the handler (STOP_BY_HANDLER).
 */
static void stop_wake_all(void)
{
	uint64_t one = 1;

	atomic_store(&stop_flag, true);
	if (stop_efd >= 0 && write(stop_efd, &one, sizeof(one)) < 0) {
		/* The counter is already non-zero: readable either way. */
	}
	for (int i = 0; i < STOP_WATCH_MAX; i++) {
		int fd = atomic_load(&stop_watched[i]);
		if (fd >= 0)
			shutdown(fd, SHUT_RD);
	}
}

/* A stop's drain: begun by its first signal, ended by the timer. */
static unsigned stop_drain_ms;

/* True when this signal begins a drain rather than the stop itself. */
static bool stop_drain_begins(int sig)
{
	if (!stop_drain_ms || sig == SIGALRM || stop_requested() ||
	    atomic_load(&drain_flag))
		return false;
	atomic_store(&drain_flag, true);
	return true;
}

static void stop_on_signal(int sig)
{
	struct itimerval drain = {.it_value = {
				      .tv_sec = stop_drain_ms / 1000,
				      .tv_usec = stop_drain_ms % 1000 * 1000,
				  }};
	int saved = errno;

	if (stop_drain_begins(sig)) {
		/* A bare system call on Linux; SIGALRM ends the drain. */
		setitimer(ITIMER_REAL, &drain, NULL);
	} else {
		atomic_store(&drain_flag, false);
		stop_wake_all();
	}
	errno = saved;
}

void stop_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGALRM);
}

/*
 * The one thread that takes the stop signals, synchronously. A drain is a
 * wait for a second signal, for at most the drain's length.
 */
static void *stop_signal_main(void *arg)
{
	struct timespec drain = {.tv_sec = stop_drain_ms / 1000,
				 .tv_nsec = stop_drain_ms % 1000 * 1000000L};
	sigset_t set;
	int sig;

	(void)arg;
	stop_sigset(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (stop_drain_begins(sig))
			while (sigtimedwait(&set, NULL, &drain) < 0 &&
			       errno == EINTR)
				;
		atomic_store(&drain_flag, false);
		stop_wake_all();
	}
	return NULL;
}

int stop_install(enum stop_by by, unsigned drain_ms)
{
	struct sigaction sa;
	pthread_t thread;
	sigset_t set;
	int err;

	for (int i = 0; i < STOP_WATCH_MAX; i++)
		atomic_store(&stop_watched[i], -1);
	stop_drain_ms = drain_ms;
	stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (stop_efd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stop_on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocked calls return EINTR */
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0 ||
	    sigaction(SIGALRM, &sa, NULL) < 0)
		return -errno;
	if (by == STOP_BY_HANDLER)
		return 0;
	stop_sigset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	err = pthread_create(&thread, NULL, stop_signal_main, NULL);
	if (err)
		return -err; /* fibd gives up: it could not be stopped */
	pthread_setname_np(thread, STOP_THREAD_NAME);
	pthread_detach(thread);
	return 0;
}

int stop_after_fork(void)
{
	int fd = eventfd(stop_requested(), EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (stop_efd >= 0)
		close(stop_efd);
	stop_efd = fd;
	for (int i = 0; i < STOP_WATCH_MAX; i++)
		atomic_store(&stop_watched[i], -1);
	return 0;
}

bool stop_draining(void)
{
	return atomic_load_explicit(&drain_flag, memory_order_relaxed);
}

bool stop_requested(void)
{
	return atomic_load(&stop_flag);
}

void stop_request(void)
{
	stop_wake_all();
}

int stop_eventfd(void)
{
	return stop_efd;
}

int stop_watch(int fd)
{
	for (int i = 0; i < STOP_WATCH_MAX; i++) {
		int expect = -1;
		if (atomic_compare_exchange_strong(&stop_watched[i], &expect,
						   fd)) {
			/* A stop that came just before would have missed fd. */
			if (stop_requested())
				shutdown(fd, SHUT_RD);
			return i;
		}
	}
	return -ENOSPC;
}

void stop_unwatch(int slot)
{
	if (slot >= 0 && slot < STOP_WATCH_MAX)
		atomic_store(&stop_watched[slot], -1);
}
