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
"Serves Fibonacci numbers on one TCP port that speaks two protocols, told\n"
"apart by a connection's first bytes:\n"
"  fib/1 lines   send a number N and a newline, get fib(N) and a newline\n"
"  HTTP/1.1      GET /fib/N     fib(N) as text/plain\n"
"                GET /metrics   the counters, Prometheus text format\n"
"                GET /healthz   200 ok while serving, 503 while draining\n"
"                GET /          an index page naming these, for a browser\n"
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
"  -w, --workers N         threads or processes (default: the CPUs fibd may\n"
"                          run on, at most the model's limit)\n"
"                          models: %s\n"
"      --ports             one port per shard, PORT..PORT+N-1 for N workers\n"
"                          (port 0: N consecutive free ports)\n"
"                          models: %s\n"
"      --offload           run fib on a blocking pool, not the worker\n"
"                          models: %s\n"
"      --max-conns N       connections beyond N get 'ERR server busy'\n"
"                          (default 10000)\n"
"      --idle-timeout SECS close a connection idle this long\n"
"                          (default 300; 0: never)\n"
"      --header-timeout SECS  a request (line or HTTP head) must arrive\n"
"                          whole this long after its first byte, or within\n"
"                          --idle-timeout if shorter (default 10; 0: no\n"
"                          clock of its own, only the idle one)\n"
"      --drain SECS        on SIGTERM, keep serving this long with /healthz\n"
"                          answering 503, then stop (default 0)\n"
"      --list-models       list the models and their properties, and exit;\n"
"                          with --json, as a JSON array\n"
"  -h, --help              this help\n"
"  -V, --version           print the version\n"
"\n"
"An option that does not apply to the model is an error (exit 2).\n"
"When ready, prints 'fibd: listening on HOST:PORT (model M, algo A,\n"
"framing F)' to stderr, once per port.\n"
"SIGTERM or SIGINT: stop accepting, answer what was read, exit 0.\n";
/* clang-format on */

/* The property a model is listed under in --help. */
enum model_prop {
	PROP_WORKERS,
	PROP_PORTS,
	PROP_OFFLOAD
};

static bool model_has(const struct model *m, enum model_prop p)
{
	switch (p) {
	case PROP_WORKERS:
		return m->max_workers > 0;
	case PROP_PORTS:
		return m->takes_ports;
	case PROP_OFFLOAD:
	default:
		return m->takes_offload;
	}
}

/* "a, b, c": the models with property p, for --help. */
static const char *models_with(enum model_prop p, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	for (const struct model *const *m = model_registry; *m; m++)
		if (model_has(*m, p) && len < cap)
			len += (size_t)snprintf(buf + len, cap - len, "%s%s",
						len ? ", " : "", (*m)->name);
	return buf;
}

static void usage(FILE *f)
{
	char w[128], p[128], o[128];

	fprintf(f, usage_text, models_with(PROP_WORKERS, w, sizeof(w)),
		models_with(PROP_PORTS, p, sizeof(p)),
		models_with(PROP_OFFLOAD, o, sizeof(o)));
}

static const char *yes_no(bool b)
{
	return b ? "yes" : "-";
}

/*
 * The registry as a table: a header, then one model a line, its summary
 * last. The columns are --list-models --json's keys (see model.h).
 */
static void list_models_table(void)
{
	static const char row[] = "%-9s %-11s %-5s %-22s %-13s %-8s %-11s "
				  "%-5s %-7s %-8s %-9s %s\n";
	char workers[16];

	printf(row, "MODEL", "CONCURRENCY", "FORKS", "TALK_SERVER",
	       "SERIAL_SHARDS", "FITS_10K", "MAX_WORKERS", "PORTS", "OFFLOAD",
	       "IO_URING", "PY_SERIAL", "SUMMARY");
	for (const struct model *const *m = model_registry; *m; m++) {
		snprintf(workers, sizeof(workers), "%u", (*m)->max_workers);
		printf(row, (*m)->name,
		       model_concurrency_name((*m)->concurrency),
		       yes_no((*m)->forks),
		       (*m)->talk_server ? (*m)->talk_server : "-",
		       yes_no((*m)->serial_shards), yes_no((*m)->fits_10k),
		       (*m)->max_workers ? workers : "-",
		       yes_no((*m)->takes_ports), yes_no((*m)->takes_offload),
		       yes_no((*m)->uses_io_uring), yes_no((*m)->python_serial),
		       (*m)->summary);
	}
}

/* s as a JSON string; ours hold no quote, backslash or control byte. */
static void json_str(const char *key, const char *s)
{
	if (s)
		printf(",\"%s\":\"%s\"", key, s);
	else
		printf(",\"%s\":null", key);
}

static void json_bool(const char *key, bool b)
{
	printf(",\"%s\":%s", key, b ? "true" : "false");
}

