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
 *	keeper:  reap a dead worker -> spawn a new one -> wait for the next
 *
 * Workers start from a clean image: each is /proc/self/exe exec'd as
 * "fibd --child procpool ALGO MAX_N" with its socket on fd 3, so spawning
 * one from the threaded server (posix_spawn, a vfork and an exec) never
 * runs malloc in a copy of a threaded process.
 *
 * A worker that dies (kill -9) costs the request it was computing an
 * "ERR internal error"; the keeper thread reaps and respawns it, and the
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
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/opt.h"
#include "../core/serve.h"
#include "../core/threadsrv.h"
#include "model.h"

#define PROCPOOL_FD		  3   /* the worker's end of its socketpair */
#define PROCPOOL_RESPAWN_DELAY_MS 100 /* between failed spawns */

extern char **environ;

/*
 * Reads at least min and at most cap bytes. Returns the count, -EPIPE at
 * EOF (the other side is gone), or -errno.
 */
static ssize_t pool_read(int fd, void *buf, size_t min, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	while (got < min) {
		n = read(fd, (char *)buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The worker process. */

/* Sends one reply frame: u32 length, then the bytes. Returns 0 or -errno. */
static int child_send(int fd, const struct reply *r)
{
	char frame[sizeof(uint32_t) + REPLY_INLINE_CAP];
	uint32_t len = (uint32_t)r->len;
	int err;

	memcpy(frame, &len, sizeof(len));
	if (r->len <= REPLY_INLINE_CAP) {
		memcpy(frame + sizeof(len), r->text, r->len);
		return net_write_all(fd, frame, sizeof(len) + r->len);
	}
	err = net_write_all(fd, frame, sizeof(len));
	return err ? err : net_write_all(fd, r->text, r->len);
}

/* argv: procpool ALGO MAX_N. */
static int child_limits(int argc, char **argv, struct proto_limits *lim)
{
	proto_limits_default(lim);
	if (argc != 3 || fib_algo_parse(argv[1], &lim->algo))
		return -EINVAL;
	return opt_uint("max_n", argv[2], 0, FIB_FAST_LIMIT_N, &lim->max_n);
}

/*
 * fibd --child procpool ALGO MAX_N: answers u64 n with a reply frame until
 * the server closes the socket. The server owns its lifetime, so SIGINT
 * and SIGTERM sent to the whole group do not cut short a request in flight.
 */
static int procpool_child(int argc, char **argv)
{
	struct proto_limits lim;
	struct reply r;
	uint64_t n;
	int err = 0;

	if (child_limits(argc, argv, &lim)) {
		log_msg("procpool worker: bad arguments");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* the server died: stop at once */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	while (!err && pool_read(PROCPOOL_FD, &n, sizeof(n), sizeof(n)) > 0) {
		if (n > lim.max_n) /* the server checked; never trust a frame */
			proto_error_reply(&lim, PROTO_TOO_LARGE, &r);
		else
			proto_compute(&lim, n, &r);
		err = child_send(PROCPOOL_FD, &r);
		reply_release(&r);
	}
	close(PROCPOOL_FD);
	return 0;
}

/* The pool, as the server sees it. */

struct pool_worker {
	pid_t pid;		  /* 0: no process to reap */
	int fd;			  /* our end of its socketpair; -1: none */
	struct pool_worker *next; /* on the idle or the dead list */
};

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t idle_cv;	  /* a worker joined the idle list */
	pthread_cond_t dead_cv;	  /* one joined the dead list, or closing */
	struct pool_worker *idle; /* ready for a request */
	struct pool_worker *dead; /* for the keeper to reap and respawn */
	bool closing;		  /* the keeper tears the pool down */
	struct pool_worker *workers;
	unsigned nworkers;
	struct proto_limits lim;
	pthread_t keeper;
};

/* Starts one worker process into w. Returns 0 or -errno. */
static int pool_spawn(struct pool *p, struct pool_worker *w)
{
	char max_n[24];
	char *argv[] = {"fibd",	    MODEL_CHILD_ARG,
			"procpool", (char *)fib_algo_name(p->lim.algo),
			max_n,	    NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	int sv[2], err;

	snprintf(max_n, sizeof(max_n), "%llu",
		 (unsigned long long)p->lim.max_n);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	sigemptyset(&none);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], PROCPOOL_FD);
	err = posix_spawn(&w->pid, "/proc/self/exe", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (err) {
		close(sv[0]);
		w->pid = 0;
		return -err;
	}
	w->fd = sv[0];
	return 0;
}

/*
 * Closes our end, sends sig (unless 0) and waits for the process, so no
 * zombie is left. Returns the wait status, or -1 when there was no process.
 */
static int pool_reap(struct pool_worker *w, int sig)
{
	int status = -1;

	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->pid <= 0)
		return -1;
	if (sig)
		kill(w->pid, sig);
	while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
	return status;
}

/* The keeper's note on a worker that died in service. */
static void pool_log_death(pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		log_msg("procpool: worker %d died by signal %d; respawning",
			(int)pid, WTERMSIG(status));
	else
		log_msg("procpool: worker %d failed; respawning", (int)pid);
}

static void pool_push(struct pool_worker **list, struct pool_worker *w)
{
	w->next = *list;
	*list = w;
}

/* The keeper, on the pool's last day: every worker is idle or dead. */
static void pool_keeper_close(struct pool *p)
{
	struct pool_worker *w;

	for (w = p->idle; w; w = w->next) {
		close(w->fd); /* EOF: the worker exits */
		w->fd = -1;
	}
	for (w = p->idle; w; w = w->next)
		pool_reap(w, 0);
	for (w = p->dead; w; w = w->next)
		pool_reap(w, SIGKILL);
}

/*
 * The keeper thread reaps and respawns dead workers, so connection threads
 * never wait on a spawn. It outlives the workers it spawns, as
 * PR_SET_PDEATHSIG needs: the "parent" there is the spawning thread.
 */
static void *pool_keeper(void *arg)
{
	struct pool *p = arg;
	struct pool_worker *w;
	pid_t pid;
	int err;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->dead && !p->closing)
			pthread_cond_wait(&p->dead_cv, &p->lock);
		if (p->closing)
			break;
		w = p->dead;
		p->dead = w->next;
		pthread_mutex_unlock(&p->lock);
		pid = w->pid;
		if (pid > 0)
			pool_log_death(pid, pool_reap(w, SIGKILL));
		err = pool_spawn(p, w);
		if (err) {
			log_err(err, "procpool: cannot respawn a worker");
			poll(NULL, 0, PROCPOOL_RESPAWN_DELAY_MS);
		}
		pthread_mutex_lock(&p->lock);
		pool_push(err ? &p->dead : &p->idle, w);
		if (!err)
			pthread_cond_signal(&p->idle_cv);
	}
	pthread_mutex_unlock(&p->lock);
	pool_keeper_close(p);
	return NULL;
}

