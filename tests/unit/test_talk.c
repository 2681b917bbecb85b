/*
 * The talk's own clients (contrib/talk/perf1.py and perf2.py) against every
 * model with --framing read: each must exit 0, having checked every reply,
 * and print what the talk's clients print. And the difference the framing
 * makes: under the default line framing the same client, sending b'1' with
 * no newline, is answered only when it closes its side.
 *
 * The scripts run as "python3 contrib/talk/...", from the source tree, as
 * the rest of the suite runs from it ($FIBD_BUILD, default build).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

#define MAX_MODELS 32
#define TALK_DIR   "contrib/talk"

static struct tsrv_model models[MAX_MODELS];
static const struct tsrv_model *cur; /* the model under test */

static char out[1 << 16];

static int start(struct tsrv *s, const char *const *args)
{
	int err = tsrv_start(s, cur->name, args, 1);

	T_CHECK(err == 0, "%s did not start", cur->name);
	return err;
}

static int start_read(struct tsrv *s)
{
	static const char *const args[] = {"--framing", "read", NULL};

	return start(s, args);
}

static void stop_ok(struct tsrv *s)
{
	int st = tsrv_stop(s, 30);

	T_CHECK(st == 0, "%s: exit status %d after SIGTERM", cur->name, st);
}

/*
 * Runs "python3 contrib/talk/SCRIPT --port P ARGS" and keeps its stdout (and
 * its stderr too when merge) in out. Returns its exit status, or -1.
 */
static int run_client(const struct tsrv *s, const char *script,
		      const char *args, int merge)
{
	char cmd[512];
	size_t len = 0, n;
	int st;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "python3 %s/%s --port %u %s%s", TALK_DIR,
		 script, s->ports[0], args, merge ? " 2>&1" : "");
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (len + 1 < sizeof(out) &&
	       (n = fread(out + len, 1, sizeof(out) - 1 - len, p)) > 0)
		len += n;
	out[len] = '\0';
	st = pclose(p);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Splits out into lines (in place); returns how many, at most max. */
