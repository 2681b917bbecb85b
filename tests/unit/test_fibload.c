/*
 * test_fibload - the load generator, run as a subprocess against a real
 * fibd (started with tsrv) and against tiny fake servers in this process
 * that answer wrongly, never answer, or count what they are sent.
 * Nothing here asserts a speed.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"
#include "core/log.h"
#include "core/net.h"
#include "fibload/config.h"
#include "fibload/conn.h"

static char out[1 << 16], err[1 << 16];

/* Reads a whole temporary file into buf (NUL-terminated), removes it. */
static void slurp(int fd, const char *path, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
}

/* Runs BUILD/fibload ARGS...; stdout in out, stderr in err (through
 * temporary files, so neither can fill up). Returns the exit status, or -1
 * when it died by a signal. */
static int fibload(const char *const *args)
{
	char path[256], opath[] = "/tmp/fibload-out-XXXXXX",
			epath[] = "/tmp/fibload-err-XXXXXX";
	const char *argv[40];
	int ofd = mkstemp(opath), efd = mkstemp(epath), status, n = 0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/fibload", tsrv_build_dir());
	argv[n++] = path;
	while (*args && n < 39)
		argv[n++] = *args++;
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(ofd, STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	slurp(ofd, opath, out, sizeof(out));
	slurp(efd, epath, err, sizeof(err));
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "--- stdout:\n%s--- stderr:\n%s", out, err);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- a minimal JSON check: syntax, then keys by path ---------------- */

static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++)
		if (*p == '\\' && !*++p)
			return NULL;
	return *p == '"' ? p + 1 : NULL;
}

static const char *json_list(const char *p, char close, int keyed)
{
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keyed) {
			p = json_string(json_ws(p));
			if (!p || *(p = json_ws(p)) != ':')
				return NULL;
			p++;
		}
		p = json_value(p);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p)
{
	char *end;

	p = json_ws(p);
	if (*p == '{')
		return json_list(p, '}', 1);
	if (*p == '[')
		return json_list(p, ']', 0);
	if (*p == '"')
		return json_string(p);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	strtod(p, &end);
	return end == p ? NULL : end;
}

static int json_valid(const char *s)
{
	const char *end = json_value(s);

	return end && *json_ws(end) == '\0';
}

/* The text after "key": inside the object "obj" (NULL: anywhere). */
static const char *json_find(const char *s, const char *obj, const char *key)
{
	char pat[64];

	if (obj) {
		snprintf(pat, sizeof(pat), "\"%s\":{", obj);
		s = strstr(s, pat);
		if (!s)
			return NULL;
	}
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	s = strstr(s, pat);
	return s ? s + strlen(pat) : NULL;
}

static double json_num(const char *s, const char *obj, const char *key)
{
	const char *v = json_find(s, obj, key);

	return v ? strtod(v, NULL) : -1;
}

/* --- fake servers ----------------------------------------------------- */

enum fake_mode {
	FAKE_ONE,     /* answers "1\n" to every line: right for --n 1 */
	FAKE_WRONG,   /* answers "2\n": a well-formed wrong answer */
	FAKE_GARBAGE, /* answers "hello\n": not a fib/1 reply at all */
	FAKE_SILENT,  /* reads and never answers */
	FAKE_PONG,    /* answers "+PONG\r\n", as Redis does to PING */
	FAKE_CLOSE,   /* answers one line, then hangs up */
	FAKE_DRAIN,   /* answers fib(N) to each line "N"; but on its first
		       * connection only the first line, then it hangs up */
	FAKE_DROP,    /* reads, and hangs up without answering */
};

#define FAKE_MAX_FDS 64

struct fake {
	enum fake_mode mode;
	int lfd;
	uint16_t port;
	char port_str[8];
	atomic_ulong lines; /* request lines received */
	atomic_ulong conns; /* connections accepted */
	int drained;	    /* FAKE_DRAIN: its first connection is closed */
	pthread_t tid;
};

static const char *fake_reply(enum fake_mode mode)
{
	static const char *const replies[] = {
	    [FAKE_ONE] = "1\n",		[FAKE_WRONG] = "2\n",
	    [FAKE_GARBAGE] = "hello\n", [FAKE_SILENT] = "",
	    [FAKE_PONG] = "+PONG\r\n",	[FAKE_CLOSE] = "1\n",
	    [FAKE_DRAIN] = "",		[FAKE_DROP] = "",
	};
	return replies[mode];
}

