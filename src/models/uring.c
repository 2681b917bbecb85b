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
 *	                    copy, frame, cheap? compute fib inline
 *	                                  | else: to the pool the rings share
 *	 POLL (multishot) on the ring's   v        (src/core/shards.h)
 *	 completion pipe --------> replies, in order --> SEND (one in flight)
 *
 * The reactor asks epoll "may I read?" and then reads: two system calls
 * for every burst of input, two more to write. Here the recv and accept
 * are asked for once and keep completing, replies go out as SEND SQEs,
 * and one io_uring_enter() per turn submits every send and reaps every
 * completion of the turn. Like the reactor's loops, a ring computes only
 * cheap requests itself and hands the rest to the pool, so a slow request
 * never stalls the other connections of its ring; rings share nothing but
 * the pool and the connection count for --max-conns.
 */
#include "../core/uloop.h"
#include "../core/shards.h"
#include "model.h"

static int uring_init(void *loop, const struct server_cfg *cfg, int lfd,
		      struct tpool *pool, atomic_uint *nopen)
{
	return uloop_init(loop, cfg, lfd, pool, server_workers(cfg), nopen);
}

static void uring_loop_run(void *loop)
{
	uloop_run(loop);
}

static void uring_loop_destroy(void *loop)
{
	uloop_destroy(loop);
}

static const struct shard_ops uring_shard_ops = {
    .what = "ring",
    .size = sizeof(struct uloop),
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
