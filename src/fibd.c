/*
 * fibd - the Fibonacci microservice, served by the concurrency model chosen
 * with --model. This file only turns the command line into a server_cfg and
 * hands it to the model; see src/models/ for the servers themselves.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/opt.h"
#include "core/pyengine.h"
#include "core/server.h"
#include "core/stop.h"
#include "core/version.h"
#include "models/model.h"

/* clang-format off */
static const char usage_text[] =
"usage: fibd [options]\n"
"\n"
"Serves fib/1: send a number N and a newline, get fib(N) and a newline.\n"
"\n"
"  -m, --model NAME        concurrency model (default thread; see --list-models)\n"
"  -l, --listen HOST:PORT  address to listen on (default 127.0.0.1:25000;\n"
"                          port 0 picks a free port)\n"
"  -a, --algo naive|fast   naive: the talk's exponential recursion (default)\n"
"                          fast: exact for any n (GMP beyond fib(93))\n"
"  -e, --engine c|python   c: compute in C (default)\n"
"                          python: the same in an embedded CPython, under\n"
"                          its real GIL (see docs/MODELS.md, the GIL)\n"
"      --max-n N           largest n served (default 45 naive, 35 naive in\n"
"                          python, 100000 fast; at most 93 naive,\n"
"                          10000000 fast)\n"
"      --max-line BYTES    longest request line (default 1024); with\n"
"                          --framing read, the most bytes one read takes\n"
"      --framing line|read line: a request is a line ending in newline\n"
"                          (default); read: each read is one request, with\n"
"                          no newline needed, as the talk's servers do\n"
"  -w, --workers N         threads or processes, where the model has them\n"
"                          (default: online CPUs)\n"
"      --ports             many: one port per worker, PORT..PORT+N-1\n"
"      --offload           coro: run fib on a blocking pool, not the worker\n"
"      --max-conns N       connections beyond N get 'ERR server busy'\n"
"                          (default 10000)\n"
"      --idle-timeout SECS close a connection idle this long, or whose\n"
"                          request line takes this long to arrive\n"
"                          (default 300; 0: never)\n"
"      --header-timeout SECS  a request (line or HTTP head) must arrive\n"
"                          whole this long after its first byte (default 10;\n"
"                          0: never)\n"
"      --drain SECS        on SIGTERM, keep serving this long with /healthz\n"
"                          answering 503, then stop (default 0)\n"
"      --list-models       list the models and exit\n"
"  -h, --help              this help\n"
"  -V, --version           print the version\n"
"\n"
"SIGTERM or SIGINT: stop accepting, answer what was read, exit 0.\n";
/* clang-format on */

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

static void list_models(void)
{
	for (const struct model *const *m = model_registry; *m; m++)
		printf("%-10s %-12s %s\n", (*m)->name,
		       model_concurrency_name((*m)->concurrency),
		       (*m)->summary);
}

enum {
	OPT_MAX_N = 256,
	OPT_MAX_LINE,
	OPT_FRAMING,
	OPT_PORTS,
	OPT_OFFLOAD,
	OPT_MAX_CONNS,
	OPT_IDLE_TIMEOUT,
	OPT_HEADER_TIMEOUT,
	OPT_DRAIN,
	OPT_LIST_MODELS,
};