/* FAKE_DRAIN: the true fib(N) for each whole line "N" in in[0..n), but
 * on the first connection only for the first line, after which the
 * connection is closed (as a server that stops does, its last requests
 * read or not). Returns the bytes of reply; *hangup is set to close. */
static size_t fake_drain(struct fake *f, const char *in, ssize_t n, char *reply,
			 int *hangup)
{
	const char *p = in, *nl;
	size_t len = 0;

	while ((nl = memchr(p, '\n', (size_t)(in + n - p)))) {
		uint64_t a = 0, b = 1, t;

		for (unsigned long k = strtoul(p, NULL, 10); k; k--) {
			t = a + b;
			a = b;
			b = t;
		}
		len += (size_t)sprintf(reply + len, "%llu\n",
				       (unsigned long long)a);
		p = nl + 1;
		if (!f->drained) {
			f->drained = *hangup = 1;
			break;
		}
	}
	return len;
}

/* Reads what fd sent, counts the lines, answers each. 0 once it closed. */
static int fake_serve(struct fake *f, int fd)
{
	static char in[65536], reply[65536 * 24];
	const char *r = fake_reply(f->mode);
	size_t rl = strlen(r), len = 0;
	ssize_t n = read(fd, in, sizeof(in));
	unsigned long lines = 0;
	int hangup = f->mode == FAKE_DROP;

	if (n <= 0)
		return 0;
	for (ssize_t i = 0; i < n; i++)
		lines += in[i] == '\n';
	atomic_fetch_add(&f->lines, lines);
	if (f->mode == FAKE_DRAIN) {
		len = fake_drain(f, in, n, reply, &hangup);
		return !(net_write_all(fd, reply, len) || hangup);
	}
	if (hangup)
		return 0;
	for (unsigned long i = 0; i < lines; i++, len += rl)
		memcpy(reply + len, r, rl);
	if (len && net_write_all(fd, reply, len))
		return 0;
	return !(f->mode == FAKE_CLOSE && lines);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p[FAKE_MAX_FDS] = {{.fd = f->lfd, .events = POLLIN}};
	int n = 1, fd;

	for (;;) {
		if (poll(p, (nfds_t)n, -1) < 0)
			continue;
		if (p[0].revents && (fd = accept(f->lfd, NULL, NULL)) >= 0) {
			atomic_fetch_add(&f->conns, 1);
			if (n < FAKE_MAX_FDS)
				p[n++] = (struct pollfd){fd, POLLIN, 0};
			else
				close(fd);
		}
		for (int i = 1; i < n; i++) {
			if (!p[i].revents || fake_serve(f, p[i].fd))
				continue;
			close(p[i].fd);
			p[i--] = p[--n];
		}
	}
	return NULL;
}

/* Starts a fake server thread on a free port (it lives until the test
 * child exits). */
static struct fake *fake_start(enum fake_mode mode)
{
	static struct fake fakes[4];
	static int nfakes;
	struct fake *f = &fakes[nfakes++];

	f->mode = mode;
	f->lfd = net_listen("127.0.0.1", 0, 0, 128);
	T_CHECK(f->lfd >= 0);
	f->port = (uint16_t)net_local_port(f->lfd);
	snprintf(f->port_str, sizeof(f->port_str), "%u", (unsigned)f->port);
	pthread_create(&f->tid, NULL, fake_main, f);
	return f;
}

/* --- the cases -------------------------------------------------------- */

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

	T_CHECK(json_valid(json), "not JSON: %s", json);
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
		T_CHECK(json_find(json, NULL, top[i]), "no key %s", top[i]);
	for (size_t i = 0; i < sizeof(lat) / sizeof(lat[0]); i++)
		T_CHECK(json_find(json, "latency_us", lat[i]), "no %s", lat[i]);
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		T_CHECK(json_find(json, "errors", errs[i]), "no %s", errs[i]);
	T_CHECK(json_find(json, "config", "conns"));
	T_CHECK(json_find(json, "config", "pipeline"));
}

