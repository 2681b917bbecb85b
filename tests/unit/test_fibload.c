/*
 * test_fibload - the load generator: its parsers and reply check in
 * process, its command line, and runs as a subprocess against a real fibd
 * (started with tsrv): the JSON report, a timed run, histogram files and
 * their merge, connections that got no reply, the server's ERR texts.
 * test_fibload_fake.c runs it against fake servers. Nothing here asserts a
 * speed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tfibload.h"
#include "../lib/tjson.h"
#include "../lib/tsrv.h"
#include "../t.h"
#include "core/log.h"
#include "fibload/config.h"
#include "fibload/conn.h"

static char out[1 << 16], err[1 << 16];

/* BUILD/fibload ARGS...: stdout in out, stderr in err; its exit status. */
static int fibload(const char *const *args)
{
	return tfibload_run(args, out, sizeof(out), err, sizeof(err));
}

/*
 * Starts fibd with the first model of the registry whose concurrency is
 * kind ("serial": one connection at a time; "parallel"); its port, as
 * text, goes into port. 0 or -1.
 */
static int start_fibd(struct tsrv *s, const char *kind, char port[8])
{
	struct tsrv_model models[32];
	int n = tsrv_list_models(models, 32), i = 0;

	while (i < n && strcmp(models[i].concurrency, kind) != 0)
		i++;
	if (i == n || tsrv_start(s, models[i].name, NULL, 1)) {
		T_CHECK(0, "no %s model started", kind);
		return -1;
	}
	snprintf(port, 8, "%u", (unsigned)s->ports[0]);
	return 0;
}

/* Every key the issue names, in the object it belongs to. */
static void check_json_keys(const char *json)
{
	static const char *const top[] = {
	    "rps",    "requests", "elapsed_s",	  "latency_us",
	    "errors", "resent",	  "client_cpu_s", "config"};
	static const char *const lat[] = {"mean", "p50", "p90",	  "p99",
					  "p999", "max", "stddev"};
	static const char *const errs[] = {"connect", "read",	  "write",
					   "timeout", "protocol", "wrong",
					   "total"};

	T_CHECK(tjson_valid(json), "not JSON: %s", json);
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
		T_CHECK(tjson_find(json, NULL, top[i]), "no key %s", top[i]);
	for (size_t i = 0; i < sizeof(lat) / sizeof(lat[0]); i++)
		T_CHECK(tjson_find(json, "latency_us", lat[i]), "no %s",
			lat[i]);
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		T_CHECK(tjson_find(json, "errors", errs[i]), "no %s", errs[i]);
	T_CHECK(tjson_find(json, "config", "conns"));
	T_CHECK(tjson_find(json, "config", "pipeline"));
}

static void test_fibd_json(void)
{
	struct tsrv s;
	char port[8];

	if (start_fibd(&s, "parallel", port))
		return;
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "4", "-t", "2", "-r", "2000", "-P", "3",
		    "--mix", "1:3,20:1,45:0,60:1", "--json", NULL}) == 2,
		"a weight of 0 is a usage error");
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "4", "-t", "2", "-r", "2000", "-P", "3",
		    "--mix", "1:3,20:1,25:1", "--json", NULL}) == 0,
		"%s", err);
	check_json_keys(out);
	T_CHECK(tjson_num(out, NULL, "requests") == 2000, "%s", out);
	T_CHECK(tjson_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(tjson_num(out, "config", "threads") == 2);
	T_CHECK(tjson_num(out, "config", "connected") == 4);
	tsrv_stop(&s, 10);
}

static void test_fibd_duration(void)
{
	struct tsrv s;
	char port[8];

	if (start_fibd(&s, "parallel", port))
		return;
	/* perf2 style, with a warm-up: text report, progress on stderr. */
	T_CHECK(
	    fibload((const char *const[]){"-p", port, "-d", "1.2", "--warmup",
					  "0.5", "--progress", NULL}) == 0,
	    "%s", err);
	T_CHECK(strstr(out, "requests: ") && strstr(out, "errors: 0"), "%s",
		out);
	T_CHECK(strstr(out, "in 1.200 s"), "the window is -d: %s", out);
	T_CHECK(strstr(err, " rps  p50 ") && strstr(err, "(warm-up)"), "%s",
		err);
	/* Open loop: corrected and uncorrected latency. */
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "3", "-t", "2",
					      "--rate", "2000", "-d", "1",
					      "--json", NULL}) == 0,
		"%s", err);
	check_json_keys(out);
	T_CHECK(tjson_find(out, "latency_uncorrected_us", "p99"), "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") > 0);
	T_CHECK(strstr(out, "\"busy_poll\":false"), "%s", out);
	/* --busy-poll never sleeps, and still sends each request when due:
	 * exactly the requests asked for, every reply right. */
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "2", "--rate", "4000", "-r", "600",
		    "--busy-poll", "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(tjson_num(out, NULL, "requests") == 600, "%s", out);
	T_CHECK(tjson_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(strstr(out, "\"busy_poll\":true"), "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", port, "-r", "300",
					      "--busy-poll", NULL}) == 0,
		"%s", err);
	T_CHECK(strstr(out, ", busy-poll, cpus ") &&
		    strstr(out, "requests: 300 "),
		"%s", out);
	tsrv_stop(&s, 10);
}

