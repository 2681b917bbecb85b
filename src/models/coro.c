/*
 * coro - the talk's Go server: one goroutine per connection, written in
 * plain blocking style, on an M:N runtime (src/coro/).
 *
 *	accept coroutine:  coro_accept -> coro_go(conn) -> coro_accept ...
 *	conn coroutine:    read line -> fib -> write reply -> ...
 *	                   (serve_conn(), the very loop the thread model runs,
 *	                    with reads and writes that park the coroutine)
 *
 *	worker 0 .. N-1 (threads): run queues, stealing, one shared epoll
 *
 * A read with nothing to read parks the coroutine, not its thread: the
 * worker runs another one, and epoll readiness makes the parked one
 * runnable again. So the code reads like thread.c, and a connection costs
 * a 256 KiB stack mapping (touched only as deep as it goes) instead of a
 * thread.
 *
 * fib runs on the coroutine itself, as Go runs it on the goroutine: the
 * worker thread is busy meanwhile, and the other workers keep serving.
 * There is no preemption, so with N workers, N concurrent fib(45) stall
 * every other connection until one finishes. --offload hands each fib to
 * the runtime's blocking pool instead (as Go hands blocking syscalls to
 * extra threads), which keeps the workers free at the price of a hand-off
 * per request.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "../coro/coro.h"
#include "../core/evaccept.h"
#include "../core/log.h"
#include "../core/serve.h"
#include "../core/stop.h"
#include "model.h"

/*
 * GMP keeps its temporaries on the stack (alloca) below a size limit, and
 * fast fib(100000) goes deep: 256 KiB of address space per coroutine, of
 * which a connection touches a few pages.
 */
#define CORO_STACK_SIZE (256 * 1024)
/* At a stop, connections get this long to finish before I/O is cancelled. */
#define CORO_STOP_GRACE_MS 5000
/* At a stop, how long the accept coroutine may go on emptying the queue. */
#define CORO_STOP_ACCEPT_MS 1000

struct coro_server {
	const struct server_cfg *cfg;
	struct coro_rt *rt;
	int lfd;
	struct evaccept acc; /* lfd and a reserve descriptor, for shedding */
	atomic_uint nconns;  /* for --max-conns */
	atomic_uint nbusy;   /* refused, waiting for their first bytes */
};

/* serve_io over coroutine I/O: a wait parks the coroutine, not the thread. */
static ssize_t coro_io_read(void *ctx, int fd, void *buf, size_t len,
			    unsigned timeout_ms)
{
	ssize_t n =
	    coro_read_timeout(fd, buf, len, timeout_ms ? (int)timeout_ms : -1);

	(void)ctx;
	return n == -ETIMEDOUT ? -EAGAIN : n;
}

static int coro_io_write(void *ctx, int fd, const void *buf, size_t len)
{
	ssize_t n = coro_write(fd, buf, len);

	(void)ctx;
	return n < 0 ? (int)n : 0;
}

static int coro_io_wait(void *ctx, int fd, unsigned timeout_ms)
{
	int err = coro_wait_input(fd, timeout_ms ? (int)timeout_ms : -1);

	(void)ctx;
	return err == -ETIMEDOUT ? -EAGAIN : err;
}

static const struct serve_io coro_io = {
    .read = coro_io_read,
    .write = coro_io_write,
    .wait = coro_io_wait,
};

/* --offload: fib on the runtime's blocking pool, the coroutine parked. */
struct coro_job {
	const struct proto_limits *lim;
	uint64_t n;
	struct reply *r;
};

static void coro_job_run(void *arg)
{
	struct coro_job *job = arg;

	proto_compute(job->lim, job->n, job->r);
}

static void coro_offload_compute(void *ctx, const struct proto_limits *lim,
				 uint64_t n, struct reply *r)
{
	struct coro_job job = {.lim = lim, .n = n, .r = r};

	(void)ctx;
	coro_offload(coro_job_run, &job);
}

static const struct serve_hook coro_offload_hook = {
    .compute = coro_offload_compute,
};

struct coro_conn {
	struct coro_server *srv;
	int fd;
};

/* One goroutine per connection. */
static void coro_conn_main(void *arg)
{
	struct coro_conn *c = arg;
	struct coro_server *srv = c->srv;
	int fd = c->fd;

	free(c);
	serve_conn(fd, srv->cfg, srv->cfg->offload ? &coro_offload_hook : NULL,
		   &coro_io);
	serve_untrack(fd);
	coro_close(fd);
	atomic_fetch_sub(&srv->nconns, 1);
}

/* Starts a goroutine for fd. Returns 0 or -ENOMEM. */
static int coro_start_conn(struct coro_server *srv, int fd)
{
	struct coro_conn *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	*c = (struct coro_conn){.srv = srv, .fd = fd};
	atomic_fetch_add(&srv->nconns, 1);
	serve_track(fd);
	if (coro_go(srv->rt, coro_conn_main, c) == 0)
		return 0;
	serve_untrack(fd);
	atomic_fetch_sub(&srv->nconns, 1);
	free(c);
	return -ENOMEM;
}

/* A refused connection's goroutine: its first bytes, then the answer. */
static void coro_busy_main(void *arg)
{
	struct coro_conn *c = arg;

	coro_wait_readable(c->fd, EVACCEPT_BUSY_WAIT_MS);
	evaccept_tell_busy(c->fd, c->srv->cfg);
	coro_close(c->fd);
	atomic_fetch_sub(&c->srv->nbusy, 1);
	free(c);
}