static void test_fibd_json(void)
{
	struct tsrv s;
	char port[8];

	if (tsrv_start(&s, "thread", NULL, 1)) {
		T_CHECK(0, "fibd did not start");
		return;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)s.ports[0]);
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "4", "-t", "2", "-r", "2000", "-P", "3",
		    "--mix", "1:3,20:1,45:0,60:1", "--json", NULL}) == 2,
		"a weight of 0 is a usage error");
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "4", "-t", "2", "-r", "2000", "-P", "3",
		    "--mix", "1:3,20:1,25:1", "--json", NULL}) == 0,
		"%s", err);
	check_json_keys(out);
	T_CHECK(json_num(out, NULL, "requests") == 2000, "%s", out);
	T_CHECK(json_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(json_num(out, "config", "threads") == 2);
	T_CHECK(json_num(out, "config", "connected") == 4);
	tsrv_stop(&s, 10);
}

static void test_fibd_duration(void)
{
	struct tsrv s;
	char port[8];

	if (tsrv_start(&s, "thread", NULL, 1)) {
		T_CHECK(0, "fibd did not start");
		return;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)s.ports[0]);
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
	T_CHECK(json_find(out, "latency_uncorrected_us", "p99"), "%s", out);
	T_CHECK(json_num(out, NULL, "requests") > 0);
	tsrv_stop(&s, 10);
}

/* -r is exact: the server sees exactly N requests, closed or open loop. */
static void test_exact_n(void)
{
	struct fake *f = fake_start(FAKE_ONE), *g = fake_start(FAKE_ONE);

	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-c", "3",
					      "-t", "2", "-P", "4", "-r",
					      "1234", "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(atomic_load(&f->lines) == 1234, "server saw %lu",
		atomic_load(&f->lines));
	T_CHECK(json_num(out, NULL, "requests") == 1234, "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", g->port_str, "-c", "2",
					      "--rate", "5000", "-P", "2", "-r",
					      "301", "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(atomic_load(&g->lines) == 301, "server saw %lu",
		atomic_load(&g->lines));
	T_CHECK(json_num(out, NULL, "requests") == 301, "%s", out);
}

static void test_wrong_answer(void)
{
	struct fake *f = fake_start(FAKE_WRONG), *g = fake_start(FAKE_GARBAGE);

	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-r", "50",
					      "--json", NULL}) == 1);
	T_CHECK(json_num(out, "errors", "wrong") == 50, "%s", out);
	T_CHECK(json_num(out, "errors", "total") == 50, "%s", out);
	T_CHECK(json_num(out, NULL, "requests") == 0, "%s", out);
	/* A reply that is not a reply: a protocol error, then reconnect. */
	T_CHECK(fibload((const char *const[]){"-p", g->port_str, "-r", "20",
					      "--json", NULL}) == 1);
	T_CHECK(json_num(out, "errors", "protocol") >= 1, "%s", out);
	T_CHECK(json_num(out, NULL, "requests") == 0, "%s", out);
}

static void test_timeout(void)
{
	struct fake *f = fake_start(FAKE_SILENT);

	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-d", "1",
					      "--timeout", "200", "-c", "2",
					      "--json", NULL}) == 1);
	T_CHECK(json_num(out, "errors", "timeout") >= 2, "%s", out);
	T_CHECK(json_num(out, NULL, "requests") == 0, "%s", out);
	/* -r with a server that never answers still ends. */
	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-r", "5",
					      "--timeout", "100", NULL}) == 1);
}

static void test_hangup(void)
{
	struct fake *f = fake_start(FAKE_CLOSE);

	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-d", "0.3",
					      "--json", NULL}) == 1);
	T_CHECK(json_num(out, "errors", "read") >= 1, "%s", out);
	T_CHECK(json_num(out, NULL, "requests") >= 1, "%s", out);
}

static void write_temp(char *path, const char *text);

/* A server that stops: it answers the first of two pipelined requests and
 * closes the connection, the second never read. */
