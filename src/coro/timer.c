/*
 * timer - deadlines for coro_sleep() and timed waits: one binary min-heap
 * per runtime under a mutex.
 *
 * Nobody ticks. Idle workers sleep in epoll_wait until the nearest
 * deadline, and busy workers check timer_next (one atomic load) now and
 * then. A timer's fire() runs under the lock, so once coro__timer_del()
 * returns the timer is neither in the heap nor firing, and its memory
 * (often a coroutine's stack) may go.
 *
 * A new earliest deadline rings a sleeper awake only if no sleeper would
 * wake by then anyway (each worker's sleep_until, as Go's wakeNetPoller
 * reads sched.pollUntil). A read with an idle timeout queues a timer when
 * its connection has none queued by that deadline (netpoll.c keeps one per
 * fd, lazily), and a lone connection's timer is then the earliest: without
 * this check that would cost an eventfd write and a wake-up of the other
 * worker. Sleepers publish sleep_until and then read timer_next again;
 * adders store timer_next and then read sleep_until (all seq_cst), so
 * either the sleeper sees the new deadline or the adder sees the sleeper.
 * A sleeper counted on may wake early (an fd, the doorbell) and then run a
 * long coroutine, and a ring may be absorbed by a pending one: so a worker
 * just woken, or that drained the doorbell, checks again before it runs a
 * coroutine (coro__timers_cover), and rings for the deadline if nobody
 * else sleeps until it. Not at once on waking: a worker that goes back to
 * sleep covers the deadline itself, and ringing then would only wake
 * itself again, round after round, while the sleeper it meant stays put.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

int64_t coro__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int coro__timers_init(struct coro_rt *rt)
{
	rt->heap = NULL;
	rt->ntimers = rt->heap_cap = 0;
	atomic_init(&rt->timer_next, INT64_MAX);
	return -pthread_mutex_init(&rt->timer_lock, NULL);
}

void coro__timers_destroy(struct coro_rt *rt)
{
	free(rt->heap);
	pthread_mutex_destroy(&rt->timer_lock);
}

/* Room for one more timer. Returns 0 or -ENOMEM. */
static int heap_grow(struct coro_rt *rt)
{
	struct coro__timer **heap;
	size_t cap;

	if (rt->ntimers < rt->heap_cap)
		return 0;
	cap = rt->heap_cap ? 2 * rt->heap_cap : 64;
	heap = realloc(rt->heap, cap * sizeof(*heap));
	if (!heap)
		return -ENOMEM;
	rt->heap = heap;
	rt->heap_cap = cap;
	return 0;
}

static void heap_set(struct coro_rt *rt, size_t i, struct coro__timer *t)
{
	rt->heap[i] = t;
	t->idx = i;
}

