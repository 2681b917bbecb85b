/*
 * async - the talk's async_server: one thread runs a scheduler of its own,
 * each connection is a task written as straight-line code, compute goes to
 * a pool, and a pipe wakes the loop when a future completes.
 *
 *   task (per connection): serve_conn()   loop (one thread):
 *     wait, read -- park on (fd, IN) ---> 1. epoll_wait, wake whom it names:
 *     fib(n)     -- park on a future --->    a task's fd; the pool's pipe (its
 *     write      -- park on (fd, OUT) -->    futures are done); the listener
 *                                            (a new task); the stop eventfd
 *                                         2. every 100 ms: expire deadlines
 *                                         3. run the ready tasks till they park
 *
 * The talk's tasks are generators yielding ('recv', sock), ('send', sock)
 * or ('future', f). Ours are stackful coroutines (src/coro/ctx.h: the coro
 * runtime's context switch and stacks, not its scheduler): they can park
 * inside any function they call, so a task's body is the blocking models'
 * connection loop, serve_conn() (framing, HTTP, errors, limits, metrics),
 * with I/O and compute that park the task, not the thread. A stackless
 * protothread cannot yield from a callee: its connection would have to be
 * a callback state machine over the request core, as src/models/reactor.c
 * is. A stack costs address space, and memory only where a task touches it.
 *
 * The talk parks tasks in select(); we use epoll: select() takes only fds
 * below FD_SETSIZE (1024) and scans them all on each call, and async holds
 * 10,000 connections. The talk's pool is processes; C has no GIL, so ours
 * is threads (src/core/tpool.h), and its completion pipe is the talk's
 * socketpair. A cheap fib is computed by the task itself (async_compute()).
 * The loop under the scheduler (epoll, the listener, --max-conns, a stop's
 * grace, the pool's pipe) is the reactor's: src/core/loop_epoll.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../coro/ctx.h"
#include "../core/log.h"
#include "../core/loop_epoll.h"
#include "../core/serve.h"
#include "model.h"

/* serve_conn() and a fast fib(5000) need a few KiB; HTTP and ASan more. */
#define ASYNC_STACK_SIZE  (64 * 1024)
#define ASYNC_STACK_CACHE 256 /* idle stacks kept for new tasks */
#define ASYNC_TICK_MS	  100 /* how often deadlines are looked at */

struct async_task {
	struct tpool_job job; /* first: its future, fib(n) into *r */
	struct coro_ctx ctx;  /* its stack and saved registers */
	int fd;
	unsigned armed;		 /* the events epoll watches on fd; 0: none */
	unsigned want;		 /* parked on (fd, want); 0: not on fd */
	bool expired;		 /* woken by its deadline */
	unsigned budget;	 /* inline computes left until it parks on fd */
	uint64_t deadline;	 /* ms, while parked with a timeout; else 0 */
	struct async_task *next; /* the run queue */
	struct async_task *prev_t, *next_t; /* every task */
	const struct proto_limits *lim;
	uint64_t n;
	struct reply *r;
};

/* The scheduler: its loop's nlive counts the tasks, cq the futures done. */
struct async_loop {
	struct loop_epoll e; /* first: the loop's callbacks get &e.l */
	struct coro_ctx_stacks *stacks;
	struct coro_ctx main;		/* the loop's own stack */
	struct async_task *cur;		/* the task running now */
	struct async_task *head, *tail; /* the run queue */
	struct async_task *tasks;	/* every task */
	atomic_uint nopen;		/* tasks, for --max-conns */
	struct serve_io io;
	struct serve_hook hook;
};

/* Clearing what it waited on makes sure a task is queued once. */
static void async_wake(struct async_loop *l, struct async_task *t, bool expired)
{
	t->want = 0;
	t->deadline = 0;
	t->expired = expired;
	t->next = NULL;
	*(l->tail ? &l->tail->next : &l->head) = t;
	l->tail = t;
}

/*
 * Parks the running task on (fd, events), or on its future (events 0),
 * until it is woken: 0, or -EAGAIN when timeout_ms passed first. epoll
 * stays armed for what it waited on last: request after request costs
 * no epoll_ctl().
 */
