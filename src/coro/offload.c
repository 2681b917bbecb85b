/*
 * offload - a few plain threads that run blocking or long functions for
 * coroutines, as Go hands a goroutine in a blocking syscall to another
 * thread. The coroutine parks on a slot; the thread runs the job and
 * unblocks the slot, which readies the coroutine on one of the workers.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct coro__job {
	void (*fn)(void *);
	void *arg;
	struct coro__job *next;
	_Atomic uintptr_t slot;
};

static void *offload_main(void *arg)
{
	struct coro_rt *rt = arg;
	struct coro__job *j;

	pthread_mutex_lock(&rt->off_lock);
	for (;;) {
		while (!rt->off_head && !rt->off_stop)
			pthread_cond_wait(&rt->off_cond, &rt->off_lock);
		j = rt->off_head;
		if (!j)
			break;
		rt->off_head = j->next;
		if (!rt->off_head)
			rt->off_tail = NULL;
		pthread_mutex_unlock(&rt->off_lock);
		j->fn(j->arg);
		coro__slot_unblock(&j->slot, true); /* j is gone after this */
		pthread_mutex_lock(&rt->off_lock);
	}
	pthread_mutex_unlock(&rt->off_lock);
	return NULL;
}

int coro__offload_init(struct coro_rt *rt, unsigned n)
{
	int err;

	rt->off_threads = calloc(n, sizeof(*rt->off_threads));
	if (!rt->off_threads)
		return -ENOMEM;
	pthread_mutex_init(&rt->off_lock, NULL);
	pthread_cond_init(&rt->off_cond, NULL);
	for (rt->noff = 0; rt->noff < n; rt->noff++) {
		err = -pthread_create(&rt->off_threads[rt->noff], NULL,
				      offload_main, rt);
		if (err)
			goto out_stop_threads;
	}
	return 0;

out_stop_threads:
	coro__offload_destroy(rt);
	return err;
}

void coro__offload_destroy(struct coro_rt *rt)
{
	unsigned i;

	pthread_mutex_lock(&rt->off_lock);
	rt->off_stop = true;
	pthread_cond_broadcast(&rt->off_cond);
	pthread_mutex_unlock(&rt->off_lock);
	for (i = 0; i < rt->noff; i++)
		pthread_join(rt->off_threads[i], NULL);
	pthread_cond_destroy(&rt->off_cond);
	pthread_mutex_destroy(&rt->off_lock);
	free(rt->off_threads);
}

int coro_offload(void (*fn)(void *), void *arg)
{
	struct coro__job j = {.fn = fn, .arg = arg};
	struct coro_rt *rt = coro_self_rt();

	if (!rt) {
		fn(arg);
		return 0;
	}
	pthread_mutex_lock(&rt->off_lock);
	if (rt->off_tail)
		rt->off_tail->next = &j;
	else
		rt->off_head = &j;
	rt->off_tail = &j;
	pthread_cond_signal(&rt->off_cond);
	pthread_mutex_unlock(&rt->off_lock);
	while (!coro__slot_wait(&j.slot, NULL, NULL))
		;
	return 0;
}
