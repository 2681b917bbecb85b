/* clang-format off */
/*
 * async - the talk's async_server: one thread runs a scheduler of its own,
 * each connection is a task written as straight-line code, compute goes to
 * a pool, and a pipe wakes the loop when a future completes.
 *
 *   task (per connection): serve_conn()   loop (one thread):
 *     wait, read -- park on (fd, IN) ---> 1. run the ready tasks till they park
 *     fib(n)     -- park on a future ---> 2. epoll_wait, wake whom it names:
 *     write      -- park on (fd, OUT) -->    a task's fd; the pool's pipe (its
 *                                            futures are done); the listener
 *                                            (a new task); the stop eventfd
 *                                         3. every 100 ms: expire deadlines
 *
 * The talk's tasks are generators yielding ('recv', sock), ('send', sock)
 * or ('future', f). Ours are stackful coroutines (src/coro/ctx.h: the coro
 * runtime's context switch and stacks, not its scheduler): they can park
 * inside any function they call, so a task's body is the blocking models'
 * connection loop, serve_conn() (framing, HTTP, errors, limits, metrics),
 * with I/O and compute that park the task, not the thread. A stackless
 * protothread cannot yield from a callee: the request core would have to
 * become a state machine (src/core/evconn.c, the reactor's). A stack costs
 * address space, and memory only where a task touches it.
 *
 * The talk parks tasks in select(); we use epoll: select() takes only fds
 * below FD_SETSIZE (1024) and scans them all on each call, and async holds
 * 10,000 connections. The talk's pool is processes; C has no GIL, so ours
 * is threads (src/core/tpool.h), and its completion pipe is the talk's
 * socketpair. A cheap fib is computed by the task itself (async_compute()).
 */
/* clang-format on */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../coro/ctx.h"
#include "../core/evaccept.h"
#include "../core/evconn.h" /* EVCONN_INLINE_*: the measured thresholds */
#include "../core/log.h"
#include "../core/serve.h"
#include "../core/stop.h"
#include "../core/tpool.h"
#include "model.h"

/* serve_conn() and a fast fib(5000) need a few KiB; HTTP and ASan more. */
#define ASYNC_STACK_SIZE    (64 * 1024)
#define ASYNC_STACK_CACHE   256	 /* idle stacks kept for new tasks */
#define ASYNC_EVENTS	    64	 /* epoll events (and accepts) per wake-up */
#define ASYNC_TICK_MS	    100	 /* how often deadlines are looked at */
#define ASYNC_STOP_GRACE_MS 5000 /* for a client not reading at a stop */

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

struct async_loop {
	const struct server_cfg *cfg;
	int ep;
	struct evaccept acc; /* the listener, and a spare fd for EMFILE */
	struct tpool *pool;
	struct tpool_cq *cq; /* where finished futures come back */
	struct coro_ctx_stacks *stacks;
	struct coro_ctx main;		/* the loop's own stack */
	struct async_task *cur;		/* the task running now */
	struct async_task *head, *tail; /* the run queue */
	struct async_task *tasks;	/* every task */
	unsigned ntasks;
	struct evconn_cfg inl;		    /* inline_max_n, inline_free_n */
	uint64_t now, next_tick, grace_end; /* ms */
	bool stopping, accept_paused;
	struct serve_io io;
	struct serve_hook hook;
};

/* epoll's data.ptr for the descriptors that are not connections. */
static char async_tag_listener, async_tag_pool, async_tag_stop;

static uint64_t async_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
	struct epoll_event ev = {.events = events, .data.ptr = t};

	if (events && t->armed != events) {
		if (epoll_ctl(l->ep, t->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
			      t->fd, &ev))
			return -errno;
		t->armed = events;
	}
	t->budget = events ? EVCONN_INLINE_BUDGET : t->budget;
	t->want = events;
	/* From now, not from the loop's turn: that may be long past (a
	 * turn that ran many tasks), and a deadline that fires early cuts
	 * a request short that still had time. */
	t->deadline = timeout_ms ? async_now() + timeout_ms : 0;
	coro_ctx_switch(&t->ctx, &l->main);
	return t->expired ? -EAGAIN : 0;
}

/*
 * A task not parked on its fd leaves the epoll set until it parks there
 * again: level-triggered, the fd (or a reset's EPOLLERR, reported whatever
 * we ask) would wake the loop over and over while it waits for a future.
 */
static void async_on_fd(struct async_loop *l, struct async_task *t, unsigned ev)
{
	if (t->want && (ev & (t->want | EPOLLHUP | EPOLLERR))) {
		async_wake(l, t, false);
	} else if (!t->want) {
		epoll_ctl(l->ep, EPOLL_CTL_DEL, t->fd, NULL);
		t->armed = 0;
	}
}

/* Runs every ready task until it parks; frees it once it returns. */
static void async_run_ready(struct async_loop *l)
{
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
		l->ntasks--;
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
			err = async_park(l, EPOLLOUT, l->cfg->idle_timeout_ms);
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

	if (lim->engine != FIB_ENGINE_PYTHON && n <= l->inl.inline_max_n &&
	    (n <= l->inl.inline_free_n || (t->budget && t->budget--))) {
		proto_compute(lim, n, r);
		return;
	}
	t->job = (struct tpool_job){.run = async_future_run, .cq = l->cq};
	t->lim = lim;
	t->n = n;
	t->r = r;
	tpool_submit(l->pool, &t->job);
	async_park(l, 0, 0); /* no timeout: r lives on this stack */
}

/* A task's whole life: the connection loop of every blocking model. */
static void async_task_main(void *arg)
{
	struct async_loop *l = arg;

	serve_conn(l->cur->fd, l->cfg, &l->hook, &l->io);
}

