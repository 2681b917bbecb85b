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
 * Each loop is src/core/evloop.c without a pool: it reads, computes and
 * writes every request itself, so a request costs no wake-up and no
 * hand-off at all, and N loops use N cores. Loops share nothing but the
 * connection count for --max-conns.
 *
 * The price is the one `many` pays: a loop computing a slow request stalls
 * every connection it owns, even while another loop idles. The async model
 * avoids that with its pool; this one bets that requests are cheap.
 */
#include "../core/evloop.h"
#include "../core/shards.h"
#include "model.h"

static int reactor_init(void *loop, const struct server_cfg *cfg, int lfd,
			atomic_uint *nopen)
{
	return evloop_init(loop, cfg, lfd, NULL, 1, nopen);
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
    .run = reactor_run,
};
