/*
 * reactor - one event loop per core, sharing nothing (nginx's workers,
 * Seastar's shards), beyond the talk.
 *
 *	  thread 0                 thread 1                thread N-1
 *	+-----------+            +-----------+           +-----------+
 *	| epoll loop|            | epoll loop|    ...    | epoll loop|
 *	| listener 0|            | listener 1|           | listener  |
 *	+-----------+            +-----------+           +-----------+
 *	      \______________________ | ______________________/
 *	  one port, SO_REUSEPORT: the kernel hashes each connection to a loop
 *	  (or --ports: loop i on PORT+i)
 *
 * Each loop reads, parses and writes every request itself, and computes the
 * cheap ones (EVCONN_INLINE_*_MAX_N) on the spot,
 * with no wake-up and no hand-off at all; N loops use N cores. Loops share
 * nothing but the connection count for --max-conns, and one pool of N
 * threads for the expensive requests (src/core/shards.c starts it):
 *
 *	loop 0 --fib(35)--> +----------- pool -----------+ --> loop 0's queue
 *	loop 1 --fib(40)--> | N threads, one job queue  | --> loop 1's queue
 *	                    +----------------------------+  (a pipe each)
 *
 * Without the pool a loop computing fib(35) stalled every connection it
 * owns, even while another loop idled: the price `many` pays, and on one
 * SO_REUSEPORT port the kernel's hash decides who pays it (bench/run's
 * ioloadrp column). Each loop has its own completion queue, so a job comes
 * back to the loop that owns its connection and loops still share no
 * connection state.
 *
 * A connection is a state machine driven by callbacks (enum evconn_state):
 *
 *	accept --> OPEN: watch EPOLLIN, start the idle clock
 *	EPOLLIN  --> read once, evconn_take() answers what the caps allow,
 *	             write; EOF: DRAINING (answer the rest, then DONE)
 *	EPOLLOUT --> write the rest, take what the caps held back
 *	job done --> its reply joins the others in order, write
 *	timeout  --> idle: DONE; header: 408 or the ERR line, FAILING
 *	FAILING  --> everything written: FIN, LINGER (drop input till EOF)
 *	DONE     --> close
 *
 * and after each, reactor_settle() closes it or tells epoll what it now
 * waits for. The request core (src/core/evconn.h) frames, computes and
 * orders; the loop (src/core/loop.h) owns the listener, the deadlines,
 * --max-conns, the stop and the pool's completions.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/loop_epoll.h"
#include "../core/shards.h"
#include "model.h"

struct reactor {
	struct loop_epoll e; /* first: the loop's callbacks get &e.l */
	struct evconn *dead; /* to free after this batch, via tq_next */
};

/* Writes until the output is empty or the socket is full. 0 or -errno. */
static int reactor_write(struct evconn *c)
{
	ssize_t n;

	while (buf_used(&c->out)) {
		n = send(c->fd, buf_head(&c->out), buf_used(&c->out),
			 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		buf_consume(&c->out, (size_t)n);
		c->progress = true;
	}
	buf_free(&c->out); /* empty: idle connections hold no buffer */
	return 0;
}

/* OPEN, DRAINING or FAILING: replies are still owed to the client. */
static bool reactor_answering(const struct evconn *c)
{
	return c->state == EVCONN_OPEN || c->state == EVCONN_DRAINING ||
	       c->state == EVCONN_FAILING;
}

/*
 * Lets the request core answer what the caps allow and writes, until
 * nothing moves; once every reply is out, DRAINING is done and FAILING
 * sends FIN and lingers.
 */
static void reactor_answer(struct evconn *c)
{
	bool capped = evconn_take(c);

	for (;;) {
		if (c->state == EVCONN_DONE || reactor_write(c) < 0) {
			c->state = EVCONN_DONE;
			return;
		}
		if (!capped || !evconn_can_take(c))
			break;
		capped = evconn_take_more(c); /* within this event's budget */
	}
	if (c->head || buf_used(&c->out))
		return;
	if (c->state == EVCONN_DRAINING) {
		c->state = EVCONN_DONE;
	} else if (c->state == EVCONN_FAILING) {
		shutdown(c->fd, SHUT_WR);
		c->state = EVCONN_LINGER;
	}
}

/* LINGER: drop input until EOF or the cap; the loop enforces the time. */
static void reactor_linger(struct evconn *c)
{
	char sink[4096];
	ssize_t n = read(c->fd, sink, sizeof(sink));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || !evconn_lingered(c, (size_t)n))
		c->state = EVCONN_DONE;
}

/* EPOLLIN: read once, then answer what can be answered. */
static void reactor_on_readable(struct evconn *c)
{
	char *room;
	ssize_t n;

	if (c->state == EVCONN_LINGER) {
		reactor_linger(c);
		return;
	}
	if (!evconn_can_take(c))
		return; /* paused: epoll only reported an error or hang-up */
	room = evconn_read_room(c);
	if (!room) {
		c->state = EVCONN_DONE;
		return;
	}
	n = read(c->fd, room, evconn_read_size(c));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		c->state = EVCONN_DONE; /* reset: nobody to answer */
		return;
	}
	c->in.len += (size_t)n;
	if (n == 0)
		evconn_eof(c);
	reactor_answer(c);
	/*
	 * 10 000 idle connections holding 16 KiB each would be 160 MB; freed,
	 * the loop's allocator hands the same hot chunk to the next reader.
	 */
	if (!buf_used(&c->in))
		buf_free(&c->in);
}