static int async_park(struct async_loop *l, unsigned events,
		      unsigned timeout_ms)
{
	struct async_task *t = l->cur;
	int err;

	if (events && t->armed != events) {
		err = loop_epoll_watch(&l->e,
				       t->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
				       t->fd, events, t);
		if (err)
			return err;
		t->armed = events;
	}
	t->budget = events ? EVCONN_INLINE_BUDGET : t->budget;
	t->want = events;
	/* From now, not from the loop's turn: that may be long past (a
	 * turn that ran many tasks), and a deadline that fires early cuts
	 * a request short that still had time. */
	t->deadline = timeout_ms ? loop_now_ms() + timeout_ms : 0;
	coro_ctx_switch(&t->ctx, &l->main);
	return t->expired ? -EAGAIN : 0;
}

/*
 * A task not parked on its fd leaves the epoll set until it parks there
 * again: level-triggered, the fd (or a reset's EPOLLERR, reported whatever
 * we ask) would wake the loop over and over while it waits for a future.
 */
static void async_on_fd(struct loop *loop, void *ptr,
			const struct loop_event *what)
{
	struct async_loop *l = (struct async_loop *)loop;
	struct async_task *t = ptr;

	if (t->want && (what->events & (t->want | EPOLLHUP | EPOLLERR))) {
		async_wake(l, t, false);
	} else if (!t->want) {
		loop_epoll_watch(&l->e, EPOLL_CTL_DEL, t->fd, 0, NULL);
		t->armed = 0;
	}
}

/* The pool's pipe: futures are done, their tasks ready to run. */
static void async_on_future(struct loop *loop, struct tpool_job *job)
{
	async_wake((struct async_loop *)loop, (struct async_task *)job, false);
}

/* Runs every ready task until it parks; frees it once it returns. */
static void async_run_ready(struct loop *loop)
{
	struct async_loop *l = (struct async_loop *)loop;
	struct async_task *t;

	while ((t = l->head)) {
		l->head = t->next;
		l->tail = l->head ? l->tail : NULL;
		l->cur = t;
		coro_ctx_switch(&l->main, &t->ctx);
		if (!t->ctx.finished)
			continue;
		*(t->prev_t ? &t->prev_t->next_t : &l->tasks) = t->next_t;
		if (t->next_t)
			t->next_t->prev_t = t->prev_t;
		loop->nlive--;
		atomic_fetch_sub(&l->nopen, 1);
		close(t->fd);
		coro_ctx_free(&t->ctx, l->stacks);
		free(t);
	}
}

/* serve_conn()'s I/O. wait() holds no buffer for the next request. */
static int async_io_wait(void *ctx, int fd, unsigned timeout_ms)
{
	(void)fd;
	return async_park(ctx, EPOLLIN, timeout_ms);
}

static ssize_t async_io_read(void *ctx, int fd, void *buf, size_t len,
			     unsigned timeout_ms)
{
	ssize_t n;
	int err = 0;

	while (!err) {
		n = read(fd, buf, len);
		if (n >= 0 || errno != EAGAIN)
			return n >= 0 ? n : -errno;
		err = async_park(ctx, EPOLLIN, timeout_ms);
	}
	return err;
}