/* --hist-out, then merge: one file reports what its run reported; two add
 * up; a bad or mismatched file is exit 2 with a reason. */
static void test_hist_merge(void)
{
	char a[] = "/tmp/fibload-a-XXXXXX", b[] = "/tmp/fibload-b-XXXXXX";
	char c[] = "/tmp/fibload-c-XXXXXX", bad[64], run_lat[512], lat[512];
	double rps_a, rps_b;
	struct tsrv s;
	char port[8];

	close(mkstemp(a));
	close(mkstemp(b));
	close(mkstemp(c));
	if (start_fibd(&s, "parallel", port))
		return;
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "3", "-r", "3000", "--mix", "1:3,20:1",
		    "--json", "--hist-out", a, NULL}) == 0,
		"%s", err);
	tjson_object(out, "latency_us", run_lat, sizeof(run_lat));
	rps_a = tjson_num(out, NULL, "rps");
	T_CHECK(fibload((const char *const[]){"merge", "--json", a, NULL}) == 0,
		"%s", err);
	check_json_keys(out);
	tjson_object(out, "latency_us", lat, sizeof(lat));
	T_CHECK(run_lat[0] && !strcmp(lat, run_lat), "run %s, merge %s",
		run_lat, lat);
	T_CHECK(tjson_num(out, NULL, "rps") == rps_a, "%s", out);
	T_CHECK(tjson_num(out, NULL, "merged") == 1, "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "2", "-r",
					      "2000", "--mix", "1:3,20:1",
					      "--hist-out", b, NULL}) == 0,
		"%s", err);
	T_CHECK(fibload((const char *const[]){"merge", b, NULL}) == 0);
	T_CHECK(strstr(out, "(1 runs merged)"), "%s", out);
	rps_b = strtod(strstr(out, ") = ") + 4, NULL);
	T_CHECK(fibload((const char *const[]){"merge", "--json", a, b, NULL}) ==
		    0,
		"%s", err);
	T_CHECK(tjson_num(out, NULL, "requests") == 5000, "%s", out);
	T_CHECK(tjson_num(out, NULL, "merged") == 2, "%s", out);
	T_CHECK(tjson_num(out, "config", "conns") == 5, "%s", out);
	T_CHECK(tjson_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(tjson_num(out, NULL, "rps") >= rps_a + rps_b - 1.5 &&
		    tjson_num(out, NULL, "rps") <= rps_a + rps_b + 1.5,
		"rps %g + %g: %s", rps_a, rps_b, out);
	/* Not the same load: another pipeline depth. */
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "1", "-r", "100", "-P", "2", "--mix",
		    "1:3,20:1", "--hist-out", c, NULL}) == 0,
		"%s", err);
	T_CHECK(fibload((const char *const[]){"merge", a, c, NULL}) == 2);
	T_CHECK(strstr(err, "does not match") && strstr(err, "pipeline"), "%s",
		err);
	tfibload_temp(bad, "fibload-hist 1\nhost x\n");
	T_CHECK(fibload((const char *const[]){"merge", a, bad, NULL}) == 2);
	T_CHECK(strstr(err, bad) && strstr(err, "no 'port' line"), "%s", err);
	unlink(bad);
	tfibload_temp(bad, "fibload-hist 99\n");
	T_CHECK(fibload((const char *const[]){"merge", bad, NULL}) == 2);
	T_CHECK(strstr(err, "version 99"), "%s", err);
	unlink(bad);
	T_CHECK(fibload((const char *const[]){"merge", NULL}) == 2);
	T_CHECK(fibload((const char *const[]){"merge", "/nonexistent/x",
					      NULL}) == 2);
	unlink(a);
	unlink(b);
	unlink(c);
	tsrv_stop(&s, 10);
}