static int split_lines(char **lines, int max)
{
	char *save = NULL, *l;
	int n = 0;

	for (l = strtok_r(out, "\n", &save); l && n < max;
	     l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	return n;
}

/* "0.000123" or "5.2e-05": the seconds perf1 prints, as the talk's does. */
static int is_seconds(const char *l)
{
	char *end;
	double v = strtod(l, &end);

	return end != l && *end == '\0' && v >= 0;
}

/* "N reqs/sec": what perf2's monitor prints each second. */
static int is_rate(const char *l)
{
	unsigned v;
	int used = -1;

	return sscanf(l, "%u reqs/sec%n", &v, &used) == 1 &&
	       used == (int)strlen(l);
}

/* The last line of a bounded perf2: "N requests in S s" (N == want, if set). */
static int is_total(const char *l, unsigned want)
{
	unsigned v;
	double secs;
	int used = -1;

	return sscanf(l, "%u requests in %lf s%n", &v, &secs, &used) == 2 &&
	       used == (int)strlen(l) && (!want || v == want);
}

static void case_perf1(void)
{
	char *lines[16];
	struct tsrv s;
	int st, n, ok = 1;

	if (start_read(&s))
		return;
	st = run_client(&s, "perf1.py", "--count 5 --n 20", 0);
	T_CHECK(st == 0, "%s: perf1.py exit status %d", cur->name, st);
	n = split_lines(lines, 16);
	T_CHECK(n == 5, "%s: perf1.py printed %d lines, want 5", cur->name, n);
	for (int i = 0; i < n; i++)
		ok &= is_seconds(lines[i]);
	T_CHECK(ok, "%s: perf1.py printed something but seconds", cur->name);
	stop_ok(&s);
}

/*
 * perf2 with args: the monitor's "N reqs/sec" lines (at least min_rates),
 * then the total, which is count requests when count is not 0.
 */
static void check_perf2(const char *args, unsigned count, int min_rates)
{
	char *lines[64];
	struct tsrv s;
	int st, n, ok = 1;

	if (start_read(&s))
		return;
	st = run_client(&s, "perf2.py", args, 0);
	T_CHECK(st == 0, "%s: perf2.py exit status %d", cur->name, st);
	n = split_lines(lines, 64);
	T_CHECK(n >= 1 + min_rates, "%s: perf2.py printed %d lines", cur->name,
		n);
	for (int i = 0; i + 1 < n; i++)
		ok &= is_rate(lines[i]);
	T_CHECK(ok, "%s: perf2.py printed a line but 'N reqs/sec'", cur->name);
	if (n > 0)
		T_CHECK(is_total(lines[n - 1], count),
			"%s: perf2.py ended with '%s'", cur->name,
			lines[n - 1]);
	stop_ok(&s);
}

static void case_perf2(void)
{
	check_perf2("--count 300", 300, 0);
}

/*
 * Run for 1.5 s, the monitor thread reports at least once: it prints at
 * 1 s, taking the GIL while the client waits in recv().
 */
static void case_perf2_monitor(void)
{
	check_perf2("--seconds 1.5", 0, 1);
}

/* A reply that is not fib(n) (here an ERR) fails the client. */
static void case_wrong_reply(void)
{
	static const char *const args[] = {"--framing", "read", "--max-n", "10",
					   NULL};
	struct tsrv s;
	int st;

	if (start(&s, args))
		return;
	st = run_client(&s, "perf1.py", "--count 1 --n 20", 1);
	T_CHECK(st == 1, "%s: perf1.py exit status %d on a wrong reply",
		cur->name, st);
	T_CHECK(strstr(out, "ERR n too large") != NULL,
		"%s: perf1.py said '%s'", cur->name, out);
	stop_ok(&s);
}

/*
 * Line framing (the default): b'1' with no newline is not a request yet.
 * The talk's client waits in vain, and perf2 says so; a client that closes
 * its side gets the reply then, as `printf 1 | nc -N` does.
 */
static void case_line_framing(void)
{
	struct tsrv s;
	int st, fd;

	if (start(&s, NULL))
		return;
	st = run_client(&s, "perf2.py", "--count 1 --timeout 0.5", 1);
	T_CHECK(st == 1, "%s: perf2.py exit status %d under line framing",
		cur->name, st);
	T_CHECK(strstr(out, "no reply") != NULL, "%s: perf2.py said '%s'",
		cur->name, out);
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, "1") == 0);
	usleep(200000);
	T_CHECK(t_nothing_pending(fd), "%s: answered '1' with no newline",
		cur->name);
	shutdown(fd, SHUT_WR);
	T_CHECK(t_read_lines(fd, out, sizeof(out), 1) == 1 &&
		    strcmp(out, "1\n") == 0,
		"%s: after EOF got '%s'", cur->name, out);
	T_CHECK(t_wait_eof(fd), "%s: not closed after the reply", cur->name);
	close(fd);
	stop_ok(&s);
}

#define CASE(fn, secs) TSRV_CASE(cur, fn, secs)

int main(void)
{
	int n = tsrv_list_models(models, MAX_MODELS);

	T_CHECK(n > 0, "no models listed");
	T_CHECK(system("python3 -c pass") == 0, "python3 is missing: "
						"scripts/deps installs it");
	for (int i = 0; i < n; i++) {
		cur = &models[i];
		fprintf(stderr, "model %s (%s)\n", cur->name, cur->concurrency);
		CASE(case_perf1, 60);
		CASE(case_perf2, 60);
		CASE(case_wrong_reply, 60);
		CASE(case_line_framing, 60);
	}
	cur = &models[0];
	if (n > 0)
		CASE(case_perf2_monitor, 60);
	return t_done("test_talk");
}
