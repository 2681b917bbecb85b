/*
 * test_registry - the model registry keeps its promise: fibd --list-models
 * --json parses, agrees with the --list-models table, and every model's
 * properties agree with one another; and fibd itself acts on them: an
 * option a model does not take is refused (exit 2, a message naming it),
 * whatever the order of the options, --workers past max_workers too, and
 * --ports with port 0 gets consecutive ports. Plus what fibd tells its
 * users: --help's endpoints and the "listening on" line's framing. And
 * the default --workers is the CPUs fibd may run on, not the machine's.
 *
 * Every model is covered, whatever $FIBD_MODELS says: the checks are
 * about the registry as a whole, and most only run fibd's command line.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

#define MAX_MODELS 32

static struct tsrv_model models[MAX_MODELS];
static int nmodels;
static char out[65536];

/* fibd ARGS... exits with want and says what (NULL: anything). */
static void expect_exit(const char *const *args, int want, const char *says)
{
	int rc = tsrv_run(args, out, sizeof(out));

	T_CHECK(rc == want, "fibd %s %s %s %s: exit %d, want %d: %s", args[0],
		args[1] ? args[1] : "", args[1] && args[2] ? args[2] : "",
		args[1] && args[2] && args[3] ? args[3] : "", rc, want, out);
	T_CHECK(!says || strstr(out, says), "fibd %s...: no '%s' in '%s'",
		args[0], says, out);
}

/* The JSON is the same in either order of the flags, and parses. */
static void case_json(void)
{
	static const char *const a[] = {"--list-models", "--json", NULL};
	static const char *const b[] = {"--json", "--list-models", NULL};
	static const char *const bare[] = {"--json", NULL};
	static char first[sizeof(out)];
	struct tsrv_model again[MAX_MODELS];

	expect_exit(a, 0, NULL);
	strcpy(first, out);
	expect_exit(b, 0, NULL);
	T_CHECK(strcmp(first, out) == 0, "the order of the flags matters");
	T_CHECK(tsrv_parse_models(out, again, MAX_MODELS) == nmodels);
	expect_exit(bare, 2, "--json");
}

static const char *yes_no(bool b)
{
	return b ? "yes" : "-";
}

/* The table: a header, then each model's properties as the JSON has them. */
static void case_table(void)
{
	static const char *const a[] = {"--list-models", NULL};
	char name[32], conc[16], forks[8], talk[32], serial[8], k10[8];
	char workers[16], ports[8], offload[8], uring[8], pyserial[8];
	char want_workers[16];
	const struct tsrv_model *m;
	char *line;
	int i = 0;

	expect_exit(a, 0, NULL);
	line = strtok(out, "\n");
	T_CHECK(line && strncmp(line, "MODEL ", 6) == 0, "header '%s'", line);
	while ((line = strtok(NULL, "\n")) && i < nmodels) {
		m = &models[i++];
		T_CHECK(sscanf(line,
			       "%31s %15s %7s %31s %7s %7s %15s %7s %7s %7s "
			       "%7s",
			       name, conc, forks, talk, serial, k10, workers,
			       ports, offload, uring, pyserial) == 11,
			"row '%s'", line);
		snprintf(want_workers, sizeof(want_workers), "%u",
			 m->max_workers);
		T_CHECK(strcmp(name, m->name) == 0 &&
			    strcmp(conc, m->concurrency) == 0 &&
			    strcmp(forks, yes_no(m->forks)) == 0 &&
			    strcmp(talk, *m->talk_server ? m->talk_server
							 : "-") == 0 &&
			    strcmp(serial, yes_no(m->serial_shards)) == 0 &&
			    strcmp(k10, yes_no(m->fits_10k)) == 0 &&
			    strcmp(workers,
				   m->max_workers ? want_workers : "-") == 0 &&
			    strcmp(ports, yes_no(m->takes_ports)) == 0 &&
			    strcmp(offload, yes_no(m->takes_offload)) == 0 &&
			    strcmp(uring, yes_no(m->uses_io_uring)) == 0 &&
			    strcmp(pyserial, yes_no(m->python_serial)) == 0,
			"row %d '%s' is not the JSON's %s", i, line, m->name);
	}
	T_CHECK(i == nmodels && !line, "%d rows for %d models", i, nmodels);
}

