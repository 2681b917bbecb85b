#include "threadsrv.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "serve.h"
#include "stop.h"

/* What a connection thread is handed. */
struct threadsrv_conn {
	int fd;
	const struct server_cfg *cfg;
	const struct threadsrv_ops *ops;
};

static void *threadsrv_conn_main(void *arg)
{
	struct threadsrv_conn *c = arg;
	int fd = c->fd;

	c->ops->serve(fd, c->cfg, c->ops->ctx);
	free(c);
	serve_untrack(fd);
	close(fd);
	return NULL;
}

/* Hands fd to a new detached thread. Returns 0 or -errno. */
static int threadsrv_spawn(int fd, const struct server_cfg *cfg,
			   const struct threadsrv_ops *ops,
			   pthread_attr_t *attr)
{
	struct threadsrv_conn *c = malloc(sizeof(*c));
	pthread_t tid;
	int err;

	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->cfg = cfg;
	c->ops = ops;
	serve_track(fd);
	err = pthread_create(&tid, attr, threadsrv_conn_main, c);
	if (err) {
		serve_untrack(fd);
		free(c);
		return -err;
	}
	return 0;
}

int threadsrv_run(const struct server_cfg *cfg, const struct threadsrv_ops *ops)
{
	pthread_attr_t attr;
	int lfd, fd;

	lfd = server_listen(cfg, cfg->port, 0);
	if (lfd < 0)
		return lfd;
	stop_watch(lfd);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREADSRV_STACK_SIZE);
	while (!stop_requested()) {
		fd = server_accept(lfd, 0);
		if (fd < 0)
			break;
		if (serve_tracked() >= cfg->max_conns ||
		    threadsrv_spawn(fd, cfg, ops, &attr) < 0)
			server_reject_busy(fd, cfg);
	}
	serve_stop_all();
	serve_wait_idle();
	pthread_attr_destroy(&attr);
	close(lfd);
	return 0;
}
