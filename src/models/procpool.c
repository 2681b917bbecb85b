/*
 * procpool - the talk's multiprocess_server: one thread per connection, and
 * fib computed in a pool of worker processes through a blocking apply().
 *
 *	                  +-- conn thread --+  u64 n     +-- worker 1 --+
 *	client --TCP----> | read, parse     | ---------> | read n, fib  |
 *	       <--------- | apply(n), write | <--------- | write reply  |
 *	                  +-----------------+  u32 len   +--------------+
 *	client --TCP----> conn thread ...      + bytes   worker 2 ... N
 *	                        (socketpairs; idle workers on a free list)
 *
 *	main:    spawn N workers -> accept -> spawn a thread -> accept ...
 *	thread:  read line -> parse -> apply(n) -> write reply -> ...
 *	apply:   take an idle worker -> send n -> read its reply -> give it back
 *	worker:  read n -> fib -> write reply -> ... until its socket closes
 *	         (procpool_worker.c: our own binary exec'd, and why)
 *	keeper:  watch the workers' pidfds -> reap the dead -> spawn anew
 *
 * A worker that dies (kill -9) costs the request it was computing an
 * "ERR internal error"; the keeper thread, which sees every exit through a
 * pidfd, reaps and respawns it at once, even when it died idle, and the
 * server goes on. A request whose send fails never reached a process, so it
 * is retried on another worker. On a stop, the connections finish, then
 * closing the sockets makes the workers exit; a worker also leaves when the
 * server dies (EOF, and PR_SET_PDEATHSIG while it computes).
 *
 * The costs: per request, two socket round trips and two cross-process
 * wake-ups on top of the client's; the compute parallelism is capped at N.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/serve.h"
#include "model.h"
#include "procpool.h"
#include "thread.h"

#define PROCPOOL_RESPAWN_DELAY_MS 100 /* between failed spawns */

/* A worker slot's life; the keeper alone turns DEAD back into IDLE. */
enum worker_state {
	WORKER_IDLE, /* its process waits for a request */
	WORKER_BUSY, /* checked out by a connection thread */
	WORKER_DEAD, /* exited, broken or never started: to be replaced */
};

struct pool_worker {
	enum worker_state state;
	bool exited; /* the keeper saw the process exit while it was BUSY */
	struct procpool_proc proc;
};

struct pool {
	pthread_mutex_t lock;	/* guards the slots' state and nidle */
	pthread_cond_t idle_cv; /* a worker became IDLE */
	unsigned nidle;		/* IDLE slots */
	int wake_fd;		/* eventfd: a slot went DEAD, or closing */
	bool closing;		/* the keeper tears the pool down */
	struct pool_worker *workers;
	struct pollfd *pfds; /* the keeper's: wake_fd, then each pidfd */
	unsigned nworkers;
	struct procpool_image image; /* what workers are exec'd as */
	pthread_t keeper;
};

/* Makes w IDLE and tells a connection thread waiting for one. Lock held. */
static void pool_make_idle(struct pool *p, struct pool_worker *w)
{
	w->state = WORKER_IDLE;
	p->nidle++;
	pthread_cond_signal(&p->idle_cv);
}

