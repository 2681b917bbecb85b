/*
 * uring - the reactor on io_uring, beyond the talk: one ring per core, each
 * with its own SO_REUSEPORT listener, completions instead of readiness.
 *
 *	  thread 0                 thread 1                thread N-1
 *	+-----------+            +-----------+           +-----------+
 *	| io_uring  |            | io_uring  |    ...    | io_uring  |
 *	| SQ -> CQ  |            | SQ -> CQ  |           | SQ -> CQ  |
 *	| listener 0|            | listener 1|           | listener  |
 *	+-----------+            +-----------+           +-----------+
 *	      \______________________ | ______________________/
 *	  one port, SO_REUSEPORT: the kernel hashes each connection to a ring
 *	  (or --ports: ring i on PORT+i)
 *
 * Inside one ring (src/core/loop_uring.c runs the ring, the buffer ring, the
 * accept and the pool's poll; this file is the connection):
 *
 *	multishot ACCEPT --cqe: fd--> connection --> multishot RECV (armed once)
 *	                                               | cqe: bytes in a
 *	 provided-buffer ring <--- buffer back --------+ provided buffer
 *	 (256 x 4 KiB)                                 v
 *	                    copy, frame, cheap? compute fib inline
 *	                                  | else: to the pool the rings share
 *	 POLL (multishot) on the ring's   v        (src/core/shards.h)
 *	 completion pipe --------> replies, in order --> SEND (one in flight)
 *
 * The reactor asks epoll "may I read?" and then reads: two system calls
 * for every burst of input, two more to write. Here the recv and accept
 * are asked for once and keep completing, replies go out as SEND SQEs,
 * and one io_uring_enter() per turn submits every send and reaps every
 * completion of the turn. Like the reactor, a ring computes only cheap
 * requests itself and shares nothing but the pool and --max-conns' count.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/loop_uring.h"
#include "../core/shards.h"
#include "model.h"

#define URING_IN_MAX 65536 /* input held (+ max_line) before recv pauses */

/* The multishot recv, seen from user space. */
enum uring_recv {
	URING_RECV_IDLE,       /* not armed: input capped, ended, ENOBUFS */
	URING_RECV_ARMED,      /* completions carry data till one lacks MORE */
	URING_RECV_CANCELLING, /* a cancel is queued; the last CQE is due */
	URING_RECV_EOF,	       /* the client's EOF (or an error): never again */
};

struct uconn {
	struct evconn ev; /* first: the timeout queues hold &ev */
	struct loop_uring *u;
	enum uring_recv recv;
	bool sending;	 /* a send is in flight: it owns wire */
	bool cancelling; /* its cancel is queued */
	struct buf wire; /* the bytes of the send in flight */
	int fd;		 /* closed only in uconn_free(): see uconn_close() */
};

/* Operations or pool jobs in flight: the struct must outlive them. */
static bool uconn_busy(const struct uconn *c)
{
	return c->recv == URING_RECV_ARMED ||
	       c->recv == URING_RECV_CANCELLING || c->sending || c->ev.njobs;
}

/* Frees c; after the ring is gone (an aborted loop), open ones too. */
static void uconn_free(struct uconn *c)
{
	if (c->ev.state != EVCONN_CLOSED) {
		evconn_close(&c->ev);
		atomic_fetch_sub(c->u->l.nopen, 1);
	}
	evconn_tq_remove(&c->ev);
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->wire);
	c->u->l.nlive--;
	free(c);
}

/*
 * Done: cancel what is in flight; close fd and free c at the last
 * completion. An SQE names fd by number, looked up when the kernel issues
 * it: closed now, the number could go to a client accepted before the next
 * submit, and an old send still in the SQ would write to the new client.
 */
static void uconn_close(struct uconn *c)
{
	struct loop_uring *u = c->u;

	evconn_tq_touch(&c->u->closing, &c->ev, 0);
	if (c->recv == URING_RECV_ARMED) {
		loop_uring_cancel(u, c, LOOP_URING_RECV);
		c->recv = URING_RECV_CANCELLING;
	}
	if (c->sending && !c->cancelling) {
		loop_uring_cancel(u, c, LOOP_URING_SEND);
		c->cancelling = true;
	}
	c->fd = c->ev.fd;
	c->ev.fd = -1;		/* closed in uconn_free() */
	evconn_release(&c->ev); /* EVCONN_CLOSED from now on */
	atomic_fetch_sub(u->l.nopen, 1);
	if (!uconn_busy(c))
		uconn_free(c);
}

