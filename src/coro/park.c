/*
 * park - the one parking primitive everything blocks on, and what is built
 * from it: events, wait groups, and plain threads waiting for coroutines.
 *
 * A slot is Go's pollDesc rg/wg word (see internal.h). The waiter swaps
 * NIL for WAIT, switches to g0, and only there swaps WAIT for itself
 * (slot_commit); a wake-up that comes in between finds WAIT, leaves READY
 * or NIL instead, and the commit fails, so the coroutine goes on at once.
 * That is how "got EAGAIN" and "parked" close the lost-wake-up gap.
 */
#include <limits.h>

#include "internal.h"

/* Plain threads wait on one process-wide futex: such waits are rare. */
static _Atomic uint32_t thread_seq;
static _Atomic int thread_waiters;

void coro__thread_notify(void)
{
	if (!atomic_load(&thread_waiters))
		return;
	atomic_fetch_add(&thread_seq, 1);
	coro__futex_wake(&thread_seq, INT_MAX);
}

void coro__thread_wait(bool (*pred)(void *), void *arg)
{
	uint32_t seq;

	atomic_fetch_add(&thread_waiters, 1);
	for (;;) {
		seq = atomic_load(&thread_seq);
		if (pred(arg))
			break;
		coro__futex_wait(&thread_seq, seq);
	}
	atomic_fetch_sub(&thread_waiters, 1);
}

static bool slot_commit(struct coro *co, void *arg)
{
	_Atomic uintptr_t *slot = arg;
	uintptr_t wait = SLOT_WAIT;

	return atomic_compare_exchange_strong(slot, &wait, (uintptr_t)co);
}

static bool slot_left_thread(void *arg)
{
	_Atomic uintptr_t *slot = arg;

	return atomic_load(slot) != SLOT_THREAD;
}

bool coro__slot_wait(_Atomic uintptr_t *slot, bool (*abort)(void *), void *arg)
{
	struct coro__worker *w = coro__self();
	uintptr_t me = w && w->cur ? SLOT_WAIT : SLOT_THREAD;
	uintptr_t old;

	for (;;) {
		old = SLOT_READY;
		if (atomic_compare_exchange_strong(slot, &old, SLOT_NIL))
			return true;
		old = SLOT_NIL;
		if (atomic_compare_exchange_strong(slot, &old, me))
			break;
		if (old != SLOT_READY)
			__builtin_trap(); /* two waiters on one slot */
	}
	if (me == SLOT_THREAD)
		coro__thread_wait(slot_left_thread, slot);
	else if (!abort || !abort(arg))
		coro__park(slot_commit, slot);
	return atomic_exchange(slot, SLOT_NIL) == SLOT_READY;
}

void coro__slot_take(_Atomic uintptr_t *slot, bool ready,
		     struct coro__list *list)
{
	uintptr_t new = ready ? SLOT_READY : SLOT_NIL;
	uintptr_t old = atomic_load(slot);
	struct coro *co;

	do {
		if (old == SLOT_READY || (old == SLOT_NIL && !ready))
			return;
	} while (!atomic_compare_exchange_weak(slot, &old, new));
	/* From here on, the slot's memory may be gone: use only old. */
	if (old == SLOT_THREAD) {
		coro__thread_notify();
	} else if (old > SLOT_THREAD) {
		co = (struct coro *)old;
		co->next = NULL;
		if (list->tail)
			list->tail->next = co;
		else
			list->head = co;
		list->tail = co;
		list->n++;
	}
}

void coro__slot_unblock(_Atomic uintptr_t *slot, bool ready)
{
	struct coro__list list = {NULL, NULL, 0};

	coro__slot_take(slot, ready, &list);
	if (list.head)
		coro__ready(list.head);
}

void coro_event_signal(struct coro_event *ev)
{
	coro__slot_unblock(&ev->slot, true);
}

void coro_event_wait(struct coro_event *ev)
{
	while (!coro__slot_wait(&ev->slot, NULL, NULL))
		;
}

#define WG_WAITER 1UL

void coro_wg_add(struct coro_wg *wg, unsigned long n)
{
	atomic_fetch_add(&wg->state, n << 1);
}

void coro_wg_done(struct coro_wg *wg)
{
	/* Only a registered waiter is woken: it cannot leave before this. */
	if (atomic_fetch_sub(&wg->state, 2) - 2 == WG_WAITER)
		coro__slot_unblock(&wg->slot, true);
}

void coro_wg_wait(struct coro_wg *wg)
{
	unsigned long s = atomic_load(&wg->state);

	do {
		if (s >> 1 == 0)
			return;
	} while (!atomic_compare_exchange_weak(&wg->state, &s, s | WG_WAITER));
	while (!coro__slot_wait(&wg->slot, NULL, NULL))
		;
	atomic_fetch_and(&wg->state, ~WG_WAITER);
}