static void test_resend(void)
{
	struct fake *f = fake_start(FAKE_DRAIN), *g = fake_start(FAKE_DRAIN);
	struct fake *h = fake_start(FAKE_DROP), *c = fake_start(FAKE_CLOSE);
	char hist[64];

	/* without --resend: the unanswered request is a read error */
	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-P", "2",
					      "-r", "4", "--n", "30", "--json",
					      NULL}) == 1,
		"%s%s", out, err);
	T_CHECK(json_num(out, "errors", "read") == 1, "%s", out);
	T_CHECK(json_num(out, NULL, "resent") == 0, "%s", out);
	T_CHECK(json_num(out, NULL, "requests") == 3, "%s", out);

	/* with it: sent again on a new connection and answered (832040,
	 * checked by fibload as every reply is) */
	write_temp(hist, "");
	T_CHECK(fibload((const char *const[]){
		    "-p", g->port_str, "-P", "2", "-r", "4", "--n", "30",
		    "--json", "--resend", "--hist-out", hist, NULL}) == 0,
		"%s%s", out, err);
	T_CHECK(json_num(out, NULL, "resent") == 1, "%s", out);
	T_CHECK(json_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(json_num(out, NULL, "requests") == 4, "%s", out);
	T_CHECK(strstr(out, "\"resend\":true"), "%s", out);
	T_CHECK(atomic_load(&g->lines) == 5, "server saw %lu",
		atomic_load(&g->lines));
	T_CHECK(atomic_load(&g->conns) == 2, "%lu connections",
		atomic_load(&g->conns));
	T_CHECK(fibload((const char *const[]){"merge", "--json", hist, hist,
					      NULL}) == 0,
		"%s%s", out, err);
	T_CHECK(json_num(out, NULL, "resent") == 2, "%s", out);
	unlink(hist);
	T_CHECK(fibload((const char *const[]){"-p", g->port_str, "-r", "2",
					      "--n", "30", "--resend", NULL}) ==
		    0,
		"%s%s", out, err);
	T_CHECK(strstr(out, "\nresent: 0\n") && strstr(out, "errors: 0"), "%s",
		out);

	/* a server that closes each connection after one reply: fibload
	 * may send the next request before it sees the close (the server
	 * never reads it) and sends it again: no error, and the server read
	 * each request once */
	T_CHECK(fibload((const char *const[]){"-p", c->port_str, "-r", "20",
					      "--resend", "--json", NULL}) == 0,
		"%s%s", out, err);
	T_CHECK(json_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(json_num(out, NULL, "requests") == 20, "%s", out);
	T_CHECK(atomic_load(&c->lines) == 20, "server saw %lu: %s",
		atomic_load(&c->lines), out);

	/* a resent request that is not answered either is an error */
	T_CHECK(fibload((const char *const[]){"-p", h->port_str, "-r", "1",
					      "--resend", "--json", NULL}) == 1,
		"%s%s", out, err);
	T_CHECK(json_num(out, NULL, "resent") == 1, "%s", out);
	T_CHECK(json_num(out, "errors", "read") == 1, "%s", out);
	T_CHECK(json_num(out, "errors", "total") == 1, "%s", out);
	T_CHECK(atomic_load(&h->lines) == 2, "server saw %lu",
		atomic_load(&h->lines));
}

static void test_no_server(void)
{
	int fd = net_listen("127.0.0.1", 0, 0, 1);
	char port[8];

	snprintf(port, sizeof(port), "%d", net_local_port(fd));
	close(fd); /* nothing listens there now */
	T_CHECK(fibload((const char *const[]){"-p", port, "-d", "1", "-c", "3",
					      NULL}) == 1);
	T_CHECK(strstr(err, "cannot connect to 127.0.0.1:"), "%s", err);
	T_CHECK(out[0] == '\0', "%s", out);
}

static void test_request_mode(void)
{
	struct fake *f = fake_start(FAKE_PONG), *g = fake_start(FAKE_ONE);

	T_CHECK(fibload((const char *const[]){
		    "-p", f->port_str, "--request", "PING\\r\\n", "--expect",
		    "+PONG", "-r", "100", "-P", "3", "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(json_num(out, NULL, "requests") == 100, "%s", out);
	T_CHECK(atomic_load(&f->lines) == 100);
	T_CHECK(strstr(out, "\"request\":\"PING\\r\\n\""), "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", g->port_str, "--request",
					      "PING\\r\\n", "--expect", "+PONG",
					      "-r", "10", NULL}) == 1);
}

/* The text of out's "key":{...} object, copied into buf. */
static void json_object(const char *json, const char *key, char *buf,
			size_t cap)
{
	const char *v = json_find(json, NULL, key), *end;

	buf[0] = '\0';
	end = v ? strchr(v, '}') : NULL;
	if (end && (size_t)(end - v) < cap) {
		memcpy(buf, v, (size_t)(end - v));
		buf[end - v] = '\0';
	}
}

/* Writes text to a new temporary file; its name goes into path. */
static void write_temp(char *path, const char *text)
{
	int fd;

	strcpy(path, "/tmp/fibload-hist-XXXXXX");
	fd = mkstemp(path);
	T_CHECK(fd >= 0 &&
		write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
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
	if (tsrv_start(&s, "thread", NULL, 1)) {
		T_CHECK(0, "fibd did not start");
		return;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)s.ports[0]);
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "3", "-r", "3000", "--mix", "1:3,20:1",
		    "--json", "--hist-out", a, NULL}) == 0,
		"%s", err);
	json_object(out, "latency_us", run_lat, sizeof(run_lat));
	rps_a = json_num(out, NULL, "rps");
	T_CHECK(fibload((const char *const[]){"merge", "--json", a, NULL}) == 0,
		"%s", err);
	check_json_keys(out);
	json_object(out, "latency_us", lat, sizeof(lat));
	T_CHECK(run_lat[0] && !strcmp(lat, run_lat), "run %s, merge %s",
		run_lat, lat);
	T_CHECK(json_num(out, NULL, "rps") == rps_a, "%s", out);
	T_CHECK(json_num(out, NULL, "merged") == 1, "%s", out);
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
	T_CHECK(json_num(out, NULL, "requests") == 5000, "%s", out);
	T_CHECK(json_num(out, NULL, "merged") == 2, "%s", out);
	T_CHECK(json_num(out, "config", "conns") == 5, "%s", out);
	T_CHECK(json_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(json_num(out, NULL, "rps") >= rps_a + rps_b - 1.5 &&
		    json_num(out, NULL, "rps") <= rps_a + rps_b + 1.5,
		"rps %g + %g: %s", rps_a, rps_b, out);
	/* Not the same load: another pipeline depth. */
	T_CHECK(fibload((const char *const[]){
		    "-p", port, "-c", "1", "-r", "100", "-P", "2", "--mix",
		    "1:3,20:1", "--hist-out", c, NULL}) == 0,
		"%s", err);
	T_CHECK(fibload((const char *const[]){"merge", a, c, NULL}) == 2);
	T_CHECK(strstr(err, "does not match") && strstr(err, "pipeline"), "%s",
		err);
	write_temp(bad, "fibload-hist 1\nhost x\n");
	T_CHECK(fibload((const char *const[]){"merge", a, bad, NULL}) == 2);
	T_CHECK(strstr(err, bad) && strstr(err, "no 'port' line"), "%s", err);
	unlink(bad);
	write_temp(bad, "fibload-hist 99\n");
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
 * --allow-no-reply: fibd -m single serves one connection at a time. */
static void test_no_reply(void)
{
	struct tsrv s;
	char port[8];

	if (tsrv_start(&s, "single", NULL, 1)) {
		T_CHECK(0, "fibd did not start");
		return;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)s.ports[0]);
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "2", "-d",
					      "0.5", NULL}) == 1,
		"%s", out);
	T_CHECK(strstr(out, "1 of 2 connections got no reply"), "%s", out);
	T_CHECK(strstr(err, "--allow-no-reply"), "%s", err);
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "2", "-d",
					      "0.5", "--json", NULL}) == 1);
	T_CHECK(json_num(out, NULL, "no_reply") == 1, "%s", out);
	T_CHECK(json_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", port, "-c", "2", "-d",
					      "0.5", "--allow-no-reply",
					      "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(json_num(out, NULL, "no_reply") == 1, "%s", out);
	/* One connection is served: nothing to report. */
	T_CHECK(fibload((const char *const[]){"-p", port, "-d", "0.3", "--json",
					      NULL}) == 0,
		"%s", err);
	T_CHECK(json_num(out, NULL, "no_reply") == 0, "%s", out);
	tsrv_stop(&s, 10);
}