/* The epoll events c waits for now: EPOLLIN, EPOLLOUT, both or none. */
static unsigned reactor_events(const struct evconn *c)
{
	unsigned ev = buf_used(&c->out) ? EPOLLOUT : 0;

	switch (c->state) {
	case EVCONN_OPEN:
		return ev | (evconn_can_take(c) ? EPOLLIN : 0);
	case EVCONN_DRAINING:
	case EVCONN_FAILING:
		return ev;
	case EVCONN_LINGER:
		return EPOLLIN;
	default:
		return 0;
	}
}

/*
 * A dead connection is freed only after the whole epoll batch: a later
 * event of the same batch may still point at it (a pool completion closed
 * it first, then the client's RST arrives as EPOLLERR), and must find it
 * CLOSED, not freed or reused. bench/soak found this under ASan.
 */
static void reactor_free_if_dead(struct reactor *r, struct evconn *c)
{
	if (evconn_is_dead(c)) {
		c->tq_next = r->dead;
		r->dead = c;
	}
}

static void reactor_turn(struct loop *l)
{
	struct reactor *r = (struct reactor *)l;
	struct evconn *c;

	while ((c = r->dead)) {
		r->dead = c->tq_next;
		free(c);
		l->nlive--;
	}
}

/*
 * After anything happened to c: close it if it is done; otherwise restart
 * its clock and tell epoll what it now waits for.
 */
static void reactor_settle(struct loop *l, struct evconn *c)
{
	unsigned want;

	if (c->state == EVCONN_CLOSED)
		return;
	if (c->state == EVCONN_DONE) {
		evconn_tq_remove(c);
		evconn_close(c);
		atomic_fetch_sub(l->nopen, 1);
		reactor_free_if_dead((struct reactor *)l, c);
		return;
	}
	loop_clock(l, c);
	want = reactor_events(c);
	if (want != c->armed &&
	    !loop_epoll_watch(loop_epoll_of(l), EPOLL_CTL_MOD, c->fd, want, c))
		c->armed = want;
}

/* A new connection: parked in epoll, waiting for its first line. */
static int reactor_accept(struct loop *l, int fd)
{
	struct evconn *c = malloc(sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	evconn_init(c, fd, &l->ecfg);
	c->armed = EPOLLIN;
	err =
	    loop_epoll_watch(loop_epoll_of(l), EPOLL_CTL_ADD, fd, c->armed, c);
	if (err) {
		metrics_conn_close(); /* evconn_init() counted it */
		free(c);
		return err;
	}
	loop_clock(l, c); /* the idle clock starts */
	return 0;
}

static void reactor_event(struct loop *l, void *ptr,
			  const struct loop_event *what)
{
	struct evconn *c = ptr;
	unsigned ev = what->events;

	if (c->state == EVCONN_CLOSED)
		return; /* closed earlier in this batch: a stale event */
	/*
	 * An error is a reset: nobody is left to answer. A hang-up means our
	 * write side is shut too, which is expected only while lingering.
	 */
	if ((ev & EPOLLERR) || ((ev & EPOLLHUP) && c->state != EVCONN_LINGER)) {
		evconn_abort(c);
	} else {
		if (ev & (EPOLLIN | EPOLLHUP))
			reactor_on_readable(c);
		if ((ev & EPOLLOUT) && reactor_answering(c))
			reactor_answer(c);
	}
	reactor_settle(l, c);
}

/* A pool job is done: its reply joins the others in order. */
static void reactor_job(struct loop *l, struct tpool_job *job)
{
	struct evconn *c = evconn_job_ready(job);

	if (c->state == EVCONN_CLOSED) {
		reactor_free_if_dead((struct reactor *)l, c);
		return;
	}
	if (reactor_answering(c))
		reactor_answer(c);
	reactor_settle(l, c);
}

/* Too slow: aborted, or its request answered with 408 or the ERR line. */
static void reactor_expire(struct loop *l, struct evconn *c)
{
	if (reactor_answering(c))
		reactor_answer(c);
	reactor_settle(l, c);
}

static const struct loop_ops reactor_ops = {
    .accept = reactor_accept,
    .event = reactor_event,
    .job = reactor_job,
    .expire = reactor_expire,
    .turn = reactor_turn,
};

static int reactor_init(void *loop, const struct server_cfg *cfg, int lfd,
			struct tpool *pool, atomic_uint *nopen)
{
	struct reactor *r = loop;

	r->dead = NULL;
	return loop_epoll_init(&r->e, &reactor_ops, cfg, lfd, pool,
			       server_workers(cfg), nopen);
}

static void reactor_loop_run(void *loop)
{
	loop_epoll_run(loop);
}

static void reactor_loop_destroy(void *loop)
{
	loop_epoll_destroy(loop);
}

static const struct shard_ops reactor_shard_ops = {
    .what = "loop",
    .size = sizeof(struct reactor),
    .init = reactor_init,
    .run = reactor_loop_run,
    .destroy = reactor_loop_destroy,
};

static int reactor_run(const struct server_cfg *cfg)
{
	return shards_run(cfg, &reactor_shard_ops);
}

const struct model model_reactor = {
    .name = "reactor",
    .summary = "one epoll loop per core, each with its own SO_REUSEPORT "
	       "listener",
    .concurrency = MODEL_SHARDED,
    .fits_10k = true,
    .takes_ports = true,
    .max_workers = 256, /* shards.c: SHARDS_MAX */
    .run = reactor_run,
};