static const struct option long_opts[] = {
    {"model", required_argument, NULL, 'm'},
    {"listen", required_argument, NULL, 'l'},
    {"algo", required_argument, NULL, 'a'},
    {"engine", required_argument, NULL, 'e'},
    {"max-n", required_argument, NULL, OPT_MAX_N},
    {"max-line", required_argument, NULL, OPT_MAX_LINE},
    {"framing", required_argument, NULL, OPT_FRAMING},
    {"workers", required_argument, NULL, 'w'},
    {"ports", no_argument, NULL, OPT_PORTS},
    {"offload", no_argument, NULL, OPT_OFFLOAD},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"list-models", no_argument, NULL, OPT_LIST_MODELS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Applies one option to cfg. Returns 0, 1 to exit 0 at once, or -EINVAL. */
static int apply_opt(int c, const char *arg, struct server_cfg *cfg,
		     uint64_t *max_n)
{
	uint64_t v;
	double secs;
	int err = 0;

	switch (c) {
	case 'm':
		if (!model_find(arg)) {
			log_msg("--model: no model '%s' (see --list-models)",
				arg);
			return -1;
		}
		cfg->model_name = arg;
		break;
	case 'l':
		err = net_parse_hostport(arg, cfg->host, &cfg->port);
		if (err)
			log_msg("--listen: '%s' is not HOST:PORT", arg);
		break;
	case 'a':
		err = fib_algo_parse(arg, &cfg->limits.algo);
		if (err)
			log_msg("--algo: '%s' is not naive or fast", arg);
		break;
	case 'e':
		err = fib_engine_parse(arg, &cfg->limits.engine);
		if (err)
			log_msg("--engine: '%s' is not c or python", arg);
		break;
	case OPT_MAX_N:
		err = opt_uint("--max-n", arg, 0, FIB_FAST_LIMIT_N, max_n);
		break;
	case OPT_MAX_LINE:
		err = opt_uint("--max-line", arg, PROTO_MIN_MAX_LINE,
			       PROTO_MAX_MAX_LINE, &v);
		cfg->limits.max_line = (size_t)v;
		break;
	case OPT_FRAMING:
		err = proto_framing_parse(arg, &cfg->limits.framing);
		if (err)
			log_msg("--framing: '%s' is not line or read", arg);
		break;
	case 'w':
		err = opt_uint("--workers", arg, 1, 1024, &v);
		cfg->workers = (unsigned)v;
		break;
	case OPT_PORTS:
		cfg->ports = true;
		break;
	case OPT_OFFLOAD:
		cfg->offload = true;
		break;
	case OPT_MAX_CONNS:
		err = opt_uint("--max-conns", arg, 1, 1000000, &v);
		cfg->max_conns = (unsigned)v;
		break;
	case OPT_IDLE_TIMEOUT:
		err = opt_double("--idle-timeout", arg, 0, 86400, &secs);
		cfg->idle_timeout_ms = (unsigned)(secs * 1000 + 0.5);
		break;
	case OPT_HEADER_TIMEOUT:
		err = opt_double("--header-timeout", arg, 0, 86400, &secs);
		cfg->header_timeout_ms = (unsigned)(secs * 1000 + 0.5);
		break;
	case OPT_DRAIN:
		err = opt_double("--drain", arg, 0, 3600, &secs);
		cfg->drain_ms = (unsigned)(secs * 1000 + 0.5);
		break;
	case OPT_LIST_MODELS:
		list_models();
		return 1;
	case 'h':
		usage(stdout);
		return 1;
	case 'V':
		printf("fibd %s\n", FIBD_VERSION);
		return 1;
	default:
		usage(stderr);
		return -1;
	}
	return err ? -1 : 0;
}

/* Resolves --max-n against --algo once every option is known. */
static int finish_limits(struct server_cfg *cfg, uint64_t max_n, int given)
{
	struct proto_limits *lim = &cfg->limits;

	if (lim->engine == FIB_ENGINE_PYTHON && !pyengine_available()) {
		log_msg("--engine python: this fibd was built without the "
			"python engine (no libpython3-dev at build time); "
			"install it (scripts/deps does) and rebuild: make");
		return -1;
	}
	if (!given && lim->algo == FIB_FAST)
		max_n = FIB_FAST_DEFAULT_MAX_N;
	else if (!given)
		max_n = lim->engine == FIB_ENGINE_PYTHON
			    ? FIB_PYTHON_NAIVE_DEFAULT_MAX_N
			    : FIB_NAIVE_DEFAULT_MAX_N;
	if (lim->algo == FIB_NAIVE && max_n > FIB_U64_MAX_N) {
		log_msg("--max-n: naive fib is exact only up to %d "
			"(use --algo fast for more)",
			FIB_U64_MAX_N);
		return -1;
	}
	lim->max_n = max_n;
	return 0;
}

/*
 * Each connection is a descriptor, and the default soft limit (often 1024)
 * would turn --max-conns into a fiction: raise the soft limit to the hard
 * one, as Go's runtime does. Running out anyway is handled at accept.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct server_cfg cfg;
	const struct model *model;
	uint64_t max_n = 0;
	int c, rc, max_n_given = 0;

	log_set_prog("fibd");
	/* A model's helper process, exec'd by the model (see model.h). */
	if (argc > 1 && strcmp(argv[1], MODEL_CHILD_ARG) == 0)
		return model_child_main(argc - 2, argv + 2);
	server_cfg_default(&cfg);
	while ((c = getopt_long(argc, argv, "m:l:a:e:w:hV", long_opts, NULL)) !=
	       -1) {
		max_n_given |= c == OPT_MAX_N;
		rc = apply_opt(c, optarg, &cfg, &max_n);
		if (rc)
			return rc > 0 ? 0 : 2;
	}
	if (optind < argc) {
		log_msg("unexpected argument '%s' (see --help)", argv[optind]);
		return 2;
	}
	if (finish_limits(&cfg, max_n, max_n_given))
		return 2;
	model = model_find(cfg.model_name);
	net_ignore_sigpipe();
	raise_fd_limit();
	if (stop_install(model->forks ? STOP_BY_HANDLER : STOP_BY_THREAD,
			 cfg.drain_ms) < 0) {
		log_msg("cannot set up the stop on SIGTERM and SIGINT");
		return 1;
	}
	/* Before any fork: the many model's processes share the counters. */
	if (metrics_init() < 0)
		log_msg("metrics: no shared mapping; counted per process");
	rc = model->run(&cfg);
	if (rc < 0) {
		log_err(rc, "model %s failed", model->name);
		return 1;
	}
	return 0;
}
