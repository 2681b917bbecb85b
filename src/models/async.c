/* clang-format off */
/*
 * async - the talk's async_server: one event loop, connections as tasks,
 * compute handed to a pool, completion waking the loop.
 *
 *                   +-------------------- epoll ---------------------+
 *   listener -----> | accept, --max-conns, EMFILE shedding           |
 *   conn fds -----> | read -> frame -> cheap? answer inline          |
 *                   |                 else  -> submit to the pool ---+--> workers
 *   pool pipe ----> | reap finished jobs -> fill slot -> write   <---+--- (fib)
 *   stop eventfd -> | stop accepting, drain, close                   |
 *                   +------------------------------------------------+
 *
 * The talk's scheduler parks generator tasks in select() and sends every
 * request through a process pool, waking the loop with a socketpair. Ours
 * parks connections (src/core/evconn.h, an explicit state machine) in
 * epoll, wakes on a pipe (as the talk's socketpair: src/core/tpool.h says
 * why not an eventfd), and keeps cheap requests on the loop, where
 * they cost less than the hand-off would (see EVCONN_INLINE_*_MAX_N).
 *
 * The loop itself is src/core/evloop.c, shared with the reactor model; this
 * file adds the pool. One thread runs the loop; the pool's threads run only
 * proto_compute().
 */
/* clang-format on */
#include <errno.h>
#include <stdatomic.h>

#include "../core/evloop.h"
#include "../core/tpool.h"
#include "model.h"

static int async_run(const struct server_cfg *cfg)
{
	unsigned workers = server_workers(cfg);
	atomic_uint nopen = 0;
	struct evloop loop;
	struct tpool *pool;
	int lfd, err;

	pool = tpool_create(workers);
	if (!pool)
		return -errno;
	lfd = server_listen(cfg, cfg->port, NET_NONBLOCK);
	if (lfd < 0) {
		err = lfd;
		goto out_destroy_pool;
	}
	err = evloop_init(&loop, cfg, lfd, pool, workers, &nopen);
	if (err)
		goto out_destroy_pool;
	evloop_run(&loop);
	evloop_destroy(&loop);
out_destroy_pool:
	tpool_destroy(pool);
	return err;
}

const struct model model_async = {
    .name = "async",
    .summary = "one epoll loop; compute on a thread pool, a pipe wakes it",
    .concurrency = MODEL_PARALLEL,
    .talk_server = "async_server",
    .fits_10k = true,
    .max_workers = MODEL_MAX_WORKERS,
    .run = async_run,
};
