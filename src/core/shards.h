/*
 * shards - run a sharded server: one event loop per thread, each on a
 * listener of its own (SO_REUSEPORT on one port, or --ports), sharing
 * nothing but the connection count for --max-conns and one pool of worker
 * threads for the expensive requests (each loop gets its jobs back on a
 * completion queue of its own), so a loop never computes a slow request
 * itself and stalls the connections it owns. The reactor (epoll) and uring
 * (io_uring) models are this plus their loop.
 */
#ifndef FIBD_CORE_SHARDS_H
#define FIBD_CORE_SHARDS_H

#include <stdatomic.h>
#include <stddef.h>

#include "server.h"
#include "tpool.h"

/* One kind of loop, behind four calls. */
struct shard_ops {
	const char *what; /* "loop", "ring": for messages */
	size_t size;	  /* bytes of one loop's state */
	/*
	 * Sets a loop up on the non-blocking listener lfd, which it then
	 * owns (and closes on failure), handing expensive requests to pool
	 * (of server_workers(cfg) threads, shared by every loop). Returns 0
	 * or -errno.
	 */
	int (*init)(void *loop, const struct server_cfg *cfg, int lfd,
		    struct tpool *pool, atomic_uint *nopen);
	void (*run)(void *loop);     /* serves until a stop has drained it */
	void (*destroy)(void *loop); /* frees what init made */
};

/*
 * Starts the pool, opens server_workers(cfg) listeners and loops, announces
 * the port(s), runs each loop on a thread of its own and returns when all
 * have stopped. Returns 0, or -errno when not even setup succeeded.
 */
int shards_run(const struct server_cfg *cfg, const struct shard_ops *ops);

#endif
