#include "shards.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "log.h"

#define SHARDS_MAX 256

struct shard {
	pthread_t thread;
	const struct shard_ops *ops;
	void *loop;
	uint16_t port;
};

static void *shard_main(void *arg)
{
	struct shard *s = arg;

	s->ops->run(s->loop);
	s->ops->destroy(s->loop);
	return NULL;
}

/* Opens every listener and loop; nothing runs yet. Returns 0 or -errno. */
static int shards_setup(const struct server_cfg *cfg, struct shard *shards,
			unsigned n, struct tpool *pool, atomic_uint *nopen)
{
	const struct shard_ops *ops = shards[0].ops;
	unsigned i;
	int lfd, err = 0;

	for (i = 0; i < n; i++) {
		lfd = server_listen_shard(cfg, i, i ? shards[0].port : 0);
		if (lfd < 0) {
			err = lfd;
			break;
		}
		shards[i].port = (uint16_t)net_local_port(lfd);
		err = ops->init(shards[i].loop, cfg, lfd, pool, nopen);
		if (err)
			break;
	}
	if (!err)
		return 0;
	/* Shard i failed and cleaned up after itself; undo the ones before. */
	while (i-- > 0)
		ops->destroy(shards[i].loop);
	return err;
}

/* Starts the threads; a shard that cannot start is torn down unstarted. */
static unsigned shards_start(struct shard *shards, unsigned n)
{
	unsigned started;
	int err = 0;

	for (started = 0; started < n; started++) {
		err = pthread_create(&shards[started].thread, NULL, shard_main,
				     &shards[started]);
		if (err)
			break;
	}
	if (err) {
		log_err(-err, "cannot start %s %u; the others serve on",
			shards[0].ops->what, started);
		for (unsigned i = started; i < n; i++)
			shards[i].ops->destroy(shards[i].loop);
	}
	return started;
}

int shards_run(const struct server_cfg *cfg, const struct shard_ops *ops)
{
	unsigned n = server_workers(cfg), started;
	struct shard *shards;
	struct tpool *pool;
	atomic_uint nopen = 0;
	char *loops;
	int err = -ENOMEM;

	if (n > SHARDS_MAX)
		n = SHARDS_MAX;
	pool = tpool_create(server_workers(cfg));
	if (!pool)
		return -errno;
	shards = calloc(n, sizeof(*shards));
	loops = calloc(n, ops->size);
	if (!shards || !loops)
		goto out_free;
	for (unsigned i = 0; i < n; i++)
		shards[i] =
		    (struct shard){.ops = ops, .loop = loops + i * ops->size};
	err = shards_setup(cfg, shards, n, pool, &nopen);
	if (err)
		goto out_free;
	/*
	 * Announce only once every loop runs: a client told the port is up
	 * is served at once, and may stop the server at once.
	 */
	started = shards_start(shards, n);
	for (unsigned i = 0; i < (cfg->ports ? started : 1); i++)
		server_announce(cfg, shards[i].port);
	for (unsigned i = 0; i < started; i++)
		pthread_join(shards[i].thread, NULL);
out_free:
	free(loops);
	free(shards);
	tpool_destroy(pool);
	return err;
}
