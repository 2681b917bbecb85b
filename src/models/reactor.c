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
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/evloop.h"
#include "../core/log.h"
#include "model.h"

#define REACTOR_MAX_LOOPS 256

struct reactor_shard {
	pthread_t thread;
	struct evloop loop;
	uint16_t port;
};

static void *reactor_shard_main(void *arg)
{
	struct reactor_shard *s = arg;

	evloop_run(&s->loop);
	evloop_destroy(&s->loop);
	return NULL;
}

/* Opens every listener and loop; nothing runs yet. Returns how many. */
static int reactor_setup(const struct server_cfg *cfg,
			 struct reactor_shard *shards, unsigned n,
			 atomic_uint *nopen)
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
		err = evloop_init(&shards[i].loop, cfg, lfd, NULL, 1, nopen);
		if (err)
			break;
	}
	if (!err)
		return (int)n;
	/* Shard i failed and cleaned up after itself; undo the ones before. */
	while (i-- > 0)
		evloop_destroy(&shards[i].loop);
	return err;
}

static int reactor_run(const struct server_cfg *cfg)
{
	static struct reactor_shard shards[REACTOR_MAX_LOOPS];
	unsigned n = server_workers(cfg), started = 0;
	atomic_uint nopen = 0;
	int err;

	if (n > REACTOR_MAX_LOOPS)
		n = REACTOR_MAX_LOOPS;
	err = reactor_setup(cfg, shards, n, &nopen);
	if (err < 0)
		return err;
	for (unsigned i = 0; i < (cfg->ports ? n : 1); i++)
		server_announce(cfg, shards[i].port);
	for (; started < n; started++) {
		err = -pthread_create(&shards[started].thread, NULL,
				      reactor_shard_main, &shards[started]);
		if (err)
			break;
	}
	if (err) {
		/* The loops that did start serve on; the rest cannot. */
		log_err(err, "cannot start loop %u", started);
		for (unsigned i = started; i < n; i++)
			evloop_destroy(&shards[i].loop);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(shards[i].thread, NULL);
	return 0;
}

const struct model model_reactor = {
    .name = "reactor",
    .summary = "one epoll loop per core, each with its own SO_REUSEPORT "
	       "listener",
    .concurrency = MODEL_SHARDED,
    .run = reactor_run,
};
