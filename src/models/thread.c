/*
 * thread - the talk's thread_server: one thread per connection.
 *
 *	main:    accept -> spawn a thread -> accept ...
 *	thread:  read line -> fib -> write reply -> ... until the client leaves
 *
 * In C there is no GIL, so CPU-bound requests on different connections run
 * on different cores at once. The costs are a thread (stack, creation, a
 * context switch per blocking call) per client.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/serve.h"
#include "../core/stop.h"
#include "model.h"

/* Naive fib recursion needs little stack; GMP's temporaries go to the heap. */
#define THREAD_STACK_SIZE (256 * 1024)

struct thread_conn {
	int fd;
	const struct server_cfg *cfg;
};

static void *thread_conn_main(void *arg)
{
	struct thread_conn *c = arg;
	int fd = c->fd;

	serve_blocking(fd, c->cfg, NULL);
	free(c);
	serve_untrack(fd);
	close(fd);
	return NULL;
}

/* Hands fd to a new detached thread. Returns 0 or -errno. */
static int thread_spawn(int fd, const struct server_cfg *cfg,
			pthread_attr_t *attr)
{
	struct thread_conn *c = malloc(sizeof(*c));
	pthread_t tid;
	int err;

	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->cfg = cfg;
	serve_track(fd);
	err = pthread_create(&tid, attr, thread_conn_main, c);
	if (err) {
		serve_untrack(fd);
		free(c);
		return -err;
	}
	return 0;
}

static int thread_run(const struct server_cfg *cfg)
{
	pthread_attr_t attr;
	int lfd, fd;

	lfd = server_listen(cfg, cfg->port, 0);
	if (lfd < 0)
		return lfd;
	stop_watch(lfd);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	while (!stop_requested()) {
		fd = server_accept(lfd, 0);
		if (fd < 0)
			break;
		if (serve_tracked() >= cfg->max_conns ||
		    thread_spawn(fd, cfg, &attr) < 0)
			server_reject_busy(fd, cfg);
	}
	serve_stop_all();
	serve_wait_idle();
	pthread_attr_destroy(&attr);
	close(lfd);
	return 0;
}

const struct model model_thread = {
	.name = "thread",
	.summary = "one thread per connection",
	.concurrency = MODEL_PARALLEL,
	.run = thread_run,
};