/* What the properties mean (model.h) makes some pairs impossible. */
static void case_consistent(void)
{
	for (int i = 0; i < nmodels; i++) {
		const struct tsrv_model *m = &models[i];
		bool serial = strcmp(m->concurrency, "serial") == 0;
		bool sharded = strcmp(m->concurrency, "sharded") == 0;
		bool parallel = strcmp(m->concurrency, "parallel") == 0;

		T_CHECK(*m->name && (serial || sharded || parallel),
			"%s: concurrency '%s'", m->name, m->concurrency);
		for (int j = 0; j < i; j++)
			T_CHECK(strcmp(models[j].name, m->name) != 0,
				"%s listed twice", m->name);
		/* One shard serving one client: a serial model is one. */
		T_CHECK(!m->serial_shards || serial || sharded,
			"%s: serial shards but %s", m->name, m->concurrency);
		T_CHECK(!serial || m->serial_shards,
			"%s: serial without serial shards", m->name);
		/* A shard per port, a shard per worker: the suites put
		 * two clients on two shards with --ports --workers 2. */
		T_CHECK(!sharded || (m->takes_ports && m->max_workers >= 2),
			"%s: sharded but no --ports or --workers", m->name);
		T_CHECK(!m->takes_ports || sharded,
			"%s: --ports without shards", m->name);
		/* A process per shard takes the stop by a handler. */
		T_CHECK(!m->forks || m->max_workers > 0,
			"%s: forks but has no workers", m->name);
		/* The compute pool of --offload is sized by --workers. */
		T_CHECK(!m->takes_offload || m->max_workers > 0,
			"%s: --offload without workers", m->name);
		/* Starving needs two clients served at once. */
		T_CHECK(!m->python_serial || parallel,
			"%s: python_serial but %s", m->name, m->concurrency);
		T_CHECK(m->max_workers <= 1024, "%s: max_workers %u", m->name,
			m->max_workers);
	}
}

/*
 * An option the model does not take exits 2 and names the option, with the
 * option before --model and after it; --workers past max_workers too.
 */
static void case_options_follow_properties(void)
{
	char over[16];

	for (int i = 0; i < nmodels; i++) {
		const struct tsrv_model *m = &models[i];
		const char *before_ports[] = {"--ports",     "--listen",
					      "127.0.0.1:0", "--model",
					      m->name,	     NULL};
		const char *after_offload[] = {"--model",   m->name,
					       "--listen",  "127.0.0.1:0",
					       "--offload", NULL};
		const char *workers1[] = {"-w", "1",	 "-l", "127.0.0.1:0",
					  "-m", m->name, NULL};
		const char *workers_over[] = {"-m", m->name,	   "-w", over,
					      "-l", "127.0.0.1:0", NULL};

		if (!m->takes_ports)
			expect_exit(before_ports, 2, "--ports");
		if (!m->takes_offload)
			expect_exit(after_offload, 2, "--offload");
		if (!m->max_workers)
			expect_exit(workers1, 2, "--workers");
		snprintf(over, sizeof(over), "%u",
			 (m->max_workers ? m->max_workers : 1024) + 1);
		expect_exit(workers_over, 2,
			    m->max_workers ? "out of range" : "--workers");
	}
}

/* Sends "10\n" on port idx of s, expects fib(10). */
static void expect_served(const struct tsrv *s, int idx, const char *model)
{
	char buf[64];
	int fd = tsrv_connect(s, idx);

	T_CHECK(fd >= 0 && t_ask(fd, "10\n", buf, sizeof(buf)) &&
		    strcmp(buf, "55\n") == 0,
		"%s: port %u: '%s'", model, s->ports[idx], buf);
	if (fd >= 0)
		close(fd);
}

/* What the model takes works: --ports with port 0, --offload. */
static void case_options_taken(void)
{
	static const char *const ports[] = {"--ports", "--workers", "3", NULL};
	static const char *const offload[] = {"--offload", "--workers", "2",
					      NULL};
	struct tsrv s;

	for (int i = 0; i < nmodels; i++) {
		const struct tsrv_model *m = &models[i];

		if (m->takes_ports && tsrv_start(&s, m->name, ports, 3) == 0) {
			for (int k = 0; k < 3; k++) {
				T_CHECK(s.ports[k] == s.ports[0] + k,
					"%s --ports: port %d is %u, not "
					"%u + %d",
					m->name, k, s.ports[k], s.ports[0], k);
				expect_served(&s, k, m->name);
			}
			T_CHECK(tsrv_stop(&s, 30) == 0, "%s", m->name);
		} else if (m->takes_ports) {
			T_CHECK(0, "%s --ports did not start", m->name);
		}
		if (m->takes_offload &&
		    tsrv_start(&s, m->name, offload, 1) == 0) {
			expect_served(&s, 0, m->name);
			T_CHECK(tsrv_stop(&s, 30) == 0, "%s", m->name);
		} else if (m->takes_offload) {
			T_CHECK(0, "%s --offload did not start", m->name);
		}
	}
}

/* The models: line of the --help paragraph that starts with opt. */
static void expect_help_lists(const char *help, const char *opt,
			      bool (*has)(const struct tsrv_model *))
{
	const char *p = strstr(help, opt), *end;
	char list[256];

	p = p ? strstr(p, "models: ") : NULL;
	T_CHECK(p != NULL, "--help: no models for %s", opt);
	if (!p)
		return;
	end = strchr(p, '\n');
	snprintf(list, sizeof(list), "%.*s,", (int)(end - p - 8), p + 8);
	for (int i = 0; i < nmodels; i++) {
		char item[40];

		snprintf(item, sizeof(item), " %.30s,", models[i].name);
		T_CHECK((strstr(list, item + 1) == list ||
			 strstr(list, item) != NULL) == has(&models[i]),
			"--help: %s: '%s' and %s", opt, list, models[i].name);
	}
}

