/*
 * isolate - the talk's subinterpreters_server: each connection gets a
 * private compute worker that shares nothing with it. The two talk only
 * through a pair of channels, and every request and reply is serialised
 * on the way in and decoded on the way out.
 *
 *	          +------------------- one connection --------------------+
 *	client -->| conn thread --- req chan: n as 8 bytes, LE ---> worker |
 *	       <--| read, parse <-- rep chan: the reply's bytes --- fib    |
 *	          +--------------------------------------------------------+
 *
 *	main:    accept -> spawn a connection thread -> accept ...
 *	conn:    start a worker -> read line -> parse -> encode n -> send,
 *	         wait -> decode reply -> write -> ... -> close, join worker
 *	worker:  receive -> decode n -> fib -> encode reply -> send -> ...
 *
 * More than a thread: a second thread per connection, a copy each way and
 * a wake-up of the other thread per request. Less than a process: no exec,
 * no address space of its own, and the channel is plain memory (core/chan).
 *
 * With --engine python the worker is what the talk's is: a CPython
 * subinterpreter of its own (Py_NewInterpreter on the worker's thread,
 * Py_EndInterpreter when it ends), with its own modules and its own fib.
 * In Python 3.11 subinterpreters still share one GIL, so isolate computes
 * no more at once than thread does: the talk's 350 -> 350.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>

#include "../core/chan.h"
#include "../core/evaccept.h"
#include "../core/log.h"
#include "../core/pyengine.h"
#include "../core/serve.h"
#include "../core/stop.h"
#include "thread.h"
#include "model.h"

#define ISOLATE_REQ_RING 64   /* a request is 8 bytes + a 4-byte frame */
#define ISOLATE_REP_RING 4096 /* big replies flow through in pieces */

/*
 * One connection's worker. The channels are the only part both threads
 * touch; lim is copied to the worker's stack before it starts serving, and
 * `in` belongs to the connection thread alone.
 */
struct isolate {
	struct chan req;	 /* connection -> worker: an encoded n */
	struct chan rep;	 /* worker -> connection: a reply's bytes */
	struct proto_limits lim; /* the worker's limits, copied at start */
	struct buf in;		 /* the connection's receive buffer */
	pthread_t worker;
};

/* The request, marshalled: n as 8 bytes, least significant first. */
static void isolate_encode(uint64_t n, unsigned char msg[8])
{
	for (int i = 0; i < 8; i++)
		msg[i] = (unsigned char)(n >> (8 * i));
}

static int isolate_decode(const struct buf *msg, uint64_t *n)
{
	const unsigned char *p = (const unsigned char *)buf_head(msg);

	if (buf_used(msg) != 8)
		return -EPROTO;
	*n = 0;
	for (int i = 7; i >= 0; i--)
		*n = *n << 8 | p[i];
	return 0;
}

/* The worker thread: its own limits, its own buffer, its own replies. */
static void *isolate_worker(void *arg)
{
	struct isolate *iso = arg;
	struct chan *req = &iso->req, *rep = &iso->rep; /* all it touches */
	struct proto_limits lim = iso->lim;		/* its own copy */
	struct buf msg = BUF_INIT;
	struct reply r;
	uint64_t n;
	int err = 0, py_err = 0;

	if (lim.engine == FIB_ENGINE_PYTHON) {
		py_err = pyengine_sub_begin();
		if (py_err)
			log_err(py_err, "isolate: no subinterpreter");
	}
	while (!err && chan_recv(req, &msg) >= 0) {
		if (py_err || isolate_decode(&msg, &n) < 0)
			proto_error_reply(&lim, PROTO_INTERNAL, &r);
		else if (n > lim.max_n) /* never trust a message */
			proto_error_reply(&lim, PROTO_TOO_LARGE, &r);
		else
			proto_compute(&lim, n, &r);
		buf_consume(&msg, buf_used(&msg));
		err = chan_send(rep, r.text, r.len);
		reply_release(&r);
	}
	pyengine_sub_end();
	buf_free(&msg);
	return NULL;
}

/* The connection's compute hook: send n over, wait for the reply bytes. */
static void isolate_compute(void *ctx, const struct proto_limits *lim,
			    uint64_t n, struct reply *r)
{
	struct isolate *iso = ctx;
	unsigned char msg[8];
	ssize_t len;

	isolate_encode(n, msg);
	len = chan_send(&iso->req, msg, sizeof(msg));
	if (len == 0)
		len = chan_recv(&iso->rep, &iso->in);
	if (len <= 0 || buf_head(&iso->in)[len - 1] != '\n' ||
	    reply_set(r, buf_head(&iso->in), (size_t)len) < 0)
		proto_error_reply(lim, PROTO_INTERNAL, r);
	buf_consume(&iso->in, buf_used(&iso->in));
}

/* Creates the channels and the worker. Returns 0 or -errno. */
static int isolate_start(struct isolate *iso, const struct server_cfg *cfg)
{
	pthread_attr_t attr;
	int err;

	memset(iso, 0, sizeof(*iso));
	iso->lim = cfg->limits;
	err = chan_init(&iso->req, ISOLATE_REQ_RING);
	if (err)
		return err;
	err = chan_init(&iso->rep, ISOLATE_REP_RING);
	if (err)
		goto out_destroy_req;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	err = -pthread_create(&iso->worker, &attr, isolate_worker, iso);
	pthread_attr_destroy(&attr);
	if (err)
		goto out_destroy_rep;
	return 0;

out_destroy_rep:
	chan_destroy(&iso->rep);
out_destroy_req:
	chan_destroy(&iso->req);
	return err;
}

/* Closing the channels makes the worker leave its loop. */
static void isolate_stop(struct isolate *iso)
{
	chan_close(&iso->req);
	chan_close(&iso->rep);
	pthread_join(iso->worker, NULL);
	chan_destroy(&iso->rep);
	chan_destroy(&iso->req);
	buf_free(&iso->in);
}

/*
 * No worker for this connection: it is turned away busy, as a server over
 * --max-conns turns one away (server_reject_busy()), in its own protocol:
 * its first bytes, waited for briefly, tell an HTTP client (a 503 with
 * Retry-After) from a fib/1 one ("ERR server busy"). The caller closes fd.
 */
static void isolate_turn_away(int fd, const struct server_cfg *cfg)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (poll(&p, 1, EVACCEPT_BUSY_WAIT_MS) < 0 && errno == EINTR &&
	       !stop_requested())
		;
	evaccept_tell_busy(fd, cfg);
}

/* A connection thread: a worker of its own, then the shared loop. */
static void isolate_serve(int fd, const struct server_cfg *cfg, void *ctx)
{
	struct isolate iso;
	struct serve_hook hook = {.compute = isolate_compute, .ctx = &iso};

	(void)ctx;
	if (isolate_start(&iso, cfg) < 0) {
		isolate_turn_away(fd, cfg);
		return;
	}
	serve_blocking(fd, cfg, &hook);
	isolate_stop(&iso);
}

static int isolate_run(const struct server_cfg *cfg)
{
	static const struct thread_ops ops = {.serve = isolate_serve};

	return thread_serve(cfg, &ops);
}

const struct model model_isolate = {
    .name = "isolate",
    .summary = "thread per connection; fib in a private worker thread, "
	       "over channels",
    .concurrency = MODEL_PARALLEL,
    .talk_server = "subinterpreters_server",
    .python_serial = true,
    .run = isolate_run,
};
