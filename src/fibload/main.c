/* fibload - the load generator for fibd (and any line server): the CLI. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/net.h"
#include "core/opt.h"
#include "core/version.h"
#include "fibload/config.h"
#include "fibload/histfile.h"
#include "fibload/merge.h"
#include "fibload/report.h"
#include "fibload/run.h"

#define EXIT_USAGE 2

static void usage(FILE *out)
{
	fputs(
	    "usage: fibload [-H HOST] [-p PORTS] [-c CONNS] [-t THREADS]\n"
	    "               [-d SECONDS | -r REQUESTS] [--warmup SECONDS]\n"
	    "               [-P PIPELINE] [--n N | --mix N:W,N:W...]\n"
	    "               [--rate RPS [--arrivals uniform|poisson]\n"
	    "               [--seed S]] [--timeout MS] [--cpu LIST]\n"
	    "               [--allow-no-reply] [--resend] [--busy-poll]\n"
	    "               [--progress] [--json]\n"
	    "               [--hist-out FILE] [--request STR --expect STR]\n"
	    "       fibload merge [--json] FILE...\n"
	    "\n"
	    "Load for fibd: every reply is checked against the true fib(N).\n"
	    "\n"
	    "  -H, --host HOST      server address or name (127.0.0.1)\n"
	    "  -p, --port PORTS     server port, or several: 25000,25002 or\n"
	    "                       25000-25003; connection i goes to port\n"
	    "                       i mod the count (25000)\n"
	    "  -c, --conns CONNS    connections in total (1)\n"
	    "  -t, --threads T      event-loop threads, at most CONNS (1)\n"
	    "  -d, --duration S     measure for S seconds (10)\n"
	    "  -r, --requests N     or measure exactly N requests\n"
	    "      --warmup S       run S seconds before measuring (0)\n"
	    "  -P, --pipeline P     requests in flight per connection (1)\n"
	    "      --n N            ask for fib(N) (1)\n"
	    "      --mix N:W,...    ask for several N, by weight W\n"
	    "      --rate RPS       open loop: RPS requests/s in total, with\n"
	    "                       latency from each intended send time\n"
	    "      --arrivals A     the open loop's gaps: uniform (1/RPS "
	    "each,\n"
	    "                       the default) or poisson (exponential, "
	    "mean\n"
	    "                       1/RPS)\n"
	    "      --seed S         seed of the poisson gaps: the same seed,\n"
	    "                       the same schedule (1)\n"
	    "      --timeout MS     a request (or connect) older than MS\n"
	    "                       fails (5000)\n"
	    "      --allow-no-reply\n"
	    "                       connections that get no reply are\n"
	    "                       expected (more clients than the server\n"
	    "                       serves at once): report them, exit 0\n"
	    "      --resend         when the server closes a connection\n"
	    "                       cleanly with requests unanswered (no byte\n"
	    "                       of their replies), send them again once\n"
	    "                       on a new connection, as HTTP clients do\n"
	    "                       (fib requests are idempotent): counted\n"
	    "                       as resent, not as errors\n"
	    "      --busy-poll      never sleep: poll for events and due\n"
	    "                       sends in a loop, each thread a whole CPU\n"
	    "                       (on a VM a wake-up from idle can add\n"
	    "                       100 us to a latency; pin with --cpu)\n"
	    "      --cpu LIST       run on these CPUs (e.g. 1, 0,1, 0-1)\n"
	    "      --progress       a line per second on stderr\n"
	    "      --json           the report as one JSON object on stdout\n"
	    "      --hist-out FILE  also write the result, latency histogram\n"
	    "                       included, to FILE for 'fibload merge'\n"
	    "      --request STR    send STR (C escapes: \\r \\n \\t \\xHH)\n"
	    "      --expect STR     ... and expect this line back per request\n"
	    "  -h, --help           this help\n"
	    "  -V, --version        the version\n"
	    "\n"
	    "Closed loop (default): each connection sends -P requests, then\n"
	    "the next -P once all are answered. A connection that fails is\n"
	    "counted and reconnected; one that keeps failing for --timeout\n"
	    "is given up.\n"
	    "\n"
	    "The report names what was asked for, the server's first distinct\n"
	    "'ERR ...' replies with their counts, and the connections that\n"
	    "got no reply at all (per port with several ports).\n"
	    "\n"
	    "fibload merge reads the --hist-out files of runs made side by\n"
	    "side (from several machines, say) and prints one report: counts\n"
	    "and histograms added exactly, rps summed.\n"
	    "\n"
	    "Exit status: 0 when the run finished with no error, 1 when any\n"
	    "error was counted (connect, read, write, timeout, protocol,\n"
	    "wrong answer), a connection got no reply (unless\n"
	    "--allow-no-reply), nothing could connect or no request was\n"
	    "answered; 2 for a usage error, or (merge) a bad or mismatched\n"
	    "file.\n",
	    out);
}

enum {
	OPT_N = 256,
	OPT_MIX,
	OPT_WARMUP,
	OPT_RATE,
	OPT_ARRIVALS,
	OPT_SEED,
	OPT_TIMEOUT,
	OPT_ALLOW_NO_REPLY,
	OPT_RESEND,
	OPT_BUSY_POLL,
	OPT_CPU,
	OPT_PROGRESS,
	OPT_JSON,
	OPT_HIST_OUT,
	OPT_REQUEST,
	OPT_EXPECT,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"conns", required_argument, NULL, 'c'},
    {"threads", required_argument, NULL, 't'},
    {"duration", required_argument, NULL, 'd'},
    {"requests", required_argument, NULL, 'r'},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"pipeline", required_argument, NULL, 'P'},
    {"n", required_argument, NULL, OPT_N},
    {"mix", required_argument, NULL, OPT_MIX},
    {"rate", required_argument, NULL, OPT_RATE},
    {"arrivals", required_argument, NULL, OPT_ARRIVALS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"allow-no-reply", no_argument, NULL, OPT_ALLOW_NO_REPLY},
    {"resend", no_argument, NULL, OPT_RESEND},
    {"busy-poll", no_argument, NULL, OPT_BUSY_POLL},
    {"cpu", required_argument, NULL, OPT_CPU},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"json", no_argument, NULL, OPT_JSON},
    {"hist-out", required_argument, NULL, OPT_HIST_OUT},
    {"request", required_argument, NULL, OPT_REQUEST},
    {"expect", required_argument, NULL, OPT_EXPECT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/*
 * Short flags mean one thing across fibd, fibload and fib (fibd's are the
 * reference: -h help, -V version, -w workers ...). Two that once meant
 * something else here are refused with the way to say it now, rather than
 * read as something else.
 */