/* A client that takes no reply bytes for --idle-timeout is given up on. */
static int async_io_write(void *ctx, int fd, const void *buf, size_t len)
{
	struct async_loop *l = ctx;
	size_t done = 0;
	ssize_t n;
	int err = 0;

	while (done < len && !err) {
		n = send(fd, (const char *)buf + done, len - done,
			 MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (n < 0)
			err = async_park(l, EPOLLOUT,
					 l->e.l.cfg->idle_timeout_ms);
		else
			done += (size_t)n;
	}
	return err;
}

static void async_future_run(struct tpool_job *job)
{
	struct async_task *t = (struct async_task *)job;

	proto_compute(t->lim, t->n, t->r);
}

/*
 * serve_conn()'s compute: a future for the pool, and a park until it is
 * done. A fib cheaper than that round trip (EVCONN_INLINE_*_MAX_N) is
 * computed right here, up to a budget per wake-up beyond the nearly free
 * ones, so that a pipeline cannot stall the other tasks for long. Never
 * Python: the loop would wait for the GIL behind the pool's fibs.
 */
static void async_compute(void *ctx, const struct proto_limits *lim, uint64_t n,
			  struct reply *r)
{
	struct async_loop *l = ctx;
	struct async_task *t = l->cur;
	const struct evconn_cfg *inl = &l->e.l.ecfg;

	if (lim->engine != FIB_ENGINE_PYTHON && n <= inl->inline_max_n &&
	    (n <= inl->inline_free_n || (t->budget && t->budget--))) {
		proto_compute(lim, n, r);
		return;
	}
	t->job = (struct tpool_job){.run = async_future_run, .cq = l->e.l.cq};
	t->lim = lim;
	t->n = n;
	t->r = r;
	tpool_submit(l->e.l.pool, &t->job);
	async_park(l, 0, 0); /* no timeout: r lives on this stack */
}

/* A task's whole life: the connection loop of every blocking model. */
static void async_task_main(void *arg)
{
	struct async_loop *l = arg;

	serve_conn(l->cur->fd, l->e.l.cfg, &l->hook, &l->io);
}

/* A connection within --max-conns: a task, ready to run to its first wait. */
static int async_accept(struct loop *loop, int fd)
{
	struct async_loop *l = (struct async_loop *)loop;
	struct async_task *t = calloc(1, sizeof(*t));

	if (!t ||
	    coro_ctx_make(&t->ctx, l->stacks, async_task_main, l, &l->main)) {
		free(t);
		return -ENOMEM;
	}
	t->fd = fd;
	t->next_t = l->tasks;
	if (l->tasks)
		l->tasks->prev_t = t;
	l->tasks = t;
	async_wake(l, t, false);
	return 0;
}

/* A stop: the loop took the backlog and closed the listener; each task
 * answers what it has read (a future's reply too), then leaves. */
static void async_stop(struct loop *loop)
{
	struct async_loop *l = (struct async_loop *)loop;

	for (struct async_task *t = l->tasks; t; t = t->next_t)
		shutdown(t->fd, SHUT_RD);
}

/*
 * Every ASYNC_TICK_MS (as Redis's serverCron looks at client timeouts):
 * wake the tasks whose deadline passed; once a stop's grace is over, shut
 * every socket a task still waits on, so that its wait fails.
 */
static void async_tick(struct loop *loop, uint64_t now)
{
	struct async_loop *l = (struct async_loop *)loop;
	bool graceless = loop->stopping && now >= loop->grace_end_ms;

	for (struct async_task *t = l->tasks; t; t = t->next_t) {
		if (t->deadline && t->deadline <= now)
			async_wake(l, t, true);
		else if (graceless && t->want)
			shutdown(t->fd, SHUT_RDWR);
	}
}

static const struct loop_ops async_ops = {
    .accept = async_accept,
    .event = async_on_fd,
    .job = async_on_future,
    .stop = async_stop,
    .tick = async_tick,
    .turn = async_run_ready,
};

/* After a stop has seen every task end, no future is left in the pool. */
static int async_run(const struct server_cfg *cfg)
{
	struct async_loop l = {
	    .io = {async_io_read, async_io_write, async_io_wait, &l},
	    .hook = {async_compute, &l},
	    .stacks = coro_ctx_stacks_new(ASYNC_STACK_SIZE, ASYNC_STACK_CACHE),
	};
	struct tpool *pool = tpool_create(server_workers(cfg));
	int lfd = server_listen(cfg, cfg->port, NET_NONBLOCK);
	int err = lfd < 0 ? lfd : -ENOMEM;

	coro_ctx_thread(&l.main);
	if (lfd >= 0 && pool && l.stacks)
		err = loop_epoll_init(&l.e, &async_ops, cfg, lfd, pool,
				      server_workers(cfg), &l.nopen);
	else if (lfd >= 0)
		close(lfd);
	if (!err) {
		l.e.l.tick_ms = ASYNC_TICK_MS;
		loop_epoll_run(&l.e);
		loop_epoll_destroy(&l.e);
	} else if (lfd >= 0) {
		log_err(err, "async: cannot start");
	}
	if (pool)
		tpool_destroy(pool);
	if (l.stacks)
		coro_ctx_stacks_free(l.stacks);
	return err;
}

const struct model model_async = {
    .name = "async",
    .summary = "the talk's scheduler: a coroutine per connection on one "
	       "epoll loop, fib on a thread pool",
    .concurrency = MODEL_PARALLEL,
    .talk_server = "async_server",
    .fits_10k = true,
    .max_workers = MODEL_MAX_WORKERS,
    .run = async_run,
};