/* Wakes the keeper from its poll(). */
static void pool_wake_keeper(struct pool *p)
{
	uint64_t one = 1;

	if (write(p->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter is non-zero already: the keeper wakes anyway. */
	}
}

/* Makes w DEAD and wakes the keeper to replace it. Lock held. */
static void pool_make_dead(struct pool *p, struct pool_worker *w)
{
	w->state = WORKER_DEAD;
	pool_wake_keeper(p);
}

/* Reaps and respawns the DEAD slot w. Lock held, dropped meanwhile. */
static void pool_replace(struct pool *p, struct pool_worker *w)
{
	int err;

	pthread_mutex_unlock(&p->lock);
	err = procpool_respawn(&p->image, &w->proc);
	pthread_mutex_lock(&p->lock);
	if (!err) {
		w->exited = false;
		pool_make_idle(p, w);
	}
}

/*
 * Sleeps until a worker exits or a slot goes DEAD, then marks the exited:
 * an IDLE one goes DEAD at once; a BUSY one is left to its connection
 * thread, which sees EOF and checks it in. Lock held, dropped meanwhile.
 */
static void pool_watch(struct pool *p, int timeout_ms)
{
	struct pool_worker *w;
	uint64_t count;

	p->pfds[0] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
	for (unsigned i = 0; i < p->nworkers; i++) {
		w = &p->workers[i];
		p->pfds[i + 1] = (struct pollfd){
		    .fd = w->state == WORKER_DEAD || w->exited ? -1
							       : w->proc.pidfd,
		    .events = POLLIN};
	}
	pthread_mutex_unlock(&p->lock);
	poll(p->pfds, p->nworkers + 1, timeout_ms);
	if (read(p->wake_fd, &count, sizeof(count)) < 0) {
		/* Nothing to drain. */
	}
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nworkers; i++) {
		w = &p->workers[i];
		if (!(p->pfds[i + 1].revents & POLLIN))
			continue;
		w->exited = true;
		if (w->state == WORKER_IDLE) {
			p->nidle--;
			pool_make_dead(p, w);
		}
	}
}

/* The keeper, on the pool's last day: every slot is IDLE or DEAD. */
static void pool_keeper_close(struct pool *p)
{
	struct pool_worker *w;

	for (unsigned i = 0; i < p->nworkers; i++) {
		w = &p->workers[i];
		if (w->state == WORKER_IDLE)
			procpool_hang_up(&w->proc);
	}
	for (unsigned i = 0; i < p->nworkers; i++) {
		w = &p->workers[i];
		procpool_reap(&w->proc, w->state == WORKER_DEAD ? SIGKILL : 0);
	}
}

/*
 * The keeper thread watches every worker's pidfd, and reaps and respawns
 * the dead, so connection threads never wait on a spawn. It outlives the
 * workers it spawns, as PR_SET_PDEATHSIG needs: there, the "parent" is the
 * thread that spawned.
 */
static void *pool_keeper(void *arg)
{
	struct pool *p = arg;
	bool missing;

	pthread_mutex_lock(&p->lock);
	while (!p->closing) {
		missing = false;
		for (unsigned i = 0; i < p->nworkers && !p->closing; i++) {
			if (p->workers[i].state != WORKER_DEAD)
				continue;
			pool_replace(p, &p->workers[i]);
			missing |= p->workers[i].state == WORKER_DEAD;
		}
		if (!p->closing)
			pool_watch(p, missing ? PROCPOOL_RESPAWN_DELAY_MS : -1);
	}
	pthread_mutex_unlock(&p->lock);
	pool_keeper_close(p);
	return NULL;
}

/*
 * Takes an IDLE worker, waiting for one: the caller's last one (prefer) when
 * it is idle. A connection thread and its worker then keep waking each
 * other, on the CPUs they last ran on, instead of trading partners with the
 * other connections on every request.
 */
static struct pool_worker *pool_checkout(struct pool *p,
					 struct pool_worker *prefer)
{
	struct pool_worker *w = p->workers;

	pthread_mutex_lock(&p->lock);
	while (!p->nidle)
		pthread_cond_wait(&p->idle_cv, &p->lock);
	if (prefer && prefer->state == WORKER_IDLE)
		w = prefer;
	while (w->state != WORKER_IDLE)
		w++;
	w->state = WORKER_BUSY;
	p->nidle--;
	pthread_mutex_unlock(&p->lock);
	return w;
}

/* Gives w back: IDLE, or DEAD for the keeper when it broke or exited. */
static void pool_checkin(struct pool *p, struct pool_worker *w, bool broken)
{
	pthread_mutex_lock(&p->lock);
	if (broken || w->exited)
		pool_make_dead(p, w);
	else
		pool_make_idle(p, w);
	pthread_mutex_unlock(&p->lock);
}