/* A connection that got no reply is shown and fails the run, unless
 * --allow-no-reply: a serial model serves one connection at a time. */
static void test_no_reply(void)
{
	struct tsrv s;
	char port[8];

	if (start_fibd(&s, "serial", port))
		return;
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "2", "-d",
					      "0.5", NULL}) == 1,
		"%s", out);
	T_CHECK(strstr(out, "1 of 2 connections got no reply"), "%s", out);
	T_CHECK(strstr(err, "--allow-no-reply"), "%s", err);
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "2", "-d",
					      "0.5", "--json", NULL}) == 1);
	T_CHECK(tjson_num(out, NULL, "no_reply") == 1, "%s", out);
	T_CHECK(tjson_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "2", "-d",
					      "0.5", "--allow-no-reply",
					      "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(tjson_num(out, NULL, "no_reply") == 1, "%s", out);
	/* One connection is served: nothing to report. */
	T_CHECK(fibload((const char *const[]){"-p", port, "-d", "0.3", "--json",
					      NULL}) == 0,
		"%s", err);
	T_CHECK(tjson_num(out, NULL, "no_reply") == 0, "%s", out);
	tsrv_stop(&s, 10);
}

/* The report names what was asked for and the server's ERR texts. */
static void test_asked_and_server_errors(void)
{
	struct tsrv s;
	char port[8];

	if (start_fibd(&s, "parallel", port))
		return;
	T_CHECK(fibload((const char *const[]){"-p", port, "--n", "50", "-r",
					      "20", NULL}) == 1);
	T_CHECK(strstr(out, "asked for: fib(50)\n"), "%s", out);
	T_CHECK(strstr(out, "server errors: 20 x 'ERR n too large (max 45)'"),
		"%s", out);
	T_CHECK(strstr(out, "wrong 20"), "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", port, "--n", "50", "-r",
					      "20", "--json", NULL}) == 1);
	T_CHECK(strstr(out, "\"asked\":\"fib(50)\""), "%s", out);
	T_CHECK(strstr(out, "\"server_errors\":[{\"text\":\"ERR n too "
			    "large (max 45)\",\"count\":20}]"),
		"%s", out);
	T_CHECK(tjson_num(out, "errors", "wrong") == 20, "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", port, "--mix", "1:3,20:1",
					      "-r", "40", NULL}) == 0,
		"%s", err);
	T_CHECK(strstr(out, "asked for: mix of fib(1) 75%, fib(20) 25%"), "%s",
		out);
	T_CHECK(!strstr(out, "server errors"), "%s", out);
	tsrv_stop(&s, 10);
}

