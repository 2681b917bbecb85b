#include "loop_epoll.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "stop.h"

/* epoll's data.ptr for the three descriptors that are not the model's. */
static char loop_epoll_tag_listener, loop_epoll_tag_pool, loop_epoll_tag_stop;

int loop_epoll_watch(struct loop_epoll *e, int op, int fd, unsigned events,
		     void *ptr)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};

	return epoll_ctl(e->ep, op, fd, &ev) ? -errno : 0;
}

static int loop_epoll_busy_watch(struct loop *l, struct loop_busy *b)
{
	return loop_epoll_watch(loop_epoll_of(l), EPOLL_CTL_ADD, b->fd,
				EPOLLIN | EPOLLRDHUP, b);
}

/* close() takes it out of the set: answer at once. */
static void loop_epoll_busy_end(struct loop *l, struct loop_busy *b)
{
	loop_busy_answer(l, b);
}

static void loop_epoll_accept_pause(struct loop *l, bool paused)
{
	loop_epoll_watch(loop_epoll_of(l), EPOLL_CTL_MOD, l->acc.lfd,
			 paused ? 0 : EPOLLIN, &loop_epoll_tag_listener);
}

static void loop_epoll_stop(struct loop *l)
{
	epoll_ctl(loop_epoll_of(l)->ep, EPOLL_CTL_DEL, stop_eventfd(), NULL);
}

static const struct loop_backend loop_epoll_backend = {
    .busy_watch = loop_epoll_busy_watch,
    .busy_end = loop_epoll_busy_end,
    .accept_pause = loop_epoll_accept_pause,
    .stop = loop_epoll_stop,
};

static void loop_epoll_dispatch(struct loop *l, const struct epoll_event *ev)
{
	void *p = ev->data.ptr;
	struct loop_event what;

	if (p == &loop_epoll_tag_listener) {
		loop_accept(l, LOOP_ACCEPT_BATCH);
	} else if (p == &loop_epoll_tag_pool) {
		loop_reap_pool(l);
	} else if (p == &loop_epoll_tag_stop) {
		loop_begin_stop(l);
	} else if (l->nbusy && loop_busy_of(l, p)) {
		loop_busy_answer(l, p);
	} else {
		what = (struct loop_event){.events = ev->events};
		l->ops->event(l, p, &what);
	}
}

void loop_epoll_run(struct loop_epoll *e)
{
	struct epoll_event evs[LOOP_EVENTS];
	int n, ms = loop_wait_ms(&e->l);

	while (loop_running(&e->l)) {
		n = epoll_wait(e->ep, evs, LOOP_EVENTS, ms);
		if (n < 0 && errno != EINTR) {
			log_err(-errno, "epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++)
			loop_epoll_dispatch(&e->l, &evs[i]);
		ms = loop_turn_end(&e->l);
	}
}

int loop_epoll_init(struct loop_epoll *e, const struct loop_ops *ops,
		    const struct server_cfg *cfg, int lfd, struct tpool *pool,
		    unsigned workers, atomic_uint *nopen)
{
	int err = loop_init(&e->l, &loop_epoll_backend, ops, cfg, lfd, pool,
			    workers, nopen);

	if (err)
		return err;
	e->ep = epoll_create1(EPOLL_CLOEXEC);
	if (e->ep < 0) {
		err = -errno;
		goto out_destroy;
	}
	err = loop_epoll_watch(e, EPOLL_CTL_ADD, lfd, EPOLLIN,
			       &loop_epoll_tag_listener);
	if (!err && pool)
		err = loop_epoll_watch(e, EPOLL_CTL_ADD, tpool_cq_fd(e->l.cq),
				       EPOLLIN, &loop_epoll_tag_pool);
	if (!err)
		err = loop_epoll_watch(e, EPOLL_CTL_ADD, stop_eventfd(),
				       EPOLLIN, &loop_epoll_tag_stop);
	if (!err)
		return 0;
	close(e->ep);
out_destroy:
	loop_destroy(&e->l);
	return err;
}

void loop_epoll_destroy(struct loop_epoll *e)
{
	loop_destroy(&e->l);
	close(e->ep);
}
