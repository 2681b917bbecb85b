/*
 * model - the interface every concurrency model implements.
 *
 * A model is one file in src/models/ that defines one const struct model.
 * registry.c lists them; fibd --model NAME picks one at run time, the way
 * nginx picks its event module. The model opens its listeners (see
 * server_listen()), serves until stop_requested(), finishes the requests it
 * has already read, and returns.
 */
#ifndef FIBD_MODELS_MODEL_H
#define FIBD_MODELS_MODEL_H

#include <stdbool.h>

#include "../core/server.h"

/* How a model serves clients at once; the behaviour suite tests exactly this.
 */
enum model_concurrency {
	MODEL_SERIAL,	/* one client at a time: the others wait */
	MODEL_PARALLEL, /* any client is served while another computes */
	MODEL_SHARDED,	/* parallel across shards (processes, loops) only:
			   --ports */
};

struct model {
	const char *name;    /* --model NAME */
	const char *summary; /* one line for --list-models */
	enum model_concurrency concurrency;
	/*
	 * Forks children that run on without exec (many's). fibd then takes
	 * a stop with a handler, not with a thread (stop.h): a fork while a
	 * second thread runs can hand the child a lock that thread held.
	 */
	bool forks;
	/*
	 * What the suites and tools ask instead of matching a name. A new
	 * model sets these and every suite, script and bench column follows.
	 */
	const char *talk_server; /* the talk's server it stands for, or NULL */
	bool serial_shards;	 /* each shard (process) serves one client at a
				    time, the others wait in its backlog */
	bool fits_10k;	    /* holds 10,000 open connections as a few hundred
			       bytes each (a loop or coroutines): bench's
			       2,000- and 10,000-connection cells */
	bool takes_ports;   /* --ports applies: one port per shard */
	bool takes_offload; /* --offload applies */
	bool uses_io_uring; /* valgrind cannot follow its I/O */
	/*
	 * Under --engine python, one connection's compute holds the others
	 * back until it is done (isolate: CPython 3.11's sub-interpreters
	 * share one GIL, and a compute never yields it to a reader).
	 */
	bool python_serial;
	/*
	 * The most --workers it takes (its threads or processes: see
	 * docs/OPERATIONS.md); 0: it has no workers and --workers is an
	 * error. Without --workers it runs one per CPU it may run on, at most
	 * max_workers.
	 */
	unsigned max_workers;
	/* Serves until a stop. Returns 0, or a negative errno on failure. */
	int (*run)(const struct server_cfg *cfg);
	/*
	 * The model's helper process, or NULL. A model that needs processes
	 * from a clean image (procpool's workers) execs its own binary as
	 * "fibd --child NAME ARGS..."; fibd's main hands that straight to
	 * model_child_main(), before parsing options. argv[0] is NAME.
	 * Returns the process's exit status.
	 */
	int (*child)(int argc, char **argv);
};

/* --workers' ceiling for a model whose pool has no other bound. */
#define MODEL_MAX_WORKERS 1024

/* The hidden first argument that starts a model's helper process. */
#define MODEL_CHILD_ARG "--child"

/* Every model, in the order --list-models shows them; NULL-terminated. */
extern const struct model *const model_registry[];

/* The model called name, or NULL. */
const struct model *model_find(const char *name);

/*
 * Runs the helper process of model argv[0] (fibd's argv after
 * MODEL_CHILD_ARG). Returns its exit status, or 2 when there is no such
 * helper.
 */
int model_child_main(int argc, char **argv);

/* "serial", "parallel" or "sharded". */
const char *model_concurrency_name(enum model_concurrency c);

#endif