static void test_usage(void)
{
	const char *const *const bad[] = {
	    (const char *const[]){"-c", "0", NULL},
	    (const char *const[]){"-d", "1", "-r", "5", NULL},
	    (const char *const[]){"--n", "5", "--mix", "1:1", NULL},
	    (const char *const[]){"--request", "x\\n", NULL},
	    (const char *const[]){"--request", "x", "--expect", "y", NULL},
	    (const char *const[]){"--request", "\\q\\n", "--expect", "y", NULL},
	    (const char *const[]){"--mix", "1:2,", NULL},
	    (const char *const[]){"--cpu", "1-0", NULL},
	    (const char *const[]){"-p", "70000", NULL},
	    (const char *const[]){"-p", "25001-25000", NULL},
	    (const char *const[]){"-p", "1,", NULL},
	    (const char *const[]){"--arrivals", "poisson", NULL},
	    (const char *const[]){"--rate", "10", "--arrivals", "gauss", NULL},
	    (const char *const[]){"--seed", "3", NULL},
	    (const char *const[]){"--bogus", NULL},
	    (const char *const[]){"extra", NULL},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		T_CHECK(fibload(bad[i]) == 2, "case %zu: %s", i, err);
	T_CHECK(fibload((const char *const[]){"--help", NULL}) == 0);
	T_CHECK(strstr(out, "Exit status"), "%s", out);
	T_CHECK(fibload((const char *const[]){"--version", NULL}) == 0);
	T_CHECK(strncmp(out, "fibload ", 8) == 0, "%s", out);
}

/* Which connections count as "got no reply". */
static void test_unanswered_rule(void)
{
	struct fl_conn c = {.ever_ready = 1, .first_sent = 100};

	/* asked at 100; the server answered someone at 200: passed over */
	T_CHECK(fl_conn_unanswered(&c, 200) == 1);
	/* ... or answered nobody at all */
	T_CHECK(fl_conn_unanswered(&c, 0) == 1);
	/* asked after the server's last reply (the run's very end) */
	T_CHECK(fl_conn_unanswered(&c, 50) == 0);
	c.last_reply = 150; /* it did get a reply */
	T_CHECK(fl_conn_unanswered(&c, 200) == 0);
	c = (struct fl_conn){.ever_ready = 1}; /* connected, sent nothing */
	T_CHECK(fl_conn_unanswered(&c, 200) == 0);
	c = (struct fl_conn){.ever_ready = 0}; /* never connected */
	T_CHECK(fl_conn_unanswered(&c, 200) == 1);
}

/* The parsers and the reply check, in process. */
static void test_parsers(void)
{
	struct fl_config cfg;
	struct fl_work *work;
	char ports[FL_PORTS_TEXT_MAX];
	cpu_set_t set;
	char *s;
	size_t len;

	log_set_prog("fibload");
	fl_config_default(&cfg);
	T_CHECK(fl_parse_mix("1:3,30,93:2", &cfg) == 0);
	T_CHECK(cfg.mix_len == 3 && cfg.mix[1].n == 30 &&
		cfg.mix[1].weight == 1 && cfg.mix[2].weight == 2);
	T_CHECK(fl_parse_mix("1:x", &cfg) == -EINVAL);
	T_CHECK(fl_parse_cpus("0-2,5", &set) == 0 && CPU_COUNT(&set) == 4);
	T_CHECK(fl_parse_ports("25000-25002,26000,25000", &cfg) == 0);
	T_CHECK(cfg.nports == 5 && cfg.ports[2] == 25002 &&
		cfg.ports[3] == 26000 && cfg.ports[4] == 25000);
	fl_format_ports(&cfg, ports, sizeof(ports));
	T_CHECK(!strcmp(ports, "25000-25002,26000,25000"), "%s", ports);
	T_CHECK(fl_parse_ports("0", &cfg) == -EINVAL);
	T_CHECK(fl_parse_ports("1-300", &cfg) == -EINVAL); /* > FL_MAX_PORTS */
	T_CHECK(fl_parse_cpus("", &set) == -EINVAL);
	T_CHECK(fl_unescape("--request", "A\\r\\n\\x41\\\\", &s, &len) == 0);
	T_CHECK(len == 5 && memcmp(s, "A\r\nA\\", 5) == 0);
	free(s);
	T_CHECK(fl_parse_mix("1:3,30,93:2,200", &cfg) == 0);
	work = fl_work_new(&cfg);
	T_CHECK(work && work->nitems == 4 && work->total_weight == 7);
	T_CHECK(fl_work_check(work, 1, "832040", 6) == FL_REPLY_OK);
	T_CHECK(fl_work_check(work, 1, "832040\r", 7) == FL_REPLY_OK);
	T_CHECK(fl_work_check(work, 1, "832041", 6) == FL_REPLY_WRONG);
	T_CHECK(fl_work_check(work, 1, "ERR n too large (max 20)", 24) ==
		FL_REPLY_WRONG);
	T_CHECK(fl_work_check(work, 1, "83204O", 6) == FL_REPLY_MALFORMED);
	T_CHECK(fl_work_check(work, 2, "12200160415121876738", 20) ==
		FL_REPLY_OK);
	/* fib(200) is beyond uint64: the expected string comes from GMP. */
	T_CHECK(strcmp(work->items[3].exp,
		       "280571172992510140037611932413038677189525") == 0,
		"%s", work->items[3].exp);
	T_CHECK(fl_work_pick(work, 0) == 0 && fl_work_pick(work, 3) == 1);
	T_CHECK(fl_work_pick(work, 6) == 3);
	fl_work_free(work);
	fl_config_release(&cfg);
}

int main(void)
{
	/* fibd is the server here, not what is tested: the whole registry. */
	unsetenv("FIBD_MODELS");
	T_RUN(test_parsers, 20);
	T_RUN(test_unanswered_rule, 10);
	T_RUN(test_usage, 30);
	T_RUN(test_fibd_json, 60);
	T_RUN(test_fibd_duration, 60);
	T_RUN(test_hist_merge, 60);
	T_RUN(test_no_reply, 60);
	T_RUN(test_asked_and_server_errors, 60);
	return t_done("test_fibload");
}
