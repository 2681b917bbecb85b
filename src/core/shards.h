/*
 * shards - run a sharded server: one event loop per thread, each on a
 * listener of its own (SO_REUSEPORT on one port, or --ports), sharing
 * nothing but the connection count for --max-conns. The reactor (epoll)
 * and uring (io_uring) models are this plus their loop.
 */
#ifndef FIBD_CORE_SHARDS_H
#define FIBD_CORE_SHARDS_H

#include <stdatomic.h>
#include <stddef.h>

#include "server.h"

/* One kind of loop, behind four calls. */
struct shard_ops {
	const char *what; /* "loop", "ring": for messages */
	size_t size;	  /* bytes of one loop's state */
	/*
	 * Sets a loop up on the non-blocking listener lfd, which it then
	 * owns (and closes on failure). ctx is shards_run()'s, the same for
	 * every loop (the reactor's shared pool). Returns 0 or -errno.
	 */
	int (*init)(void *loop, const struct server_cfg *cfg, int lfd,
		    atomic_uint *nopen, void *ctx);
	void (*run)(void *loop);     /* serves until a stop has drained it */
	void (*destroy)(void *loop); /* frees what init made */
};

/*
 * Opens server_workers(cfg) listeners and loops (ops->init gets ctx),
 * announces the port(s), runs each loop on a thread of its own and returns
 * when all have stopped. Returns 0, or -errno when not even setup
 * succeeded.
 */
int shards_run(const struct server_cfg *cfg, const struct shard_ops *ops,
	       void *ctx);

#endif
