/*
 * internal - what the files of src/coro share. Not for users of the runtime.
 *
 * Names shared between files carry the coro__ prefix (libuv's uv__ habit);
 * everything else is static.
 */
#ifndef FIBD_CORO_INTERNAL_H
#define FIBD_CORO_INTERNAL_H

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "coro.h"

static inline void coro__futex_wait(_Atomic uint32_t *f, uint32_t val)
{
	syscall(SYS_futex, f, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static inline void coro__futex_wake(_Atomic uint32_t *f, int n)
{
	syscall(SYS_futex, f, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* ---- the context switch (switch.S) ------------------------------------ */

/* Saves the callee-saved state on the stack, stores sp in *save, resumes. */
void coro__switch(void **save, void *sp);
/* First "return address" of a fresh stack: calls r13(r12), never returns. */
void coro__trampoline(void);

/*
 * Builds, at the top of a fresh stack[0..len), the frame coro__switch pops
 * (see switch.S), so that the first switch to it calls entry(arg), which
 * must never return. Returns the stack pointer to switch to.
 */
static inline void *coro__first_frame(void *stack, size_t len,
				      void (*entry)(void *), void *arg)
{
	uintptr_t top = ((uintptr_t)stack + len) & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)(top - 80);

	sp[0] = 0x1f80 | (uint64_t)0x037f << 32; /* default mxcsr, fpu cw */
	sp[1] = sp[2] = 0;			 /* r15, r14 */
	sp[3] = (uintptr_t)entry;		 /* r13: called */
	sp[4] = (uintptr_t)arg;			 /* r12: its argument */
	sp[5] = sp[6] = 0;			 /* rbx; rbp ends frame chain */
	sp[7] = (uintptr_t)coro__trampoline;	 /* at top-24: 8 mod 16 */
	return sp;
}

/* ---- parking slots ---------------------------------------------------- */

/*
 * A parking slot is one word (Go's pollDesc rg/wg): SLOT_NIL, SLOT_READY (a
 * wake-up came with nobody waiting; the next wait consumes it), SLOT_WAIT (a
 * coroutine is on its way to park), SLOT_THREAD (a plain thread waits), or
 * the parked struct coro. Wait and unblock race only through CAS on it.
 */
#define SLOT_NIL    0
#define SLOT_READY  1
#define SLOT_WAIT   2
#define SLOT_THREAD 3

/*
 * Parks until an unblock. abort(arg) is asked after announcing the wait and
 * before parking (so a flag set before the kick is seen). Returns true when
 * woken by a "ready" unblock, false for a kick or an abort.
 */
bool coro__slot_wait(_Atomic uintptr_t *slot, bool (*abort)(void *), void *arg);
/*
 * ready: leave SLOT_READY behind if nobody waits; !ready: only kick a
 * waiter. Makes the parked coroutine runnable. Touches nothing but the
 * slot's word, so its owner may free it as soon as the waiter returns.
 */
void coro__slot_unblock(_Atomic uintptr_t *slot, bool ready);
/* A singly linked batch of coroutines to run (through co->next). */
struct coro__list {
	struct coro *head, *tail;
	unsigned n;
};
/*
 * Unblocks as coro__slot_unblock(), but a parked coroutine is added to
 * list instead of readied, so a worker can queue a batch at once.
 */
void coro__slot_take(_Atomic uintptr_t *slot, bool ready,
		     struct coro__list *list);

/* A plain thread's blocking wait for pred(arg), woken by thread_notify. */
void coro__thread_wait(bool (*pred)(void *), void *arg);
void coro__thread_notify(void);

/* ---- coroutines, workers, runtime -------------------------------------- */

enum coro_state {
	CORO_RUNNING, /* on a worker */
	CORO_YIELD,   /* back to g0, then to the tail of the run queue */
	CORO_PARK,    /* back to g0, which runs park_commit */
	CORO_EXIT,    /* fn returned: g0 frees the stack */
};

struct coro {
	void *sp; /* saved stack pointer while switched out */
	struct coro *next;
	struct coro_rt *rt;
	void (*fn)(void *);
	void *arg;
	void *stack;	  /* lowest usable byte (the guard page is below) */
	size_t stack_len; /* usable bytes */
	enum coro_state state;
	bool detached;
	bool (*park_commit)(struct coro *co, void *arg);
	void *park_arg;
	_Atomic uintptr_t join; /* slot: READY once finished */
	void *asan_fake;
	void *tsan_fiber;
};

struct coro__worker {
	struct coro_rt *rt;
	unsigned id;
	pthread_t thread;
	void *sp;	  /* g0's saved stack pointer */
	struct coro *cur; /* the coroutine running now, or NULL on g0 */
	unsigned tick;
	uint32_t rand;
	void *stack_lo; /* g0's thread stack, for ASan's fiber switch */
	size_t stack_len;
	void *asan_fake;
	void *tsan_fiber;
	/* Asleep in epoll_wait until then (CLOCK_MONOTONIC ns), else MAX. */
	_Atomic int64_t sleep_until;
	bool cover; /* woke up: see to the next deadline before running */

	_Alignas(64) pthread_mutex_t lock; /* the run queue */
	struct coro *head, *tail;
	_Atomic unsigned len;

	_Alignas(64) _Atomic uint64_t runs, stolen, polls, parks;
};

/* A stack pool: a bounded freelist of mappings of one size. */
struct coro__stacks {
	pthread_mutex_t lock;
	void *free; /* first idle stack; each stores the next at its base */
	unsigned nfree, max;
	size_t len, page;
	_Atomic uint64_t mapped;
};

struct coro__timer {
	int64_t when;			     /* CLOCK_MONOTONIC ns */
	size_t idx;			     /* heap index, or TIMER_IDLE */
	void (*fire)(struct coro__timer *t); /* under the timer lock */
	/* when while in the heap, INT64_MAX out of it: readable unlocked */
	_Atomic int64_t queued_when;
};
#define TIMER_IDLE SIZE_MAX

struct coro__pd;

struct coro_rt {
	unsigned nworkers;
	struct coro__worker *workers;
	_Atomic bool stopping;
	_Atomic unsigned long live;
	_Atomic unsigned rr;
	_Atomic int nspinning; /* workers looking for work */
	_Atomic int nidle;     /* workers asleep in epoll_wait */
	struct coro__stacks stacks;

	/* netpoller (netpoll.c) */
	int epfd, evfd;
	_Atomic int bell_pending; /* evfd rung and not yet drained */
	_Atomic bool cancelled;

	/* timers (timer.c) */
	pthread_mutex_t timer_lock;
	struct coro__timer **heap;
	size_t ntimers, heap_cap;
	_Atomic int64_t timer_next;

	/* offload pool (offload.c) */
	pthread_mutex_t off_lock;
	pthread_cond_t off_cond;
	struct coro__job *off_head, *off_tail;
	bool off_stop;
	pthread_t *off_threads;
	unsigned noff;
};

/* sched.c */
struct coro__worker *coro__self(void);
void coro__ready(struct coro *co);
void coro__park(bool (*commit)(struct coro *co, void *arg), void *arg);
void coro__wake_idle(struct coro_rt *rt);
void coro__frame_init(struct coro *co);
void *coro__worker_main(void *arg);

/* stack.c */
int coro__stacks_init(struct coro__stacks *s, size_t len, unsigned max);
void coro__stacks_destroy(struct coro__stacks *s);
void *coro__stack_get(struct coro__stacks *s);
void coro__stack_put(struct coro__stacks *s, void *stack);

/* netpoll.c */
#define POLL_BATCH 128
struct epoll_event;
int coro__netpoll_init(struct coro_rt *rt);
void coro__netpoll_destroy(struct coro_rt *rt);
/* epoll_wait for at most max (<= POLL_BATCH) events; 0 on EINTR. */
int coro__netpoll_wait(struct coro_rt *rt, struct epoll_event *evs, int max,
		       int timeout_ms);
/*
 * Collects the coroutines waiting on what evs reports into list. Returns
 * true if it drained the doorbell: the caller then answers for every ring
 * the pending bell absorbed (coro__netpoll_ring() skips while one is).
 */
bool coro__netpoll_ready(struct coro_rt *rt, struct epoll_event *evs, int n,
			 struct coro__list *list);
/* Rings the doorbell: one worker asleep in epoll_wait wakes up. */
void coro__netpoll_ring(struct coro_rt *rt);
/* The same without the "already rung" shortcut (for stopping). */
void coro__netpoll_ring_force(struct coro_rt *rt);

/* timer.c */
int64_t coro__now(void);
int coro__timers_init(struct coro_rt *rt);
void coro__timers_destroy(struct coro_rt *rt);
int coro__timer_add(struct coro_rt *rt, struct coro__timer *t);
void coro__timer_del(struct coro_rt *rt, struct coro__timer *t);
/*
 * Makes t fire by when at the latest: queues it, or moves it earlier. One
 * queued to fire sooner stays as it is, and its fire() decides again then
 * (a lazy deadline: see netpoll.c). Returns 0 or -ENOMEM.
 */
int coro__timer_arm_by(struct coro_rt *rt, struct coro__timer *t, int64_t when);
/* From inside t's fire(): queues t again, to fire at when. */
void coro__timer_requeue(struct coro_rt *rt, struct coro__timer *t,
			 int64_t when);
void coro__timers_run(struct coro_rt *rt);
/*
 * w is about to sleep in epoll_wait: publishes the deadline it will wake
 * by and returns its timeout in milliseconds (-1: none). Pair with
 * coro__timers_sleep_end(w) once awake.
 */
int coro__timers_sleep_begin(struct coro__worker *w);
void coro__timers_sleep_end(struct coro__worker *w);
/*
 * Makes sure a sleeper wakes by the earliest deadline: rings one unless a
 * sleeper's published deadline comes first or nobody sleeps (a worker
 * reads timer_next before it sleeps). Called after adding an earliest
 * timer, and before a worker just woken (it may have been counted on)
 * runs a coroutine.
 */
void coro__timers_cover(struct coro_rt *rt);

/* offload.c */
int coro__offload_init(struct coro_rt *rt, unsigned n);
void coro__offload_destroy(struct coro_rt *rt);

#endif