#define SHORT_OPTS "H:p:c:t:d:r:P:hVn:w:"

static int refuse_short(int c)
{
	if (c == 'n')
		log_msg("-n: ambiguous; --n N asks for fib(N), -r/--requests N "
			"measures N requests");
	else
		log_msg("-w: the warm-up is --warmup S (fibd's -w is its "
			"workers)");
	return -1;
}

/* Which of the exclusive options were given. */
struct seen {
	int d, n, num, mix, arrivals, seed, help, version;
	const char *request, *expect;
};

static int parse_uint(const char *opt, uint64_t min, uint64_t max,
		      unsigned *out)
{
	uint64_t v;

	if (opt_uint(opt, optarg, min, max, &v))
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Handles one option. Returns 0, 1 to exit 0 at once, or -1. */
static int parse_one(int c, struct fl_config *cfg, struct seen *seen)
{

	switch (c) {
	case 'H':
		if (strlen(optarg) >= NET_HOST_MAX || !optarg[0]) {
			log_msg("-H: bad host '%s'", optarg);
			return -1;
		}
		strcpy(cfg->host, optarg);
		return 0;
	case 'p':
		return fl_parse_ports(optarg, cfg);
	case 'c':
		return parse_uint("-c", 1, FL_MAX_CONNS, &cfg->conns);
	case 't':
		return parse_uint("-t", 1, 1024, &cfg->threads);
	case 'd':
		seen->d = 1;
		return opt_double("-d", optarg, 0.001, 1e7, &cfg->duration_s);
	case 'r':
		seen->n = 1;
		return opt_uint("-r", optarg, 1, 1ull << 48, &cfg->requests);
	case OPT_WARMUP:
		return opt_double("--warmup", optarg, 0, 1e7, &cfg->warmup_s);
	case 'P':
		return parse_uint("-P", 1, FL_MAX_PIPELINE, &cfg->pipeline);
	case 'n':
	case 'w':
		return refuse_short(c);
	case OPT_N:
		seen->num = 1;
		return opt_uint("--n", optarg, 0, FL_MAX_N, &cfg->mix[0].n);
	case OPT_MIX:
		seen->mix = 1;
		return fl_parse_mix(optarg, cfg);
	case OPT_RATE:
		return opt_double("--rate", optarg, 0.001, 1e9, &cfg->rate);
	case OPT_ARRIVALS:
		seen->arrivals = 1;
		if (!fl_arrivals_parse(optarg, &cfg->arrivals))
			return 0;
		log_msg("--arrivals: '%s' is not uniform or poisson", optarg);
		return -1;
	case OPT_SEED:
		seen->seed = 1;
		return opt_uint("--seed", optarg, 0, UINT64_MAX, &cfg->seed);
	case OPT_ALLOW_NO_REPLY:
		cfg->allow_no_reply = 1;
		return 0;
	case OPT_RESEND:
		cfg->resend = 1;
		return 0;
	case OPT_BUSY_POLL:
		cfg->busy_poll = 1;
		return 0;
	case OPT_TIMEOUT:
		return parse_uint("--timeout", 1, 3600000, &cfg->timeout_ms);
	case OPT_CPU:
		cfg->cpu_arg = optarg;
		return fl_parse_cpus(optarg, &cfg->cpus);
	case OPT_PROGRESS:
		cfg->progress = 1;
		return 0;
	case OPT_JSON:
		cfg->json = 1;
		return 0;
	case OPT_HIST_OUT:
		cfg->hist_out = optarg;
		return 0;
	case OPT_REQUEST:
		seen->request = optarg;
		return 0;
	case OPT_EXPECT:
		seen->expect = optarg;
		return 0;
	case 'h':
		seen->help = 1;
		return 0;
	case 'V':
		seen->version = 1;
		return 0;
	default:
		return -1;
	}
}

/* -h or -V alone: 1 once printed. With other arguments they are a usage
 * error: "-h 10.0.0.1" must not print the help and exit 0. */
static int help_or_version(int argc, const struct seen *seen)
{
	if (!seen->help && !seen->version)
		return 0;
	if (argc != 2) {
		log_msg("-h/--help and -V/--version come alone (the host is "
			"-H/--host)");
		return -1;
	}
	if (seen->help)
		usage(stdout);
	else
		printf("fibload %s\n", FIBD_VERSION);
	return 1;
}

/* Checks the combinations; resolves --request/--expect. 0 or -1. */
static int check(struct fl_config *cfg, const struct seen *seen)
{
	if (seen->d && seen->n) {
		log_msg("-d and -r: give one or the other");
		return -1;
	}
	if (seen->n)
		cfg->duration_s = 0;
	if (seen->num && seen->mix) {
		log_msg("--n and --mix: give one or the other");
		return -1;
	}
	if (!seen->request != !seen->expect) {
		log_msg("--request and --expect go together");
		return -1;
	}
	if (seen->request && (seen->num || seen->mix)) {
		log_msg("--request replaces --n and --mix");
		return -1;
	}
	if (seen->request && (fl_unescape("--request", seen->request,
					  &cfg->request, &cfg->request_len) ||
			      fl_unescape("--expect", seen->expect,
					  &cfg->expect, &cfg->expect_len)))
		return -1;
	if (cfg->request &&
	    (!cfg->request_len || cfg->request[cfg->request_len - 1] != '\n')) {
		log_msg("--request: must end in a newline (\\n)");
		return -1;
	}
	if ((seen->arrivals || seen->seed) && !(cfg->rate > 0)) {
		log_msg(
		    "--arrivals and --seed shape the open loop: give --rate");
		return -1;
	}
	if (cfg->threads > cfg->conns)
		cfg->threads = cfg->conns;
	return 0;
}

static int run(struct fl_config *cfg)
{
	struct fl_result res;
	struct fl_work *work = fl_work_new(cfg);
	int err;

	if (!work) {
		log_msg("out of memory");
		return EXIT_FAILURE;
	}
	net_ignore_sigpipe();
	err = fl_run(cfg, work, &res);
	fl_work_free(work);
	if (err)
		return EXIT_FAILURE;
	if (cfg->json)
		fl_report_json(stdout, cfg, &res);
	else
		fl_report_text(stdout, cfg, &res);
	err = res.error_total ? EXIT_FAILURE : EXIT_SUCCESS;
	if (res.no_reply && !cfg->allow_no_reply) {
		log_msg("%u of %u connection%s got no reply (--allow-no-reply "
			"when that is expected)",
			res.no_reply, cfg->conns, cfg->conns == 1 ? "" : "s");
		err = EXIT_FAILURE;
	}
	if (!res.requests && !res.interrupted) {
		log_msg("no request was answered in the measured window");
		err = EXIT_FAILURE;
	}
	if (cfg->hist_out && fl_histfile_write(cfg->hist_out, cfg, &res))
		err = EXIT_FAILURE;
	fl_result_release(&res);
	return err;
}

/* fibload merge [--json] FILE...: one report for runs made side by side. */
static int merge_main(int argc, char **argv)
{
	char **paths = argv + 1; /* the files, gathered in place */
	struct fl_config cfg;
	struct fl_result res = {0};
	unsigned n = 0;
	int json = 0, err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return EXIT_SUCCESS;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			log_msg("merge: unknown option '%s'", argv[i]);
			return EXIT_USAGE;
		} else {
			paths[n++] = argv[i];
		}
	}
	if (!n) {
		log_msg("merge: give the --hist-out files to merge");
		return EXIT_USAGE;
	}
	fl_config_default(&cfg);
	err = fl_merge((const char *const *)paths, n, &cfg, &res);
	if (!err) {
		if (json)
			fl_report_json(stdout, &cfg, &res);
		else
			fl_report_text(stdout, &cfg, &res);
	}
	fl_result_release(&res);
	fl_config_release(&cfg);
	if (err) /* a file that is missing, unreadable, bad or mismatched */
		return EXIT_USAGE;
	return res.error_total ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct fl_config cfg;
	struct seen seen = {0};
	int c, r, status;

	log_set_prog("fibload");
	if (argc > 1 && !strcmp(argv[1], "merge"))
		return merge_main(argc - 1, argv + 1);
	fl_config_default(&cfg);
	while ((c = getopt_long(argc, argv, SHORT_OPTS, long_opts, NULL)) !=
	       -1) {
		r = parse_one(c, &cfg, &seen);
		if (r)
			goto out_release;
	}
	r = help_or_version(argc, &seen);
	if (r)
		goto out_release;
	r = -1;
	if (optind < argc) {
		log_msg("unexpected argument '%s'", argv[optind]);
		goto out_release;
	}
	if (check(&cfg, &seen))
		goto out_release;
	status = run(&cfg);
	fl_config_release(&cfg);
	return status;

out_release:
	fl_config_release(&cfg);
	if (r > 0)
		return EXIT_SUCCESS;
	fputs("fibload: try 'fibload --help'\n", stderr);
	return EXIT_USAGE;
}
