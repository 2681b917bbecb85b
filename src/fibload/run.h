/*
 * run - one whole fibload run: resolve, pin, start the workers, print the
 * progress lines, collect and merge the results.
 */
#ifndef FIBLOAD_RUN_H
#define FIBLOAD_RUN_H

#include <stdint.h>

#include "config.h"
#include "hist.h"
#include "stats.h"

/* Connections per --port entry, and those that got no reply at all. */
struct fl_portcount {
	unsigned conns[FL_MAX_PORTS];
	unsigned no_reply[FL_MAX_PORTS];
};

/* What a run measured. Latencies are in ns. */
struct fl_result {
	uint64_t requests;	       /* measured requests with a good reply */
	uint64_t errors[FL_ERR_KINDS]; /* by kind, warm-up included */
	uint64_t error_total;
	struct fl_errtexts errtexts; /* the server's "ERR ..." replies */
	struct fl_portcount ports;   /* connections per port, unanswered */
	unsigned no_reply;	     /* connections that got no reply */
	struct hist *lat;    /* latency; from the intended time with --rate */
	struct hist *raw;    /* --rate only: from the actual send */
	double elapsed_s;    /* the measured window */
	double wall_s;	     /* the whole run: connect, warm-up, window */
	double client_cpu_s; /* fibload's own user + system CPU time */
	unsigned connected;  /* connections up when the load started */
	unsigned threads;    /* threads used (-t capped at -c) */
	char cpus[128];	     /* CPUs the threads may run on (granted) */
	int interrupted;     /* stopped early by SIGINT or SIGTERM */
	unsigned merged;     /* fibload merge: runs merged (0: a live run) */
	double merged_rps;   /* fibload merge: the runs' rps, summed */
};

/*
 * Runs the load cfg describes, checking replies against work, and fills
 * res. Returns 0 when the run took place (errors are in res), or a negative
 * errno when it could not (unresolvable host, nothing could connect, out of
 * memory), after logging why. Release res with fl_result_release().
 */
int fl_run(const struct fl_config *cfg, const struct fl_work *work,
	   struct fl_result *res);

void fl_result_release(struct fl_result *res);

#endif
