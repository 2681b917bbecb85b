/*
 * sched - the workers (Go's Ms with their Ps): run queues, stealing, the
 * switch in and out of coroutines, and how idle workers sleep and wake.
 *
 * Every switch goes through g0, the worker's own thread stack: a coroutine
 * that parks switches to g0, and only then, off the coroutine's stack, does
 * g0 publish it as parked (park_commit). So no other worker can resume a
 * coroutine whose registers are still being saved.
 *
 * Idle protocol (a Dekker pair: every access below is seq_cst):
 *   worker:   spin a little; nspinning--; nidle++; look at every queue
 *             again; sleep in epoll_wait.
 *   producer: push to a queue (len++); if nobody spins and someone
 *             sleeps, ring the doorbell, which wakes one sleeper.
 * Either the worker's second look sees the push, or the producer sees the
 * worker asleep. A spinner that finds work and was the last spinner wakes
 * another (Go's resetspinning), so queued work never waits on a sleeper.
 * A ring made while one is pending is absorbed into it (one eventfd write
 * for a burst), so whoever drains the doorbell answers for all of them: it
 * counts every queue, rings again if more than it takes is waiting, and
 * looks at the timers (coro__timers_cover).
 *
 * What one request costs on an idle worker, as Go's netpoller does it: the
 * edge wakes one sleeper in epoll_wait, which takes that one event (the
 * kernel wakes the next sleeper for the next), runs the coroutine, and
 * when it parks again spins briefly and sleeps again: two system calls of
 * the scheduler's own (the blocking epoll_wait, and no doorbell) beside
 * the read, the write and the read that meets EAGAIN. The spin is short
 * (PAUSE is slow here, ~180 ns, and a spinner may hold up the very client
 * it waits for on the same CPU), and it polls the network only when no
 * worker sleeps in epoll_wait, as Go polls only with no M in netpoll:
 * otherwise the sleeper is the one the kernel wakes.
 */
#include <stdlib.h>
#include <sys/epoll.h>

#include "internal.h"
#include "san.h"

/*
 * Idle rounds before sleeping, each a look at every queue and a PAUSE, as
 * Go's spinning M tries stealing four times: work another worker queues
 * meanwhile is taken without a doorbell. Longer spins (it was 64, ~12 µs)
 * did not catch the next request of a ping-pong client, and cost it CPU.
 */
#define SPIN_ROUNDS 4
/* Busy workers look at timers and the network every this many runs. */
#define POLL_EVERY 61

static _Thread_local struct coro__worker *tls_worker;

/*
 * A coroutine can resume on another thread, so the thread-local must be
 * read afresh after every switch; compilers may cache its address within a
 * function, hence a call they cannot see through.
 */
__attribute__((noinline)) struct coro__worker *coro__self(void)
{
	struct coro__worker *w = tls_worker;

	__asm__ volatile("" : "+r"(w)::"memory");
	return w;
}

/* ---- run queues ------------------------------------------------------- */

static void runq_append(struct coro__worker *w, struct coro *first,
			struct coro *last, unsigned n)
{
	last->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = first;
	else
		w->head = first;
	w->tail = last;
	atomic_fetch_add(&w->len, n);
	pthread_mutex_unlock(&w->lock);
}

static struct coro *runq_pop(struct coro__worker *w)
{
	struct coro *co;

	if (!atomic_load(&w->len))
		return NULL;
	pthread_mutex_lock(&w->lock);
	co = w->head;
	if (co) {
		w->head = co->next;
		if (!w->head)
			w->tail = NULL;
		atomic_fetch_sub(&w->len, 1);
	}
	pthread_mutex_unlock(&w->lock);
	return co;
}

/* Takes half of v's queue (rounded up); runs the first, queues the rest. */
static struct coro *runq_steal(struct coro__worker *w, struct coro__worker *v)
{
	struct coro *first, *last;
	unsigned n, i;

	if (!atomic_load(&v->len))
		return NULL;
	pthread_mutex_lock(&v->lock);
	n = (atomic_load(&v->len) + 1) / 2;
	first = last = v->head;
	for (i = 1; first && i < n; i++)
		last = last->next;
	if (first) {
		v->head = last->next;
		if (!v->head)
			v->tail = NULL;
		atomic_fetch_sub(&v->len, n);
	}
	pthread_mutex_unlock(&v->lock);
	if (!first)
		return NULL;
	atomic_fetch_add_explicit(&w->stolen, n, memory_order_relaxed);
	if (first != last)
		runq_append(w, first->next, last, n - 1);
	return first;
}

