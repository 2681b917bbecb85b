/*
 * rt - a runtime's life: start and stop, spawning and joining coroutines,
 * statistics.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "san.h"

#define DEFAULT_STACK	    (64 * 1024)
#define DEFAULT_STACK_CACHE 256
#define DEFAULT_OFFLOAD	    2

static void opts_defaults(struct coro_rt_opts *o)
{
	long cpus;

	if (!o->workers) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		o->workers = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (!o->stack_size)
		o->stack_size = DEFAULT_STACK;
	if (!o->stack_cache)
		o->stack_cache = DEFAULT_STACK_CACHE;
	if (!o->offload_threads)
		o->offload_threads = DEFAULT_OFFLOAD;
}

/* Workers are cache-line aligned (see struct coro__worker). */
static int workers_new(struct coro_rt *rt, unsigned n)
{
	size_t len = n * sizeof(*rt->workers);
	unsigned i;

	rt->workers = aligned_alloc(64, (len + 63) & ~(size_t)63);
	if (!rt->workers)
		return -ENOMEM;
	memset(rt->workers, 0, len);
	for (i = 0; i < n; i++) {
		rt->workers[i].rt = rt;
		rt->workers[i].id = i;
		atomic_init(&rt->workers[i].sleep_until, INT64_MAX);
		pthread_mutex_init(&rt->workers[i].lock, NULL);
	}
	return 0;
}

/* Wakes every worker for the last time and joins the first n of them. */
static void workers_stop(struct coro_rt *rt, unsigned n)
{
	unsigned i;

	/* One ring wakes one sleeper; each one leaving rings for the next. */
	atomic_store(&rt->stopping, true);
	coro__netpoll_ring_force(rt);
	for (i = 0; i < n; i++)
		pthread_join(rt->workers[i].thread, NULL);
}

static void workers_free(struct coro_rt *rt)
{
	unsigned i;

	for (i = 0; i < rt->nworkers; i++)
		pthread_mutex_destroy(&rt->workers[i].lock);
	free(rt->workers);
}

struct coro_rt *coro_rt_new(const struct coro_rt_opts *opts)
{
	struct coro_rt_opts o = opts ? *opts : (struct coro_rt_opts){0};
	struct coro_rt *rt;
	unsigned i;
	int err;

	opts_defaults(&o);
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	rt->nworkers = o.workers;
	err = coro__stacks_init(&rt->stacks, o.stack_size, o.stack_cache);
	if (err)
		goto out_free_rt;
	err = coro__timers_init(rt);
	if (err)
		goto out_destroy_stacks;
	err = coro__netpoll_init(rt);
	if (err)
		goto out_destroy_timers;
	err = workers_new(rt, o.workers);
	if (err)
		goto out_destroy_netpoll;
	for (i = 0; i < rt->nworkers; i++) {
		err = -pthread_create(&rt->workers[i].thread, NULL,
				      coro__worker_main, &rt->workers[i]);
		if (err)
			goto out_stop_workers;
	}
	err = coro__offload_init(rt, o.offload_threads);
	if (err)
		goto out_stop_workers;
	return rt;

out_stop_workers:
	workers_stop(rt, i);
	workers_free(rt);
out_destroy_netpoll:
	coro__netpoll_destroy(rt);
out_destroy_timers:
	coro__timers_destroy(rt);
out_destroy_stacks:
	coro__stacks_destroy(&rt->stacks);
out_free_rt:
	free(rt);
	errno = -err;
	return NULL;
}

static bool no_live(void *arg)
{
	struct coro_rt *rt = arg;

	return atomic_load(&rt->live) == 0;
}

void coro_rt_wait(struct coro_rt *rt)
{
	coro__thread_wait(no_live, rt);
}

void coro_rt_free(struct coro_rt *rt)
{
	coro_rt_wait(rt);
	coro__offload_destroy(rt);
	workers_stop(rt, rt->nworkers);
	workers_free(rt);
	coro__netpoll_destroy(rt);
	coro__timers_destroy(rt);
	coro__stacks_destroy(&rt->stacks);
	free(rt);
}

struct coro_rt *coro_self_rt(void)
{
	struct coro__worker *w = coro__self();

	return w && w->cur ? w->rt : NULL;
}

static struct coro *coro_new(struct coro_rt *rt, void (*fn)(void *), void *arg,
			     bool detached)
{
	struct coro *co = calloc(1, sizeof(*co));

	if (!co)
		return NULL;
	co->stack = coro__stack_get(&rt->stacks);
	if (!co->stack)
		goto out_free_coro;
	co->stack_len = rt->stacks.len;
	co->rt = rt;
	co->fn = fn;
	co->arg = arg;
	co->detached = detached;
	co->tsan_fiber = tsan_create();
	coro__frame_init(co);
	atomic_fetch_add(&rt->live, 1);
	return co;

out_free_coro:
	free(co);
	errno = ENOMEM;
	return NULL;
}

struct coro *coro_spawn(struct coro_rt *rt, void (*fn)(void *), void *arg)
{
	struct coro *co = coro_new(rt, fn, arg, false);

	if (co)
		coro__ready(co);
	return co;
}

int coro_go(struct coro_rt *rt, void (*fn)(void *), void *arg)
{
	struct coro *co = coro_new(rt, fn, arg, true);

	if (!co)
		return -ENOMEM;
	coro__ready(co); /* co may be gone already when this returns */
	return 0;
}

void coro_join(struct coro *co)
{
	while (!coro__slot_wait(&co->join, NULL, NULL))
		;
	free(co);
}

int coro_worker_stats(struct coro_rt *rt, unsigned worker,
		      struct coro_worker_stats *st)
{
	struct coro__worker *w;

	if (worker >= rt->nworkers)
		return -EINVAL;
	w = &rt->workers[worker];
	st->runs = atomic_load_explicit(&w->runs, memory_order_relaxed);
	st->stolen = atomic_load_explicit(&w->stolen, memory_order_relaxed);
	st->polls = atomic_load_explicit(&w->polls, memory_order_relaxed);
	st->parks = atomic_load_explicit(&w->parks, memory_order_relaxed);
	return 0;
}

void coro_rt_stats(struct coro_rt *rt, struct coro_rt_stats *st)
{
	st->workers = rt->nworkers;
	st->live = atomic_load(&rt->live);
	st->stacks_mapped = atomic_load(&rt->stacks.mapped);
	pthread_mutex_lock(&rt->stacks.lock);
	st->stacks_cached = rt->stacks.nfree;
	pthread_mutex_unlock(&rt->stacks.lock);
}