/*
 * Takes up to max waiting connections, each a new task, ready to run up to
 * its first wait. Beyond --max-conns: "ERR server busy". Out of
 * descriptors, evaccept sheds the newcomer the same way; if even that
 * fails, the listener rests until the next tick.
 */
static void async_accept(struct async_loop *l, unsigned max)
{
	struct async_task *t;
	int fd;

	for (unsigned i = 0; i < max; i++) {
		fd = evaccept_next(&l->acc, l->cfg);
		if (fd == -EAGAIN)
			return;
		if (fd < 0 && fd != -EBUSY) {
			epoll_ctl(l->ep, EPOLL_CTL_DEL, l->acc.lfd, NULL);
			l->accept_paused = true;
			return;
		}
		if (fd < 0)
			continue;
		t = l->ntasks < l->cfg->max_conns ? calloc(1, sizeof(*t))
						  : NULL;
		if (!t || coro_ctx_make(&t->ctx, l->stacks, async_task_main, l,
					&l->main)) {
			free(t);
			server_reject_busy(fd, l->cfg);
			continue;
		}
		t->fd = fd;
		t->next_t = l->tasks;
		if (l->tasks)
			l->tasks->prev_t = t;
		l->tasks = t;
		l->ntasks++;
		async_wake(l, t, false);
	}
}

/*
 * SIGTERM or SIGINT: take the connections already in the accept queue,
 * close the listener, and shut every task's read side: each answers what
 * it has read, then leaves. A task waiting for a future gets its reply; a
 * client that does not read has ASYNC_STOP_GRACE_MS (async_tick()).
 */
static void async_stop(struct async_loop *l)
{
	l->stopping = true;
	epoll_ctl(l->ep, EPOLL_CTL_DEL, stop_eventfd(), NULL);
	async_accept(l, -1u);
	evaccept_close(&l->acc);
	for (struct async_task *t = l->tasks; t; t = t->next_t)
		shutdown(t->fd, SHUT_RD);
	l->grace_end = l->now + ASYNC_STOP_GRACE_MS;
}

static int async_watch(struct async_loop *l, int fd, void *tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

	return epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/*
 * Every ASYNC_TICK_MS (as Redis's serverCron looks at client timeouts):
 * wake the tasks whose deadline passed; once a stop's grace is over, shut
 * every socket a task still waits on, so that its wait fails.
 */
static void async_tick(struct async_loop *l)
{
	bool graceless = l->grace_end && l->now >= l->grace_end;

	if (l->now < l->next_tick)
		return;
	l->next_tick = l->now + ASYNC_TICK_MS;
	for (struct async_task *t = l->tasks; t; t = t->next_t) {
		if (t->deadline && t->deadline <= l->now)
			async_wake(l, t, true);
		else if (graceless && t->want)
			shutdown(t->fd, SHUT_RDWR);
	}
	if (l->accept_paused && !l->stopping)
		async_watch(l, l->acc.lfd, &async_tag_listener);
	l->accept_paused = false;
}

/* Runs tasks, waits, wakes tasks: until a stop has seen every task end. */
static void async_loop_run(struct async_loop *l)
{
	struct epoll_event evs[ASYNC_EVENTS];
	struct tpool_job *j;
	void *p;
	int n;

	while (!l->stopping || l->ntasks) {
		n = epoll_wait(l->ep, evs, ASYNC_EVENTS,
			       l->ntasks || l->accept_paused ? ASYNC_TICK_MS
							     : -1);
		l->now = async_now();
		for (int i = 0; i < n; i++) {
			p = evs[i].data.ptr;
			if (p == &async_tag_listener)
				async_accept(l, ASYNC_EVENTS);
			else if (p == &async_tag_stop)
				async_stop(l);
			else if (p != &async_tag_pool)
				async_on_fd(l, p, evs[i].events);
			else /* futures done: wake their tasks */
				for (j = tpool_cq_reap(l->cq); j; j = j->next)
					async_wake(l, (struct async_task *)j,
						   false);
		}
		async_tick(l);
		async_run_ready(l);
	}
}

/* After a stop has seen every task end, no future is left in the pool. */
static int async_run(const struct server_cfg *cfg)
{
	struct async_loop l = {
	    .cfg = cfg,
	    .io = {async_io_read, async_io_write, async_io_wait, &l},
	    .hook = {async_compute, &l},
	    .now = async_now(),
	};
	int lfd = server_listen(cfg, cfg->port, NET_NONBLOCK), err = 0;

	if (lfd < 0)
		return lfd;
	evaccept_init(&l.acc, lfd);
	coro_ctx_thread(&l.main);
	l.ep = epoll_create1(EPOLL_CLOEXEC);
	l.pool = tpool_create(server_workers(cfg));
	l.cq = tpool_cq_create();
	l.stacks = coro_ctx_stacks_new(ASYNC_STACK_SIZE, ASYNC_STACK_CACHE);
	evconn_cfg_init(&l.inl, &cfg->limits, l.pool, 0);
	if (l.ep < 0 || !l.pool || !l.cq || !l.stacks ||
	    async_watch(&l, lfd, &async_tag_listener) ||
	    async_watch(&l, tpool_cq_fd(l.cq), &async_tag_pool) ||
	    async_watch(&l, stop_eventfd(), &async_tag_stop)) {
		err = -errno;
		log_err(err, "async: cannot start");
		evaccept_close(&l.acc);
	} else {
		async_loop_run(&l);
	}
	if (l.pool)
		tpool_destroy(l.pool);
	if (l.cq)
		tpool_cq_destroy(l.cq);
	if (l.stacks)
		coro_ctx_stacks_free(l.stacks);
	if (l.ep >= 0)
		close(l.ep);
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
