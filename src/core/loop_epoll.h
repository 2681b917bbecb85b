/*
 * loop_epoll - the loop (loop.h) on epoll: readiness. The model watches
 * its descriptors itself (loop_epoll_watch()), level-triggered, with a
 * pointer of its own as epoll's data.ptr, and is handed every event on one
 * (ops->event(), with ev->events).
 */
#ifndef FIBD_CORE_LOOP_EPOLL_H
#define FIBD_CORE_LOOP_EPOLL_H

#include "loop.h"

struct loop_epoll {
	struct loop l; /* first: a model's callbacks get &l */
	int ep;	       /* the epoll set */
};

/* loop_init() and the epoll set, watching the listener, the pool's
 * completion queue and stop_eventfd(). 0 or -errno (lfd is then closed). */
int loop_epoll_init(struct loop_epoll *e, const struct loop_ops *ops,
		    const struct server_cfg *cfg, int lfd, struct tpool *pool,
		    unsigned workers, atomic_uint *nopen);

/* Serves until a stop has seen every live thing go (loop_running()). */
void loop_epoll_run(struct loop_epoll *e);

/* Frees what loop_epoll_init() made (not the pool, not nopen). */
void loop_epoll_destroy(struct loop_epoll *e);

/* epoll_ctl(op) of fd for events, reported with ptr. 0 or -errno. */
int loop_epoll_watch(struct loop_epoll *e, int op, int fd, unsigned events,
		     void *ptr);

/* The loop_epoll of a model's callback. */
static inline struct loop_epoll *loop_epoll_of(struct loop *l)
{
	return (struct loop_epoll *)l;
}

#endif