/* Queues one send of everything waiting, unless one is in flight. */
static void uconn_send(struct uconn *c)
{
	struct io_uring_sqe *sqe;
	struct buf t;

	if (c->sending)
		return;
	if (!buf_used(&c->wire)) {
		if (!buf_used(&c->ev.out))
			return;
		t = c->wire; /* its storage is reused for the next replies */
		c->wire = c->ev.out;
		c->ev.out = t;
	}
	sqe = loop_uring_sqe(c->u);
	io_uring_prep_send(sqe, c->ev.fd, buf_head(&c->wire),
			   buf_used(&c->wire), MSG_NOSIGNAL);
	loop_uring_tag(sqe, c, LOOP_URING_SEND);
	c->sending = true;
}

/*
 * Answers what the caps allow, the EOF once no whole line is left, and
 * sends; once every reply is out (none in flight, waiting or computing),
 * DRAINING is done and FAILING lingers.
 */
static void uconn_answer(struct uconn *c)
{
	struct evconn *e = &c->ev;
	bool capped = false;

	if (e->state == EVCONN_OPEN && buf_used(&e->in))
		capped = evconn_take(e);
	if (!buf_used(&e->in))
		buf_free(&e->in); /* idle connections hold no buffer */
	if (!capped && c->recv == URING_RECV_EOF && e->state == EVCONN_OPEN)
		evconn_eof(e);
	uconn_send(c);
	if (c->sending || buf_used(&c->wire) || buf_used(&e->out) || e->head)
		return;
	if (e->state == EVCONN_DRAINING) {
		e->state = EVCONN_DONE;
	} else if (e->state == EVCONN_FAILING) {
		shutdown(e->fd, SHUT_WR);
		e->state = EVCONN_LINGER;
	}
}

/*
 * OPEN takes input up to its cap, beyond the longest line: while a line is
 * still unfinished there is nothing to answer, and its end must come in.
 * FAILING and LINGER read to drop it.
 */
static bool uconn_wants_input(const struct uconn *c)
{
	if (c->ev.state == EVCONN_OPEN)
		return buf_used(&c->ev.in) <
		       URING_IN_MAX + c->ev.cfg->lim->max_line;
	return c->ev.state == EVCONN_FAILING || c->ev.state == EVCONN_LINGER;
}

