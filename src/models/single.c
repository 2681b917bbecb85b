/*
 * single - the talk's one_server.
 *
 *	accept -> serve that client until it leaves -> accept the next
 *
 * One thread does everything (serve_serial() in src/core/serve.c). While it
 * serves one client, a second client's connection completes in the kernel's
 * backlog, but nobody reads it: "who comes first is served first; the next
 * is served only after the previous one leaves". Unlike the talk's server,
 * a bad request costs one ERR line, not the whole server, and a client that
 * stalls (does not read its replies, or leaves a line unfinished) is shed
 * after SERVE_STALL_MS once someone else waits.
 */
#include <unistd.h>

#include "../core/serve.h"
#include "../core/stop.h"
#include "model.h"

static int single_run(const struct server_cfg *cfg)
{
	int lfd = server_listen(cfg, cfg->port, 0);

	if (lfd < 0)
		return lfd;
	stop_watch(lfd);
	serve_serial(lfd, cfg, 0); /* an idle first client keeps the server */
	close(lfd);
	return 0;
}

const struct model model_single = {
    .name = "single",
    .summary = "one thread; serves one client until it leaves, then the next",
    .concurrency = MODEL_SERIAL,
    .talk_server = "one_server",
    .serial_shards = true,
    .run = single_run,
};
