/*
 * single - the talk's one_server.
 *
 *	accept -> serve that client until it leaves -> accept the next
 *
 * One thread does everything. While it serves one client, a second client's
 * connection completes in the kernel's backlog, but nobody reads it: "who
 * comes first is served first; the next is served only after the previous
 * one leaves". Unlike the talk's server, a bad request costs one ERR line,
 * not the whole server.
 */
#include <unistd.h>

#include "../core/serve.h"
#include "../core/stop.h"
#include "model.h"

/* Serves one client to the end. A stop shuts its read side via the watch. */
static void single_serve_client(int fd, const struct server_cfg *cfg)
{
	int slot = stop_watch(fd);

	serve_blocking(fd, cfg, NULL);
	stop_unwatch(slot);
	close(fd);
}

static int single_run(const struct server_cfg *cfg)
{
	int lfd, fd;

	lfd = server_listen(cfg, cfg->port, 0);
	if (lfd < 0)
		return lfd;
	stop_watch(lfd);
	while (!stop_requested()) {
		fd = server_accept(lfd, 0);
		if (fd < 0)
			break;
		single_serve_client(fd, cfg);
	}
	close(lfd);
	return 0;
}

const struct model model_single = {
	.name = "single",
	.summary = "one thread; serves one client until it leaves, then the next",
	.concurrency = MODEL_SERIAL,
	.run = single_run,
};