/* The report names what was asked for and the server's ERR texts. */
static void test_asked_and_server_errors(void)
{
	struct tsrv s;
	char port[8];

	if (tsrv_start(&s, "thread", NULL, 1)) {
		T_CHECK(0, "fibd did not start");
		return;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)s.ports[0]);
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
	T_CHECK(json_num(out, "errors", "wrong") == 20, "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", port, "--mix", "1:3,20:1",
					      "-r", "40", NULL}) == 0,
		"%s", err);
	T_CHECK(strstr(out, "asked for: mix of fib(1) 75%, fib(20) 25%"), "%s",
		out);
	T_CHECK(!strstr(out, "server errors"), "%s", out);
	tsrv_stop(&s, 10);
}

/* -p with several ports: connections go round robin, counted per port. */
static void test_ports(void)
{
	struct fake *f = fake_start(FAKE_ONE), *g = fake_start(FAKE_ONE);
	char ports[32];

	snprintf(ports, sizeof(ports), "%s,%s", f->port_str, g->port_str);
	T_CHECK(fibload((const char *const[]){"-p", ports, "-c", "5", "-r",
					      "500", "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(atomic_load(&f->lines) > 0 && atomic_load(&g->lines) > 0,
		"%lu %lu", atomic_load(&f->lines), atomic_load(&g->lines));
	T_CHECK(atomic_load(&f->lines) + atomic_load(&g->lines) == 500);
	T_CHECK(strstr(out, "\"ports\":[{\"port\":"), "%s", out);
	{
		char want[128];

		snprintf(want, sizeof(want),
			 "{\"port\":%s,\"conns\":3,\"no_reply\":0},"
			 "{\"port\":%s,\"conns\":2,\"no_reply\":0}",
			 f->port_str, g->port_str);
		T_CHECK(strstr(out, want), "want %s: %s", want, out);
	}
	T_CHECK(fibload((const char *const[]){"-p", ports, "-c", "4", "-r",
					      "100", NULL}) == 0);
	T_CHECK(strstr(out, ": 2 conns, ") && strstr(out, "ports: "), "%s",
		out);
}

/* Short flags mean what fibd's mean; the old ones are refused, not read
 * as something else. */
static void test_short_flags(void)
{
	struct fake *f = fake_start(FAKE_ONE);

	T_CHECK(fibload((const char *const[]){"-n", "30", NULL}) == 2);
	T_CHECK(strstr(err, "--n N") && strstr(err, "-r/--requests"), "%s",
		err);
	T_CHECK(fibload((const char *const[]){"-w", "1", NULL}) == 2);
	T_CHECK(strstr(err, "--warmup"), "%s", err);
	T_CHECK(fibload((const char *const[]){"-h", "127.0.0.1", NULL}) == 2);
	T_CHECK(strstr(err, "-H/--host"), "%s", err);
	T_CHECK(fibload((const char *const[]){"-h", NULL}) == 0);
	T_CHECK(strstr(out, "usage: fibload"), "%s", out);
	T_CHECK(fibload((const char *const[]){"-V", NULL}) == 0);
	T_CHECK(strncmp(out, "fibload ", 8) == 0, "%s", out);
	T_CHECK(fibload((const char *const[]){"-H", "127.0.0.1", "-p",
					      f->port_str, "-r", "10",
					      "--warmup", "0.1", NULL}) == 0,
		"%s", err);
	T_CHECK(strstr(out, "requests: 10 in"), "%s", out);
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
	T_RUN(test_parsers, 20);
	T_RUN(test_unanswered_rule, 10);
	T_RUN(test_usage, 30);
	T_RUN(test_fibd_json, 60);
	T_RUN(test_fibd_duration, 60);
	T_RUN(test_exact_n, 60);
	T_RUN(test_wrong_answer, 60);
	T_RUN(test_timeout, 60);
	T_RUN(test_hangup, 60);
	T_RUN(test_resend, 60);
	T_RUN(test_no_server, 60);
	T_RUN(test_request_mode, 60);
	T_RUN(test_hist_merge, 60);
	T_RUN(test_no_reply, 60);
	T_RUN(test_asked_and_server_errors, 60);
	T_RUN(test_ports, 60);
	T_RUN(test_short_flags, 30);
	return t_done("test_fibload");
}