/* Coroutines queued on all workers (a snapshot). */
static unsigned runq_total(struct coro_rt *rt)
{
	unsigned i, n = 0;

	for (i = 0; i < rt->nworkers; i++)
		n += atomic_load(&rt->workers[i].len);
	return n;
}

static struct coro *find_work(struct coro__worker *w)
{
	struct coro_rt *rt = w->rt;
	struct coro *co = runq_pop(w);
	unsigned i, start;

	if (co || rt->nworkers == 1)
		return co;
	w->rand = w->rand * 1103515245 + 12345;
	start = (w->rand >> 16) % rt->nworkers;
	for (i = 0; i < rt->nworkers && !co; i++) {
		struct coro__worker *v =
		    &rt->workers[(start + i) % rt->nworkers];

		if (v != w)
			co = runq_steal(w, v);
	}
	return co;
}

/* ---- making work runnable, and waking someone to run it ---------------- */

void coro__wake_idle(struct coro_rt *rt)
{
	if (!atomic_load(&rt->nspinning) && atomic_load(&rt->nidle))
		coro__netpoll_ring(rt);
}

/* On this worker's queue if we are one of rt's workers (as Go's ready()). */
void coro__ready(struct coro *co)
{
	struct coro_rt *rt = co->rt;
	struct coro__worker *w = coro__self();
	unsigned i;

	if (!w || w->rt != rt) {
		i = atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed);
		w = &rt->workers[i % rt->nworkers];
	}
	runq_append(w, co, co, 1);
	coro__wake_idle(rt);
}

/* ---- finding work when the queue is empty ------------------------------ */

/*
 * A sleeper takes one event at a time when others may sleep too: an event
 * the kernel left on the ready list wakes the next sleeper itself (each
 * edge wakes one waiter, and so do leftovers after a harvest), whereas a
 * batch taken here would have to be handed on with a doorbell, an eventfd
 * write and read per hand-off. Busy workers' polls still take a batch.
 */
static int sleep_batch(const struct coro_rt *rt)
{
	return rt->nworkers > 1 ? 1 : POLL_BATCH;
}

/*
 * Polls (timeout_ms as epoll_wait) and queues what became runnable here.
 * This worker runs the first itself; others are woken only for the rest.
 */
static void poll_here(struct coro__worker *w, int timeout_ms, bool asleep)
{
	struct epoll_event evs[POLL_BATCH];
	struct coro__list list = {NULL, NULL, 0};
	struct coro_rt *rt = w->rt;
	bool bell;
	int n;

	n = coro__netpoll_wait(rt, evs, asleep ? sleep_batch(rt) : POLL_BATCH,
			       timeout_ms);
	if (asleep) {
		atomic_fetch_sub(&rt->nidle, 1);
		coro__timers_sleep_end(w);
	}
	bell = coro__netpoll_ready(rt, evs, n, &list);
	if (list.head)
		runq_append(w, list.head, list.tail, list.n);
	/*
	 * More work than this worker takes next: wake a sleeper for the rest.
	 * After draining the doorbell that counts every queue, for the rings
	 * it absorbed were meant for work anywhere, not only here.
	 */
	if ((bell ? runq_total(rt) : atomic_load(&w->len)) > 1)
		coro__wake_idle(rt);
	coro__timers_run(rt);
	/*
	 * A sleeper just woken may be the one an adder counted on to wake for
	 * the next deadline, and the doorbell may have absorbed a timer's
	 * ring: hand the deadline on before running a coroutine (if this
	 * worker sleeps again instead, it covers the deadline itself).
	 */
	if (asleep || bell)
		w->cover = true;
}

/*
 * Sleeps in epoll_wait. Every idle worker does, on the same epoll set: the
 * kernel wakes one waiter per event, so the worker that wakes for an fd runs
 * its coroutine at once, with no hand-off to another thread. Work queued by
 * a running worker rings the doorbell (rt->evfd) instead.
 */
static struct coro *sleep_idle(struct coro__worker *w)
{
	struct coro_rt *rt = w->rt;
	struct coro *co;

	atomic_fetch_add(&rt->nidle, 1);
	co = find_work(w);
	if (co || atomic_load(&rt->stopping)) {
		atomic_fetch_sub(&rt->nidle, 1);
		return co;
	}
	atomic_fetch_add_explicit(&w->parks, 1, memory_order_relaxed);
	poll_here(w, coro__timers_sleep_begin(w), true);
	return find_work(w); /* a ring may be for work queued elsewhere */
}

static struct coro *find_idle(struct coro__worker *w)
{
	struct coro_rt *rt = w->rt;
	struct coro *co = NULL;
	int i;