/* Takes an idle worker, waiting for one. */
static struct pool_worker *pool_checkout(struct pool *p)
{
	struct pool_worker *w;

	pthread_mutex_lock(&p->lock);
	while (!p->idle)
		pthread_cond_wait(&p->idle_cv, &p->lock);
	w = p->idle;
	p->idle = w->next;
	pthread_mutex_unlock(&p->lock);
	return w;
}

/* Gives w back: to the idle list, or to the keeper when broken is set. */
static void pool_checkin(struct pool *p, struct pool_worker *w, bool broken)
{
	pthread_mutex_lock(&p->lock);
	pool_push(broken ? &p->dead : &p->idle, w);
	pthread_cond_signal(broken ? &p->dead_cv : &p->idle_cv);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Reads one reply frame into r; a small one usually in one read. Returns 0,
 * or -errno when the worker is gone (-EPIPE) or broken.
 */
static int pool_recv(int fd, const struct proto_limits *lim, struct reply *r)
{
	char head[sizeof(uint32_t) + REPLY_INLINE_CAP];
	size_t max = fib_digits_bound(lim->max_n) + 128, have;
	ssize_t got = pool_read(fd, head, sizeof(uint32_t), sizeof(head));
	uint32_t len;

	if (got < 0)
		return (int)got;
	memcpy(&len, head, sizeof(len));
	have = (size_t)got - sizeof(len);
	if (len == 0 || len > max || have > len)
		return -EPROTO;
	r->text = len <= sizeof(r->inline_buf) ? r->inline_buf : malloc(len);
	if (!r->text)
		return -ENOMEM;
	r->len = len;
	memcpy(r->text, head + sizeof(len), have);
	got = have < len ? pool_read(fd, r->text + have, len - have, len - have)
			 : 0;
	if (got < 0)
		reply_release(r);
	return got < 0 ? (int)got : 0;
}

/*
 * The talk's blocking apply(): fib(n) computed by some worker. A send that
 * fails reached no process, so it is retried on another worker; a worker
 * that dies with the request costs this one request an error line.
 */
static void pool_apply(void *ctx, const struct proto_limits *lim, uint64_t n,
		       struct reply *r)
{
	struct pool *p = ctx;
	struct pool_worker *w;
	int err = -EPIPE;

	for (unsigned try = 0; try <= p->nworkers && err == -EPIPE; try++) {
		w = pool_checkout(p);
		err = net_write_all(w->fd, &n, sizeof(n));
		if (!err) {
			err = pool_recv(w->fd, lim, r);
			pool_checkin(p, w, err != 0);
			break;
		}
		pool_checkin(p, w, true);
	}
	if (err)
		proto_error_reply(lim, PROTO_INTERNAL, r);
}

/* Spawns the first workers and the keeper. Returns 0 or -errno. */
static int pool_start(struct pool *p, const struct server_cfg *cfg)
{
	int err = -ENOMEM;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->idle_cv, NULL);
	pthread_cond_init(&p->dead_cv, NULL);
	p->lim = cfg->limits;
	p->nworkers = server_workers(cfg);
	p->workers = calloc(p->nworkers, sizeof(*p->workers));
	if (!p->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < p->nworkers; i++) {
		err = pool_spawn(p, &p->workers[i]);
		if (err)
			goto out_reap;
		pool_push(&p->idle, &p->workers[i]);
	}
	err = -pthread_create(&p->keeper, NULL, pool_keeper, p);
	if (err)
		goto out_reap;
	return 0;

out_reap:
	pool_keeper_close(p);
	free(p->workers);
	pthread_cond_destroy(&p->dead_cv);
	pthread_cond_destroy(&p->idle_cv);
	pthread_mutex_destroy(&p->lock);
	return err;
}

/* Every connection is done: the keeper closes the workers and leaves. */
static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->closing = true;
	pthread_cond_signal(&p->dead_cv);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->keeper, NULL);
	free(p->workers);
	pthread_cond_destroy(&p->dead_cv);
	pthread_cond_destroy(&p->idle_cv);
	pthread_mutex_destroy(&p->lock);
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
	struct threadsrv_ops ops = {.serve = procpool_serve, .ctx = &pool};
	int err;

	err = pool_start(&pool, cfg);
	if (err) {
		log_err(err, "procpool: cannot start the workers");
		return err;
	}
	err = threadsrv_run(cfg, &ops);
	pool_stop(&pool);
	return err;
}

const struct model model_procpool = {
    .name = "procpool",
    .summary = "thread per connection; fib in a pool of worker processes",
    .concurrency = MODEL_PARALLEL,
    .run = procpool_run,
    .child = procpool_child,
};
