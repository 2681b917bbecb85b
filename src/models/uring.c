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
 * Inside one ring (src/core/uloop.c, src/core/uconn.c):
 *
 *	multishot ACCEPT --cqe: fd--> connection --> multishot RECV (armed once)
 *	                                               | cqe: bytes in a
 *	 provided-buffer ring <--- buffer back --------+ provided buffer
 *	 (256 x 4 KiB)                                 v
 *	                               copy, frame, compute fib inline
 *	                                               v
 *	                     SEND (one in flight) <-- replies, in order
 *
 * The reactor asks epoll "may I read?" and then reads: two system calls
 * for every burst of input, two more to write. Here the recv and accept
 * are asked for once and keep completing, replies go out as SEND SQEs,
 * and one io_uring_enter() per turn submits every send and reaps every
 * completion of the turn. Like the reactor, a ring computing a slow
 * request stalls every connection it owns; rings share nothing but the
 * connection count for --max-conns.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/uloop.h"
#include "model.h"

#define URING_MAX_RINGS 256

struct uring_shard {
	pthread_t thread;
	struct uloop loop;
	uint16_t port;
};

static void *uring_shard_main(void *arg)
{
	struct uring_shard *s = arg;

	uloop_run(&s->loop);
	uloop_destroy(&s->loop);
	return NULL;
}

/* Opens every listener and ring; nothing runs yet. Returns how many. */
static int uring_setup(const struct server_cfg *cfg, struct uring_shard *shards,
		       unsigned n, atomic_uint *nopen)
{
	unsigned i;
	int lfd, err = 0;

	for (i = 0; i < n; i++) {
		lfd = server_listen_shard(cfg, i, i ? shards[0].port : 0);
		if (lfd < 0) {
			err = lfd;
			break;
		}
		shards[i].port = (uint16_t)net_local_port(lfd);
		err = uloop_init(&shards[i].loop, cfg, lfd, nopen);
		if (err)
			break;
	}
	if (!err)
		return (int)n;
	while (i-- > 0)
		uloop_destroy(&shards[i].loop);
	return err;
}

static int uring_run(const struct server_cfg *cfg)
{
	static struct uring_shard shards[URING_MAX_RINGS];
	unsigned n = server_workers(cfg), started = 0;
	atomic_uint nopen = 0;
	int err;

	if (n > URING_MAX_RINGS)
		n = URING_MAX_RINGS;
	err = uring_setup(cfg, shards, n, &nopen);
	if (err < 0)
		return err;
	for (unsigned i = 0; i < (cfg->ports ? n : 1); i++)
		server_announce(cfg, shards[i].port);
	for (; started < n; started++) {
		err = -pthread_create(&shards[started].thread, NULL,
				      uring_shard_main, &shards[started]);
		if (err)
			break;
	}
	if (err) {
		/* The rings that did start serve on; the rest cannot. */
		log_err(err, "cannot start ring %u", started);
		for (unsigned i = started; i < n; i++)
			uloop_destroy(&shards[i].loop);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(shards[i].thread, NULL);
	return 0;
}

const struct model model_uring = {
    .name = "uring",
    .summary = "one io_uring per core: multishot accept and recv, "
	       "provided buffers",
    .concurrency = MODEL_SHARDED,
    .run = uring_run,
};
