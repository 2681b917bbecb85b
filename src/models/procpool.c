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
 *	keeper:  watch the workers' pidfds -> reap the dead -> spawn anew
 *
 * Frames are in host byte order: both ends are the same binary.
 *
 * Workers start from a clean image: each is our own binary exec'd as
 * "fibd --child procpool ALGO MAX_N ENGINE" with its socket on fd 3, so
 * spawning one from the threaded server (posix_spawn, a vfork and an exec)
 * never runs malloc in a copy of a threaded process. The binary is a
 * descriptor opened on /proc/self/exe at start and exec'd as
 * /proc/self/fd/N: a worker respawned after the file was replaced (an
 * upgrade) still runs the server's own image, and valgrind, whose
 * /proc/self/exe is itself, can follow it (it hands out the client's
 * binary for that open).
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
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/opt.h"
#include "../core/pyengine.h"
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

/* argv: procpool ALGO MAX_N ENGINE. */
static int child_limits(int argc, char **argv, struct proto_limits *lim)
{
	proto_limits_default(lim);
	if (argc != 4 || fib_algo_parse(argv[1], &lim->algo) ||
	    fib_engine_parse(argv[3], &lim->engine))
		return -EINVAL;
	return opt_uint("max_n", argv[2], 0, FIB_FAST_LIMIT_N, &lim->max_n);
}

/*
 * fibd --child procpool ALGO MAX_N ENGINE: answers u64 n with a reply
 * frame until the server closes the socket. The server owns its lifetime,
 * so SIGINT and SIGTERM sent to the whole group do not cut short a request
 * in flight. With the python engine each worker is a process with its own
 * interpreter and its own GIL, started before the first request: this is
 * how the talk's multiprocess_server escapes the GIL.
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
	/* Before the first request, which would otherwise pay for it. */
	if (lim.engine == FIB_ENGINE_PYTHON && pyengine_init() < 0)
		return 1; /* logged; the keeper respawns it */
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

/* A worker slot's life; the keeper alone turns DEAD back into IDLE. */
enum worker_state {
	WORKER_IDLE, /* its process waits for a request */
	WORKER_BUSY, /* checked out by a connection thread */
	WORKER_DEAD, /* exited, broken or never started: to be replaced */
};

struct pool_worker {
	enum worker_state state;
	bool exited; /* the keeper saw the process exit while it was BUSY */
	pid_t pid;   /* 0: no process to reap */
	int fd;	     /* our end of its socketpair; -1: none */
	int pidfd;   /* readable once the process has exited; -1: none */
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
	struct proto_limits lim; /* passed on to every worker */
	int exe_fd;		 /* our binary, open; -1: use exe_path as is */
	char exe_path[32];	 /* what workers exec: /proc/self/fd/N */
	pthread_t keeper;
};

/* Starts one worker process into w. Returns 0 or -errno. */
static int pool_spawn(struct pool *p, struct pool_worker *w)
{
	char max_n[24];
	char *argv[] = {"fibd",	    MODEL_CHILD_ARG,
			"procpool", (char *)fib_algo_name(p->lim.algo),
			max_n,	    (char *)fib_engine_name(p->lim.engine),
			NULL};
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
	err = posix_spawn(&w->pid, p->exe_path, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (err) {
		close(sv[0]);
		w->pid = 0;
		return -err;
	}
	w->fd = sv[0];
	w->pidfd =
	    pidfd_open(w->pid, 0); /* -1 on old kernels: EOF still works */
	w->exited = false;
	return 0;
}

/*
 * Closes our ends, sends sig (unless 0) and waits for the process, so no
 * zombie is left. Returns the wait status, or -1 when there was no process.
 */
static int pool_reap(struct pool_worker *w, int sig)
{
	int status = -1;

	if (w->fd >= 0)
		close(w->fd);
	if (w->pidfd >= 0)
		close(w->pidfd);
	w->fd = w->pidfd = -1;
	if (w->pid <= 0)
		return -1;
	if (sig)
		kill(w->pid, sig);
	while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
	return status;
}

/* Makes w IDLE and tells a connection thread waiting for one. Lock held. */
static void pool_make_idle(struct pool *p, struct pool_worker *w)
{
	w->state = WORKER_IDLE;
	p->nidle++;
	pthread_cond_signal(&p->idle_cv);
}

/* Makes w DEAD and wakes the keeper to replace it. Lock held. */
static void pool_make_dead(struct pool *p, struct pool_worker *w)
{
	uint64_t one = 1;

	w->state = WORKER_DEAD;
	if (write(p->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter is non-zero already: the keeper wakes anyway. */
	}
}

/* Reaps and respawns the DEAD slot w. Lock held, dropped meanwhile. */
static void pool_replace(struct pool *p, struct pool_worker *w)
{
	pid_t pid = w->pid;
	int status, err;

	pthread_mutex_unlock(&p->lock);
	status = pool_reap(w, SIGKILL);
	if (pid > 0 && WIFSIGNALED(status))
		log_msg("procpool: worker %d died by signal %d; respawning",
			(int)pid, WTERMSIG(status));
	else if (pid > 0)
		log_msg("procpool: worker %d failed; respawning", (int)pid);
	err = pool_spawn(p, w);
	if (err)
		log_err(err, "procpool: cannot respawn a worker");
	pthread_mutex_lock(&p->lock);
	if (!err)
		pool_make_idle(p, w);
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
		    .fd = w->state == WORKER_DEAD || w->exited ? -1 : w->pidfd,
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
		if (w->state == WORKER_IDLE && w->fd >= 0) {
			close(w->fd); /* EOF: the worker exits */
			w->fd = -1;
		}
	}
	for (unsigned i = 0; i < p->nworkers; i++) {
		w = &p->workers[i];
		pool_reap(w, w->state == WORKER_DEAD ? SIGKILL : 0);
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
	static _Thread_local struct pool_worker *last; /* this thread's */
	struct pool *p = ctx;
	struct pool_worker *w;
	int err = -EPIPE;

	for (unsigned try = 0; try <= p->nworkers && err == -EPIPE; try++) {
		w = last = pool_checkout(p, last);
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

static void pool_free(struct pool *p)
{
	if (p->exe_fd >= 0)
		close(p->exe_fd);
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
	p->lim = cfg->limits;
	p->nworkers = server_workers(cfg);
	p->exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (p->exe_fd >= 0)
		snprintf(p->exe_path, sizeof(p->exe_path), "/proc/self/fd/%d",
			 p->exe_fd);
	else
		strcpy(p->exe_path, "/proc/self/exe");
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->workers = calloc(p->nworkers, sizeof(*p->workers));
	p->pfds = calloc(p->nworkers + 1, sizeof(*p->pfds));
	if (p->wake_fd < 0 || !p->workers || !p->pfds)
		goto out_free;
	for (unsigned i = 0; i < p->nworkers; i++) {
		p->workers[i].state = WORKER_DEAD; /* until it is spawned */
		p->workers[i].fd = p->workers[i].pidfd = -1;
	}
	for (unsigned i = 0; i < p->nworkers; i++) {
		err = pool_spawn(p, &p->workers[i]);
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
	uint64_t one = 1;

	pthread_mutex_lock(&p->lock);
	p->closing = true;
	pthread_mutex_unlock(&p->lock);
	if (write(p->wake_fd, &one, sizeof(one)) < 0) {
		/* Already non-zero: the keeper wakes anyway. */
	}
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
    .talk_server = "multiprocess_server",
    .max_workers = MODEL_MAX_WORKERS,
    .run = procpool_run,
    .child = procpool_child,
};