/* Arms the multishot recv, or cancels it, as the state now asks. */
static void uconn_steer_recv(struct uconn *c)
{
	bool want = uconn_wants_input(c);
	struct io_uring_sqe *sqe;

	if (want && c->recv == URING_RECV_IDLE) {
		sqe = loop_uring_sqe(c->u);
		io_uring_prep_recv_multishot(sqe, c->ev.fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = LOOP_URING_BGID;
		loop_uring_tag(sqe, c, LOOP_URING_RECV);
		c->recv = URING_RECV_ARMED;
	} else if (!want && c->recv == URING_RECV_ARMED) {
		loop_uring_cancel(c->u, c, LOOP_URING_RECV);
		c->recv = URING_RECV_CANCELLING;
	}
}

/* After anything happened to c: answer, close, restart its clock, recv. */
static void uconn_settle(struct uconn *c)
{
	struct evconn *e = &c->ev;

	if (e->state == EVCONN_CLOSED) {
		if (!uconn_busy(c))
			uconn_free(c);
		return;
	}
	if (e->state != EVCONN_LINGER && e->state != EVCONN_DONE)
		uconn_answer(c);
	if (e->state == EVCONN_LINGER && c->recv == URING_RECV_EOF)
		e->state = EVCONN_DONE; /* the client has read the error */
	if (e->state == EVCONN_DONE) {
		uconn_close(c);
		return;
	}
	loop_clock(&c->u->l, e);
	uconn_steer_recv(c);
}

/* A new connection: its recv goes in with the next submit. */
static int uring_accept(struct loop *l, int fd)
{
	struct uconn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	evconn_init(&c->ev, fd, &l->ecfg);
	c->fd = -1; /* set when closing */
	c->u = loop_uring_of(l);
	c->recv = URING_RECV_IDLE;
	c->wire = (struct buf)BUF_INIT;
	uconn_settle(c);
	return 0;
}

/*
 * Bytes arrived: OPEN keeps them, LINGER counts and drops them. ENOBUFS:
 * the recv is IDLE and settle arms it again, with the next submit, after
 * this batch of completions has given every provided buffer back.
 */
static void uconn_on_recv(struct uconn *c, const struct loop_event *ev)
{
	struct evconn *e = &c->ev;

	if (!(ev->flags & IORING_CQE_F_MORE))
		c->recv = ev->res == 0 ? URING_RECV_EOF : URING_RECV_IDLE;
	if (ev->res > 0 && e->state == EVCONN_OPEN &&
	    buf_append(&e->in, ev->data, (size_t)ev->res))
		e->state = EVCONN_DONE;
	if (ev->res > 0 && e->state == EVCONN_LINGER &&
	    !evconn_lingered(e, (size_t)ev->res))
		e->state = EVCONN_DONE;
	if (ev->res < 0 && ev->res != -ECANCELED && ev->res != -ENOBUFS &&
	    e->state != EVCONN_CLOSED) {
		c->recv = URING_RECV_EOF;
		evconn_abort(e); /* reset: nobody to answer */
	}
	uconn_settle(c); /* EOF: answered by uconn_answer() */
}

static void uconn_on_send(struct uconn *c, int res)
{
	c->sending = c->cancelling = false;
	if (c->ev.state != EVCONN_CLOSED && res < 0) {
		evconn_abort(&c->ev);
	} else if (c->ev.state != EVCONN_CLOSED) {
		buf_consume(&c->wire, (size_t)res);
		c->ev.progress |= res > 0;
		if (!buf_used(&c->wire))
			buf_free(&c->wire); /* nor an empty one */
	}
	uconn_settle(c);
}

static void uring_event(struct loop *l, void *ptr, const struct loop_event *ev)
{
	(void)l;
	if (ev->op == LOOP_URING_RECV)
		uconn_on_recv(ptr, ev);
	else
		uconn_on_send(ptr, ev->res);
}

/* Too slow: aborted, or its request answered with 408 or the ERR line. */
static void uring_expire(struct loop *l, struct evconn *e)
{
	(void)l;
	uconn_settle((struct uconn *)e); /* ev first: e is the uconn */
}

/* A pool job is done: its reply joins the others in order, and is sent. */
static void uring_job(struct loop *l, struct tpool_job *job)
{
	uring_expire(l, evconn_job_ready(job));
}

static const struct loop_ops uring_ops = {
    .accept = uring_accept,
    .event = uring_event,
    .job = uring_job,
    .expire = uring_expire,
};

static int uring_init(void *loop, const struct server_cfg *cfg, int lfd,
		      struct tpool *pool, atomic_uint *nopen)
{
	return loop_uring_init(loop, &uring_ops, cfg, lfd, pool,
			       server_workers(cfg), nopen);
}

static void uring_loop_run(void *loop)
{
	loop_uring_run(loop);
}

/* Once the ring is gone, frees every connection left (an aborted loop). */
static void uring_loop_destroy(void *loop)
{
	struct loop_uring *u = loop;
	struct evconn_tq *qs[] = {&u->l.idle, &u->l.header, &u->l.linger,
				  &u->closing};
	struct uconn *c;

	loop_uring_destroy(u);
	for (unsigned i = 0; i < 4; i++)
		while ((c = (struct uconn *)qs[i]->head))
			uconn_free(c);
}

static const struct shard_ops uring_shard_ops = {
    .what = "ring",
    .size = sizeof(struct loop_uring),
    .init = uring_init,
    .run = uring_loop_run,
    .destroy = uring_loop_destroy,
};

static int uring_run(const struct server_cfg *cfg)
{
	return shards_run(cfg, &uring_shard_ops);
}

const struct model model_uring = {
    .name = "uring",
    .summary = "one io_uring per core: multishot accept and recv, "
	       "provided buffers",
    .concurrency = MODEL_SHARDED,
    .fits_10k = true,
    .takes_ports = true,
    .uses_io_uring = true,
    .max_workers = 256, /* shards.c: SHARDS_MAX */
    .run = uring_run,
};