/*
 * Too many connections or no memory: say so in the client's protocol and
 * close, never die. Its first bytes get EVACCEPT_BUSY_WAIT_MS to come, in
 * a goroutine of its own (at most EVACCEPT_BUSY_MAX of them) so that the
 * accept loop goes on; past that, or without memory, it is answered now.
 */
static void coro_reject(struct coro_server *srv, int fd)
{
	struct coro_conn *c = NULL;

	if (atomic_fetch_add(&srv->nbusy, 1) < EVACCEPT_BUSY_MAX &&
	    (c = malloc(sizeof(*c)))) {
		*c = (struct coro_conn){.srv = srv, .fd = fd};
		if (coro_go(srv->rt, coro_busy_main, c) == 0)
			return;
		free(c);
	}
	atomic_fetch_sub(&srv->nbusy, 1);
	evaccept_tell_busy(fd, srv->cfg);
	coro_close(fd);
}

/*
 * Out of descriptors the connection stays in the backlog, where it would
 * wait unanswered: shed it with the reserve descriptor as the event loops
 * do (evaccept.h), one per failed accept, after the bounded wait for its
 * first bytes. Back off only when even that fails.
 */
static void coro_out_of_fds(struct coro_server *srv)
{
	int fd;

	if (evaccept_shed(&srv->acc) != -EBUSY) {
		coro_sleep(EVACCEPT_BACKOFF_MS);
		return;
	}
	fd = srv->acc.lent;
	coro_wait_readable(fd,
			   EVACCEPT_BUSY_WAIT_MS); /* parks this loop only */
	evaccept_tell_busy(fd, srv->cfg);
	coro_close(fd);
	evaccept_shed_done(&srv->acc);
}

static void coro_accept_main(void *arg)
{
	struct coro_server *srv = arg;
	int fd;

	for (;;) {
		fd = coro_accept(srv->lfd, NULL, NULL);
		if (fd == -EMFILE || fd == -ENFILE) {
			coro_out_of_fds(srv);
			continue;
		}
		if (fd == -ENOBUFS || fd == -ENOMEM) {
			coro_sleep(
			    EVACCEPT_BACKOFF_MS); /* memory may come back */
			continue;
		}
		if (fd < 0)
			break; /* the stop closed the listener */
		net_nodelay(fd);
		if (atomic_load(&srv->nconns) >= srv->cfg->max_conns ||
		    coro_start_conn(srv, fd) < 0)
			coro_reject(srv, fd);
	}
}

/*
 * Clients in the listener's accept queue connected before the stop, and
 * closing the listener would reset them: let the accept coroutine take
 * each one (they are answered like any connection) while any wait, for
 * at most CORO_STOP_ACCEPT_MS, since clients may keep coming.
 */
static void coro_take_queued(struct coro_server *srv)
{
	struct pollfd p = {.fd = srv->lfd, .events = POLLIN};
	unsigned waited = 0;

	while (poll(&p, 1, 0) == 1 && waited < CORO_STOP_ACCEPT_MS) {
		coro_sleep(1);
		waited++;
	}
}

/*
 * Waits for a stop, then: let the clients already queued be accepted,
 * close the listener (the accept coroutine wakes with -EBADF), shut every
 * connection's read side (each answers what it has read and leaves), and after
 * a grace period cancel what is still blocked (a client that never reads its
 * replies).
 */
static void coro_stopper_main(void *arg)
{
	struct coro_server *srv = arg;
	unsigned waited = 0;

	coro_wait_readable(stop_eventfd(), -1);
	coro_take_queued(srv);
	coro_close(srv->lfd);
	serve_stop_all();
	while (serve_tracked() && waited < CORO_STOP_GRACE_MS) {
		coro_sleep(20);
		waited += 20;
	}
	coro_rt_cancel_io(srv->rt);
}

/* The listener is the runtime's to close (coro_close()); the reserve not. */
static void coro_close_reserve(struct coro_server *srv)
{
	if (srv->acc.reserve >= 0)
		close(srv->acc.reserve);
}

static int coro_run(const struct server_cfg *cfg)
{
	struct coro_rt_opts opts = {
	    .workers = server_workers(cfg),
	    .stack_size = CORO_STACK_SIZE,
	};
	struct coro_server srv = {.cfg = cfg};

	srv.lfd = server_listen(cfg, cfg->port, NET_NONBLOCK);
	if (srv.lfd < 0)
		return srv.lfd;
	evaccept_init(&srv.acc, srv.lfd);
	srv.rt = coro_rt_new(&opts);
	if (!srv.rt) {
		int err = -errno;
		coro_close(srv.lfd);
		coro_close_reserve(&srv);
		return err;
	}
	if (coro_go(srv.rt, coro_accept_main, &srv) ||
	    coro_go(srv.rt, coro_stopper_main, &srv)) {
		log_msg("coro: cannot start the server's coroutines");
		coro_close(srv.lfd); /* ends the accept loop if it runs */
		coro_rt_cancel_io(srv.rt);
	}
	coro_rt_free(srv.rt); /* returns when every coroutine has finished */
	coro_close_reserve(&srv);
	return 0;
}

const struct model model_coro = {
    .name = "coro",
    .summary = "a coroutine per connection on an M:N runtime (Go's model)",
    .concurrency = MODEL_PARALLEL,
    .talk_server = "go_server",
    .fits_10k = true,
    .takes_offload = true,
    .max_workers = MODEL_MAX_WORKERS,
    .run = coro_run,
};