	atomic_fetch_add(&rt->nspinning, 1);
	for (i = 0; i < SPIN_ROUNDS && !co; i++) {
		if (i == 0 && !atomic_load(&rt->nidle)) {
			atomic_fetch_add_explicit(&w->polls, 1,
						  memory_order_relaxed);
			poll_here(w, 0, false);
		}
		co = find_work(w);
		if (atomic_load(&rt->stopping))
			break;
		__builtin_ia32_pause();
	}
	/* Go's resetspinning: the last spinner to find work wakes another. */
	if (atomic_fetch_sub(&rt->nspinning, 1) == 1 && co)
		coro__wake_idle(rt);
	return co ? co : sleep_idle(w);
}

static struct coro *schedule(struct coro__worker *w)
{
	struct coro *co;

	if (++w->tick % POLL_EVERY == 0) {
		atomic_fetch_add_explicit(&w->polls, 1, memory_order_relaxed);
		poll_here(w, 0, false);
	}
	co = runq_pop(w);
	return co ? co : find_idle(w);
}

/* ---- switching -------------------------------------------------------- */

static void finish(struct coro *co)
{
	struct coro_rt *rt = co->rt;

	coro__stack_put(&rt->stacks, co->stack);
	tsan_destroy(co->tsan_fiber);
	/* Not live once joinable: a joiner (itself live) sees live drop. */
	if (atomic_fetch_sub(&rt->live, 1) == 1)
		coro__thread_notify();
	if (co->detached)
		free(co);
	else
		coro__slot_unblock(&co->join, true);
}

static void run(struct coro__worker *w, struct coro *co)
{
	for (;;) {
		co->state = CORO_RUNNING;
		w->cur = co;
		atomic_fetch_add_explicit(&w->runs, 1, memory_order_relaxed);
		tsan_switch(co->tsan_fiber);
		san_start_switch(&w->asan_fake, co->stack, co->stack_len);
		coro__switch(&w->sp, co->sp);
		san_finish_switch(w->asan_fake);
		w->cur = NULL;
		switch (co->state) {
		case CORO_YIELD:
			runq_append(w, co, co, 1);
			return;
		case CORO_PARK:
			if (co->park_commit(co, co->park_arg))
				return; /* co is not ours any more */
			continue;	/* the wake-up came first: go on */
		case CORO_EXIT:
			finish(co);
			return;
		case CORO_RUNNING:
			abort();
		}
	}
}

static void switch_to_g0(struct coro *co, bool exiting)
{
	struct coro__worker *w = coro__self();

	tsan_switch(w->tsan_fiber);
	/* NULL: ASan may drop this stack's fake frames for good. */
	san_start_switch(exiting ? NULL : &co->asan_fake, w->stack_lo,
			 w->stack_len);
	coro__switch(&co->sp, w->sp);
	san_finish_switch(co->asan_fake);
}

void coro__park(bool (*commit)(struct coro *co, void *arg), void *arg)
{
	struct coro *co = coro__self()->cur;

	co->park_commit = commit;
	co->park_arg = arg;
	co->state = CORO_PARK;
	switch_to_g0(co, false);
}

void coro_yield(void)
{
	struct coro__worker *w = coro__self();

	if (!w || !w->cur)
		return;
	w->cur->state = CORO_YIELD;
	switch_to_g0(w->cur, false);
}

/* Where coro__trampoline lands: the first instructions of a coroutine. */
static void coro_main(void *arg)
{
	struct coro *co = arg;

	san_finish_switch(NULL);
	co->fn(co->arg);
	co->state = CORO_EXIT;
	switch_to_g0(co, true);
	__builtin_unreachable();
}

/* A new coroutine's first frame: the first switch to it runs coro_main. */
void coro__frame_init(struct coro *co)
{
	co->sp = coro__first_frame(co->stack, co->stack_len, coro_main, co);
}

void *coro__worker_main(void *arg)
{
	struct coro__worker *w = arg;
	pthread_attr_t attr;
	struct coro *co;

	tls_worker = w;
	w->rand = w->id * 2654435761u + 1;
	if (!pthread_getattr_np(pthread_self(), &attr)) {
		pthread_attr_getstack(&attr, &w->stack_lo, &w->stack_len);
		pthread_attr_destroy(&attr);
	}
	w->tsan_fiber = tsan_current();
	for (;;) {
		co = schedule(w);
		if (co && w->cover) {
			w->cover = false;
			coro__timers_cover(w->rt);
		}
		if (co)
			run(w, co);
		else if (atomic_load(&w->rt->stopping))
			break;
	}
	coro__netpoll_ring_force(w->rt); /* wake the next one to leave */
	tls_worker = NULL;
	return NULL;
}
