/*
 * thread - the talk's thread_server: one thread per connection.
 *
 *	main:    accept -> spawn a thread -> accept ...
 *	thread:  read line -> fib -> write reply -> ... until the client leaves
 *
 * In C there is no GIL, so CPU-bound requests on different connections run
 * on different cores at once. The costs are a thread (stack, creation, a
 * context switch per blocking call) per client. The accept loop is shared
 * with procpool and isolate (core/threadsrv.c); here the connection's own
 * thread computes.
 */
#include <stddef.h>

#include "../core/serve.h"
#include "../core/threadsrv.h"
#include "model.h"

/* The whole model: serve the connection, computing inline. */
static void thread_serve(int fd, const struct server_cfg *cfg, void *ctx)
{
	(void)ctx;
	serve_blocking(fd, cfg, NULL);
}

static int thread_run(const struct server_cfg *cfg)
{
	static const struct threadsrv_ops ops = {.serve = thread_serve};

	return threadsrv_run(cfg, &ops);
}

const struct model model_thread = {
    .name = "thread",
    .summary = "one thread per connection",
    .concurrency = MODEL_PARALLEL,
    .talk_server = "thread_server",
    .run = thread_run,
};
