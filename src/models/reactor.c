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
 * Each loop is src/core/evloop.c: it reads, parses and writes every request
 * itself, and computes the cheap ones (EVCONN_INLINE_*_MAX_N) on the spot,
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
 */
#include "../core/evloop.h"
#include "../core/shards.h"
#include "model.h"

static int reactor_init(void *loop, const struct server_cfg *cfg, int lfd,
			struct tpool *pool, atomic_uint *nopen)
{
	return evloop_init(loop, cfg, lfd, pool, server_workers(cfg), nopen);
}

static void reactor_loop_run(void *loop)
{
	evloop_run(loop);
}

static void reactor_loop_destroy(void *loop)
{
	evloop_destroy(loop);
}

static const struct shard_ops reactor_shard_ops = {
    .what = "loop",
    .size = sizeof(struct evloop),
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