/* The registry as a JSON array, one object per model, in registry order. */
static void list_models_json(void)
{
	for (const struct model *const *m = model_registry; *m; m++) {
		printf("%s{\"name\":\"%s\"", m == model_registry ? "[" : ",\n ",
		       (*m)->name);
		json_str("summary", (*m)->summary);
		json_str("concurrency",
			 model_concurrency_name((*m)->concurrency));
		json_bool("forks", (*m)->forks);
		json_str("talk_server", (*m)->talk_server);
		json_bool("serial_shards", (*m)->serial_shards);
		json_bool("fits_10k", (*m)->fits_10k);
		json_bool("takes_ports", (*m)->takes_ports);
		json_bool("takes_offload", (*m)->takes_offload);
		json_bool("uses_io_uring", (*m)->uses_io_uring);
		json_bool("python_serial", (*m)->python_serial);
		printf(",\"max_workers\":%u}", (*m)->max_workers);
	}
	printf("]\n");
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
	OPT_JSON,
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
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The command line, parsed; acted on once every option is known. */
struct fibd_args {
	struct server_cfg cfg;
	uint64_t max_n;
	bool max_n_given, workers_given;
	bool list, json, help, version;
};

/* Applies one option to a. Returns 0, or -1 after saying what is wrong. */
static int apply_opt(int c, const char *arg, struct fibd_args *a)
{
	struct server_cfg *cfg = &a->cfg;
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
		err = opt_uint("--max-n", arg, 0, FIB_FAST_LIMIT_N, &a->max_n);
		a->max_n_given = true;
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
		err = opt_uint("--workers", arg, 1, MODEL_MAX_WORKERS, &v);
		cfg->workers = (unsigned)v;
		a->workers_given = true;
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
		a->list = true;
		break;
	case OPT_JSON:
		a->json = true;
		break;
	case 'h':
		a->help = true;
		break;
	case 'V':
		a->version = true;
		break;
	default:
		usage(stderr);
		return -1;
	}
	return err ? -1 : 0;
}

/*
 * An option the model does not take is an error, not ignored: whoever
 * passed it expected something of it. Returns 0, or -1 after saying why.
 */
static int check_model_opts(const struct fibd_args *a, const struct model *m)
{
	const struct server_cfg *cfg = &a->cfg;

	if (cfg->ports && !m->takes_ports)
		log_msg("--ports: model %s listens on one port (see "
			"--list-models: PORTS)",
			m->name);
	else if (cfg->offload && !m->takes_offload)
		log_msg("--offload: model %s has no blocking pool (see "
			"--list-models: OFFLOAD)",
			m->name);
	else if (a->workers_given && !m->max_workers)
		log_msg("--workers: model %s has no workers (see "
			"--list-models: MAX_WORKERS)",
			m->name);
	else if (a->workers_given && a->cfg.workers > m->max_workers)
		log_msg("--workers: %u is out of range for model %s [1, %u]",
			cfg->workers, m->name, m->max_workers);
	else
		return 0;
	return -1;
}

/*
 * What the model runs with beyond the command line: --workers by default
 * (the CPUs it may run on, at most its limit), and with --ports and port 0, N
 * consecutive free ports. Returns 0, or -1 after saying why not.
 */
static int finish_model(struct server_cfg *cfg, const struct model *m)
{
	unsigned cpus;
	int port;

	if (!cfg->workers && m->max_workers) {
		cpus = server_workers(cfg);
		cfg->workers = cpus < m->max_workers ? cpus : m->max_workers;
	}
	if (cfg->ports && cfg->port == 0) {
		port = server_pick_ports(cfg, server_workers(cfg));
		if (port < 0)
			return -1;
		cfg->port = (uint16_t)port;
	}
	return 0;
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

/*
 * Parses the whole command line into a, then does what it asks at once
 * (--help, --version, --list-models), whatever the order of the options.
 * Returns -1 to run the server, else the exit status.
 */
static int parse_args(int argc, char **argv, struct fibd_args *a)
{
	int c;

	server_cfg_default(&a->cfg);
	while ((c = getopt_long(argc, argv, "m:l:a:e:w:hV", long_opts, NULL)) !=
	       -1)
		if (apply_opt(c, optarg, a))
			return 2;
	if (optind < argc) {
		log_msg("unexpected argument '%s' (see --help)", argv[optind]);
		return 2;
	}
	if (a->json && !a->list) {
		log_msg("--json: only with --list-models");
		return 2;
	}
	if (a->help)
		usage(stdout);
	else if (a->version)
		printf("fibd %s\n", FIBD_VERSION);
	else if (a->list && a->json)
		list_models_json();
	else if (a->list)
		list_models_table();
	else
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct fibd_args a = {0};
	const struct model *model;
	int rc;

	log_set_prog("fibd");
	/* A model's helper process, exec'd by the model (see model.h). */
	if (argc > 1 && strcmp(argv[1], MODEL_CHILD_ARG) == 0)
		return model_child_main(argc - 2, argv + 2);
	rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	model = model_find(a.cfg.model_name);
	if (finish_limits(&a.cfg, a.max_n, a.max_n_given) ||
	    check_model_opts(&a, model))
		return 2;
	if (finish_model(&a.cfg, model))
		return 1;
	net_ignore_sigpipe();
	raise_fd_limit();
	if (stop_install(model->forks ? STOP_BY_HANDLER : STOP_BY_THREAD,
			 a.cfg.drain_ms) < 0) {
		log_msg("cannot set up the stop on SIGTERM and SIGINT");
		return 1;
	}
	/* Before any fork: the many model's processes share the counters. */
	if (metrics_init() < 0)
		log_msg("metrics: no shared mapping; counted per process");
	rc = model->run(&a.cfg);
	if (rc < 0) {
		log_err(rc, "model %s failed", model->name);
		return 1;
	}
	return 0;
}