static void sift_up(struct coro_rt *rt, size_t i)
{
	struct coro__timer *t = rt->heap[i];

	while (i > 0 && rt->heap[(i - 1) / 2]->when > t->when) {
		heap_set(rt, i, rt->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(rt, i, t);
}

static void sift_down(struct coro_rt *rt, size_t i)
{
	struct coro__timer *t = rt->heap[i];
	size_t c;

	while ((c = 2 * i + 1) < rt->ntimers) {
		if (c + 1 < rt->ntimers &&
		    rt->heap[c + 1]->when < rt->heap[c]->when)
			c++;
		if (rt->heap[c]->when >= t->when)
			break;
		heap_set(rt, i, rt->heap[c]);
		i = c;
	}
	heap_set(rt, i, t);
}

/* Queues t (idle, with room for it) at when. */
static void heap_insert(struct coro_rt *rt, struct coro__timer *t, int64_t when)
{
	t->when = when;
	atomic_store(&t->queued_when, when);
	rt->heap[rt->ntimers++] = t;
	sift_up(rt, rt->ntimers - 1);
}

static void heap_remove(struct coro_rt *rt, size_t i)
{
	struct coro__timer *last = rt->heap[--rt->ntimers];

	rt->heap[i]->idx = TIMER_IDLE;
	atomic_store(&rt->heap[i]->queued_when, INT64_MAX);
	if (i == rt->ntimers)
		return;
	heap_set(rt, i, last);
	sift_down(rt, i);
	sift_up(rt, last->idx);
}

static void publish_next(struct coro_rt *rt)
{
	atomic_store(&rt->timer_next,
		     rt->ntimers ? rt->heap[0]->when : INT64_MAX);
}

/* Will a worker asleep in epoll_wait wake by when on its own? */
static bool sleeper_wakes_by(struct coro_rt *rt, int64_t when)
{
	unsigned i;

	for (i = 0; i < rt->nworkers; i++)
		if (atomic_load(&rt->workers[i].sleep_until) <= when)
			return true;
	return false;
}

int coro__timer_add(struct coro_rt *rt, struct coro__timer *t)
{
	return coro__timer_arm_by(rt, t, t->when);
}

int coro__timer_arm_by(struct coro_rt *rt, struct coro__timer *t, int64_t when)
{
	bool earliest;
	int err = 0;

	pthread_mutex_lock(&rt->timer_lock);
	if (t->idx != TIMER_IDLE) {
		if (t->when > when) {
			t->when = when;
			atomic_store(&t->queued_when, when);
			sift_up(rt, t->idx);
		}
	} else if (!(err = heap_grow(rt))) {
		heap_insert(rt, t, when);
	}
	earliest = !err && rt->heap[0] == t;
	publish_next(rt);
	pthread_mutex_unlock(&rt->timer_lock);
	if (earliest)
		coro__timers_cover(rt);
	return err;
}

/* It just left the heap, so there is room: nothing to allocate. */
void coro__timer_requeue(struct coro_rt *rt, struct coro__timer *t,
			 int64_t when)
{
	heap_insert(rt, t, when);
}

void coro__timer_del(struct coro_rt *rt, struct coro__timer *t)
{
	pthread_mutex_lock(&rt->timer_lock);
	if (t->idx != TIMER_IDLE) {
		heap_remove(rt, t->idx);
		publish_next(rt);
	}
	pthread_mutex_unlock(&rt->timer_lock);
}

void coro__timers_run(struct coro_rt *rt)
{
	struct coro__timer *t;
	int64_t now = coro__now();

	if (atomic_load(&rt->timer_next) > now)
		return;
	pthread_mutex_lock(&rt->timer_lock);
	while (rt->ntimers && (t = rt->heap[0])->when <= now) {
		heap_remove(rt, 0);
		t->fire(t);
	}
	publish_next(rt);
	pthread_mutex_unlock(&rt->timer_lock);
}

static int timeout_ms(int64_t when)
{
	int64_t d;

	if (when == INT64_MAX)
		return -1;
	d = when - coro__now();
	if (d <= 0)
		return 0;
	d = (d + 999999) / 1000000;
	return d > INT_MAX ? INT_MAX : (int)d;
}

int coro__timers_sleep_begin(struct coro__worker *w)
{
	struct coro_rt *rt = w->rt;
	int64_t next = atomic_load(&rt->timer_next), again;

	w->cover = false; /* asleep, it wakes for the deadline itself */
	for (;;) {
		atomic_store(&w->sleep_until, next);
		again = atomic_load(&rt->timer_next);
		if (again >= next)
			break;
		next = again; /* a deadline came in meanwhile */
	}
	return timeout_ms(next);
}

void coro__timers_sleep_end(struct coro__worker *w)
{
	atomic_store(&w->sleep_until, INT64_MAX);
}

void coro__timers_cover(struct coro_rt *rt)
{
	int64_t next = atomic_load(&rt->timer_next);

	if (next != INT64_MAX && atomic_load(&rt->nidle) &&
	    !sleeper_wakes_by(rt, next))
		coro__netpoll_ring(rt); /* a sleeper recomputes its timeout */
}

struct sleeper {
	struct coro__timer t; /* first: fire() gets it */
	_Atomic uintptr_t slot;
};

static void sleeper_fire(struct coro__timer *t)
{
	coro__slot_unblock(&((struct sleeper *)t)->slot, true);
}

int coro_sleep(unsigned ms)
{
	struct coro_rt *rt = coro_self_rt();
	struct sleeper s = {.t.fire = sleeper_fire, .t.idx = TIMER_IDLE};
	int err;

	if (!rt)
		return -EPERM;
	s.t.when = coro__now() + (int64_t)ms * 1000000;
	err = coro__timer_add(rt, &s.t);
	if (err)
		return err;
	while (!coro__slot_wait(&s.slot, NULL, NULL))
		;
	coro__timer_del(rt, &s.t); /* waits out a fire() still running */
	return 0;
}