static bool has_ports(const struct tsrv_model *m)
{
	return m->takes_ports;
}

static bool has_offload(const struct tsrv_model *m)
{
	return m->takes_offload;
}

static bool has_workers(const struct tsrv_model *m)
{
	return m->max_workers > 0;
}

/* --help names the endpoints and, per option, the models that take it. */
static void case_help(void)
{
	static const char *const a[] = {"--model", "thread", "--help", NULL};
	static char help[sizeof(out)];

	expect_exit(a, 0, "usage: fibd");
	strcpy(help, out);
	T_CHECK(strstr(help, "GET /fib/N") && strstr(help, "GET /metrics") &&
		    strstr(help, "GET /healthz") && strstr(help, "GET /  ") &&
		    strstr(help, "HTTP/1.1") && strstr(help, "fib/1 lines"),
		"--help does not name the protocols and endpoints: %s", help);
	expect_help_lists(help, "--workers N", has_workers);
	expect_help_lists(help, "--ports", has_ports);
	expect_help_lists(help, "--offload", has_offload);
}

/* The "listening on" line says the framing. */
static void case_listening_line(void)
{
	static const char *const rd[] = {"--framing", "read", NULL};
	const char *const *args[] = {NULL, rd};
	const char *want[] = {"framing line)", "framing read)"};
	char line[512];
	struct tsrv s;
	FILE *f;

	for (int k = 0; k < 2; k++) {
		if (tsrv_start(&s, models[0].name, args[k], 1)) {
			T_CHECK(0, "%s did not start", models[0].name);
			continue;
		}
		f = fopen(s.log_path, "r");
		line[0] = '\0';
		while (f && fgets(line, sizeof(line), f) &&
		       !strstr(line, "listening on "))
			;
		if (f)
			fclose(f);
		T_CHECK(strstr(line, want[k]) != NULL, "'%s' lacks '%s'", line,
			want[k]);
		T_CHECK(tsrv_stop(&s, 30) == 0);
	}
}

/* The "listening on" lines left in f: one per shard with --ports. */
static int count_listening(FILE *f)
{
	char line[512];
	int n = 0;

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, "listening on ") != NULL;
	if (f)
		fclose(f);
	return n;
}

/*
 * Pinned to one CPU (taskset, a container's cpuset), a sharded model
 * without --workers runs one shard, not one per online CPU: two loops on
 * one CPU would each stall the other's clients.
 */
static void case_workers_follow_affinity(void)
{
	static const char *const ports[] = {"--ports", NULL};
	cpu_set_t was, one;
	struct tsrv s;
	int cpu = -1, shards;
	FILE *log;

	T_CHECK(sched_getaffinity(0, sizeof(was), &was) == 0);
	for (int c = 0; c < CPU_SETSIZE && cpu < 0; c++)
		if (CPU_ISSET(c, &was))
			cpu = c;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	T_CHECK(cpu >= 0 && sched_setaffinity(0, sizeof(one), &one) == 0);
	for (int i = 0; i < nmodels; i++) {
		if (!models[i].takes_ports)
			continue;
		if (tsrv_start(&s, models[i].name, ports, 1)) {
			T_CHECK(0, "%s --ports on one CPU did not start",
				models[i].name);
			continue;
		}
		expect_served(&s, 0, models[i].name);
		/* Read once stopped, when every shard has said where it
		 * listens; tsrv_stop() unlinks the log, so open it first. */
		log = fopen(s.log_path, "r");
		T_CHECK(tsrv_stop(&s, 30) == 0, "%s", models[i].name);
		shards = count_listening(log);
		T_CHECK(shards == 1, "%s on one CPU: %d shards, not 1",
			models[i].name, shards);
	}
	sched_setaffinity(0, sizeof(was), &was);
}

int main(void)
{
	unsetenv("FIBD_MODELS"); /* the whole registry */
	nmodels = tsrv_list_models(models, MAX_MODELS);
	T_CHECK(nmodels > 0, "fibd --list-models --json: no models");
	if (nmodels <= 0)
		return t_done("test_registry");
	T_RUN(case_json, 30);
	T_RUN(case_table, 30);
	T_RUN(case_consistent, 30);
	T_RUN(case_options_follow_properties, 120);
	T_RUN(case_options_taken, 120);
	T_RUN(case_help, 30);
	T_RUN(case_listening_line, 60);
	T_RUN(case_workers_follow_affinity, 60);
	return t_done("test_registry");
}