/*
 * The talk's blocking apply(): fib(n) computed by some worker. A send that
 * fails reached no process, so it is retried on another worker; a worker
 * that dies with the request costs this one request an error line.
 */
static void pool_apply(void *ctx, const struct proto_limits *lim, uint64_t n,
		       struct reply *r)
{
	static _Thread_local struct pool_worker *last; /* this thread's */
	struct pool *p = ctx;
	struct pool_worker *w;
	int err = -EPIPE;

	for (unsigned try = 0; try <= p->nworkers && err == -EPIPE; try++) {
		w = last = pool_checkout(p, last);
		err = net_write_all(w->proc.fd, &n, sizeof(n));
		if (!err) {
			err = procpool_recv_reply(w->proc.fd, lim, r);
			pool_checkin(p, w, err != 0);
			break;
		}
		pool_checkin(p, w, true);
	}
	if (err)
		proto_error_reply(lim, PROTO_INTERNAL, r);
}

static void pool_free(struct pool *p)
{
	procpool_image_close(&p->image);
	close(p->wake_fd);
	free(p->pfds);
	free(p->workers);
	pthread_cond_destroy(&p->idle_cv);
	pthread_mutex_destroy(&p->lock);
}

/* Spawns the first workers and the keeper. Returns 0 or -errno. */
static int pool_start(struct pool *p, const struct server_cfg *cfg)
{
	int err = -ENOMEM;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->idle_cv, NULL);
	p->nworkers = server_workers(cfg);
	procpool_image_open(&p->image, &cfg->limits);
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->workers = calloc(p->nworkers, sizeof(*p->workers));
	p->pfds = calloc(p->nworkers + 1, sizeof(*p->pfds));
	if (p->wake_fd < 0 || !p->workers || !p->pfds)
		goto out_free;
	for (unsigned i = 0; i < p->nworkers; i++) {
		p->workers[i].state = WORKER_DEAD; /* until it is spawned */
		p->workers[i].proc.fd = p->workers[i].proc.pidfd = -1;
	}
	for (unsigned i = 0; i < p->nworkers; i++) {
		err = procpool_spawn(&p->image, &p->workers[i].proc);
		if (err)
			goto out_reap;
		pool_make_idle(p, &p->workers[i]);
	}
	err = -pthread_create(&p->keeper, NULL, pool_keeper, p);
	if (err)
		goto out_reap;
	return 0;

out_reap:
	pool_keeper_close(p);
out_free:
	pool_free(p);
	return err;
}

/* Every connection is done: the keeper closes the workers and leaves. */
static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->closing = true;
	pthread_mutex_unlock(&p->lock);
	pool_wake_keeper(p);
	pthread_join(p->keeper, NULL);
	pool_free(p);
}

/* A connection thread: the shared blocking loop, with apply() as compute. */
static void procpool_serve(int fd, const struct server_cfg *cfg, void *ctx)
{
	struct serve_hook hook = {.compute = pool_apply, .ctx = ctx};

	serve_blocking(fd, cfg, &hook);
}

static int procpool_run(const struct server_cfg *cfg)
{
	struct pool pool;
	struct thread_ops ops = {.serve = procpool_serve, .ctx = &pool};
	int err;

	err = pool_start(&pool, cfg);
	if (err) {
		log_err(err, "procpool: cannot start the workers");
		return err;
	}
	err = thread_serve(cfg, &ops);
	pool_stop(&pool);
	return err;
}

const struct model model_procpool = {
    .name = "procpool",
    .summary = "thread per connection; fib in a pool of worker processes",
    .concurrency = MODEL_PARALLEL,
    .talk_server = "multiprocess_server",
    .max_workers = MODEL_MAX_WORKERS,
    .run = procpool_run,
    .child = procpool_worker_main,
};
