/*
 * thread - the talk's thread_server: one thread per connection.
 *
 *	main:    accept -> spawn a thread -> accept ...
 *	thread:  read line -> fib -> write reply -> ... until the client leaves
 *
 * In C there is no GIL, so CPU-bound requests on different connections run
 * on different cores at once. The costs are a thread (stack, creation, a
 * context switch per blocking call) per client. procpool and isolate run
 * this same loop (thread.h) with another compute hook; here the
 * connection's own thread computes.
 *
 * A stop: the accept loop takes the clients still queued (serve_accept()),
 * then every connection's read side is shut (serve_stop_all()): each
 * thread answers what it has read and leaves, and the last one out lets
 * thread_serve() close the listener and return.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/serve.h"
#include "model.h"
#include "thread.h"

/* What a connection thread is handed. */
struct thread_conn {
	int fd;
	const struct server_cfg *cfg;
	const struct thread_ops *ops;
};

static void *thread_conn_main(void *arg)
{
	struct thread_conn *c = arg;
	int fd = c->fd;

	c->ops->serve(fd, c->cfg, c->ops->ctx);
	free(c);
	serve_untrack(fd);
	close(fd);
	return NULL;
}

/* Hands fd to a new detached thread. Returns 0 or -errno. */
static int thread_spawn(int fd, const struct server_cfg *cfg,
			const struct thread_ops *ops, pthread_attr_t *attr)
{
	struct thread_conn *c = malloc(sizeof(*c));
	pthread_t tid;
	int err;

	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->cfg = cfg;
	c->ops = ops;
	serve_track(fd);
	err = pthread_create(&tid, attr, thread_conn_main, c);
	if (err) {
		serve_untrack(fd);
		free(c);
		return -err;
	}
	return 0;
}

int thread_serve(const struct server_cfg *cfg, const struct thread_ops *ops)
{
	pthread_attr_t attr;
	int lfd, fd;

	lfd = server_listen(cfg, cfg->port, NET_NONBLOCK);
	if (lfd < 0)
		return lfd;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	while ((fd = serve_accept(lfd)) >= 0)
		if (serve_tracked() >= cfg->max_conns ||
		    thread_spawn(fd, cfg, ops, &attr) < 0)
			server_reject_busy(fd, cfg);
	serve_stop_all();
	serve_wait_idle();
	pthread_attr_destroy(&attr);
	close(lfd);
	return 0;
}

/* The whole model: serve the connection, computing inline. */
static void thread_serve_inline(int fd, const struct server_cfg *cfg, void *ctx)
{
	(void)ctx;
	serve_blocking(fd, cfg, NULL);
}

static int thread_run(const struct server_cfg *cfg)
{
	static const struct thread_ops ops = {.serve = thread_serve_inline};

	return thread_serve(cfg, &ops);
}

const struct model model_thread = {
    .name = "thread",
    .summary = "one thread per connection",
    .concurrency = MODEL_PARALLEL,
    .talk_server = "thread_server",
    .run = thread_run,
};
