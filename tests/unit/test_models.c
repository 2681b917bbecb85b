/*
 * The behaviour suite: one set of cases, run against every model that
 * `fibd --list-models` reports (or those in $FIBD_MODELS, comma-separated).
 * A model added to the registry is tested here without new test code.
 * Each case starts its own server and runs in a child with a timeout.
 *
 * The cases that make sense for it run a second time with --framing read
 * (named MODEL/read/CASE). A read-framing client sends one request, without
 * its '\n', and waits for the reply before the next: two requests sent at
 * once would be one read, hence one request.
 *
 * Then most of the cases run again with --engine python (when the build
 * has it, and $FIBD_ENGINES, default "c,python", lists it): the same
 * replies, errors and concurrency class with CPython computing under its
 * GIL. Only the sizes change: naive fib in CPython is ~50x slower, so the
 * replies go to 25 and the slow request is fib(35), the python default
 * --max-n, instead of fib(45).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/pyengine.h"
#include "../lib/tsrv.h"
#include "../t.h"

#define MAX_MODELS 32

static struct tsrv_model models[MAX_MODELS];
static int nmodels;
static const struct tsrv_model *cur; /* the model under test */
static int read_framing;	     /* cases run with --framing read */
static bool python;		     /* ... with --engine python */

static char buf[1 << 20];

/*
 * Starts the model under test with extra args (and the framing and engine
 * under test);
 * fails the case if it can't.
 */
static int start(struct tsrv *s, const char *const *args, int nports)
{
	const char *all[20];
	int n = 0, err;

	if (python) {
		all[n++] = "--engine";
		all[n++] = "python";
	}
	for (int i = 0; args && args[i] && n < 15; i++)
		all[n++] = args[i];
	if (read_framing) {
		all[n++] = "--framing";
		all[n++] = "read";
	}
	all[n] = NULL;
	err = tsrv_start(s, cur->name, n ? all : NULL, nports);

	T_CHECK(err == 0, "%s did not start", cur->name);
	return err;
}

static int stop_ok(struct tsrv *s)
{
	int st = tsrv_stop(s, 30);

	T_CHECK(st == 0, "%s: exit status %d after SIGTERM", cur->name, st);
	return st;
}

/* Sends one request line; in read framing without its '\n', as the talk. */
static int send_req(int fd, const char *req)
{
	size_t len = strlen(req);

	if (read_framing && len > 1 && req[len - 1] == '\n')
		len--;
	return t_send_bytes(fd, req, len);
}

static void expect_line(int fd, const char *req, const char *want)
{
	T_CHECK(send_req(fd, req) == 0 &&
		    t_read_lines(fd, buf, sizeof(buf), 1) == 1,
		"%s: no reply to %s", cur->name, req);
	T_CHECK(strcmp(buf, want) == 0, "%s: asked %s got '%s' want '%s'",
		cur->name, req, buf, want);
}

static void case_replies(void)
{
	struct tsrv s;
	char want[64], req[32];
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	for (unsigned n = 0; n <= (python ? 25u : 30u); n++) {
		snprintf(req, sizeof(req), "%u\n", n);
		t_expect(n, want, sizeof(want));
		expect_line(fd, req, want);
	}
	close(fd);
	stop_ok(&s);
}

static void case_fast_big(void)
{
	static const char *const args[] = {"--algo", "fast", NULL};
	static char want[32768];
	struct tsrv s;
	int fd;

	if (start(&s, args, 1))
		return;
	fd = tsrv_connect(&s, 0);
	t_expect(100000, want, sizeof(want));
	T_CHECK(t_send(fd, "100000\n93\n100001\n") == 0);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 3) == 3, "%s", cur->name);
	T_CHECK(strncmp(buf, want, strlen(want)) == 0,
		"%s: fib(100000) differs", cur->name);
	T_CHECK(
	    strcmp(buf + strlen(want),
		   "12200160415121876738\nERR n too large (max 100000)\n") == 0,
	    "%s: after the big reply: %.80s", cur->name, buf + strlen(want));
	close(fd);
	stop_ok(&s);
}

static void case_pipeline(void)
{
	static char req[1024], want[4096];
	struct tsrv s;
	size_t rl = 0, wl = 0;
	int fd;

	for (unsigned i = 0; i < 100; i++) {
		rl += (size_t)sprintf(req + rl, "%u\n", i % 31);
		t_expect(i % 31, want + wl, sizeof(want) - wl);
		wl += strlen(want + wl);
	}
	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, req) == 0);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 100) == 100, "%s",
		cur->name);
	T_CHECK(strcmp(buf, want) == 0, "%s: pipelined replies out of order",
		cur->name);
	close(fd);
	stop_ok(&s);
}

static void case_byte_by_byte(void)
{
	const char *req = " +25\r\n-4\n12\n";
	struct tsrv s;
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	for (const char *p = req; *p; p++) {
		T_CHECK(send(fd, p, 1, 0) == 1);
		usleep(1000);
	}
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 3) == 3);
	T_CHECK(strcmp(buf, "75025\nERR negative n\n144\n") == 0,
		"%s: got '%s'", cur->name, buf);
	close(fd);
	stop_ok(&s);
}

static void case_bad_input(void)
{
	unsigned max_n =
	    python ? FIB_PYTHON_NAIVE_DEFAULT_MAX_N : FIB_NAIVE_DEFAULT_MAX_N;
	char too_large[64], past_max[32];
	struct tsrv s;
	int fd;

	snprintf(too_large, sizeof(too_large), "ERR n too large (max %u)\n",
		 max_n);
	snprintf(past_max, sizeof(past_max), "%u\n", max_n + 1);
	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	expect_line(fd, "\n", "ERR empty request\n");
	expect_line(fd, "   \r\n", "ERR empty request\n");
	expect_line(fd, "abc\n", "ERR not a number\n");
	expect_line(fd, "1.5\n", "ERR not a number\n");
	expect_line(fd, "-3\n", "ERR negative n\n");
	expect_line(fd, past_max, too_large);
	expect_line(fd, "99999999999999999999999\n", too_large);
	T_CHECK(send(fd, "\0\x01\xff\n", 4, 0) == 4);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 1) == 1 &&
		strcmp(buf, "ERR not a number\n") == 0);
	expect_line(fd, "20\r\n", "6765\n");
	close(fd);
	stop_ok(&s);
}

static void case_line_too_long(void)
{
	static const char *const args[] = {"--max-line", "64", NULL};
	static char req[200];
	struct tsrv s;
	int fd, other;

	if (start(&s, args, 1))
		return;
	fd = tsrv_connect(&s, 0);
	expect_line(fd, "10\n", "55\n");
	memset(req, '1', 100);
	req[100] = '\n';
	T_CHECK(t_send(fd, req) == 0);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "ERR line too long (max 64 bytes)\n") == 0,
		"%s: got '%s'", cur->name, buf);
	T_CHECK(t_wait_eof(fd), "%s: connection not closed", cur->name);
	close(fd);
	other = tsrv_connect(&s, 0);
	expect_line(other, "64\n", "ERR n too large (max 45)\n");
	close(other);
	stop_ok(&s);
}

static void case_half_close(void)
{
	struct tsrv s;
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, "27\n28\n29\n7") == 0);
	shutdown(fd, SHUT_WR);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 4) == 4, "%s: got '%s'",
		cur->name, buf);
	T_CHECK(strcmp(buf, "196418\n317811\n514229\n13\n") == 0,
		"%s: got '%s'", cur->name, buf);
	T_CHECK(t_wait_eof(fd), "%s: no close after half-close", cur->name);
	close(fd);
	stop_ok(&s);
}

static void case_reset(void)
{
	struct tsrv s;
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, "3") == 0);
	t_reset(fd);
	fd = tsrv_connect(&s, 0);
	/* Read framing: one request in flight, no pipelining. */
	T_CHECK(t_send(fd, read_framing ? "32" : "32\n33\n") == 0);
	t_reset(fd); /* vanishes with requests in flight */
	fd = tsrv_connect(&s, 0);
	expect_line(fd, "12\n", "144\n");
	close(fd);
	stop_ok(&s);
}

static void case_sigterm_idle(void)
{
	struct tsrv s;
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	expect_line(fd, "5\n", "5\n");
	stop_ok(&s); /* an idle client must not hold the server up */
	T_CHECK(t_wait_eof(fd), "%s: client not closed at stop", cur->name);
	close(fd);
}

static void case_sigterm_inflight(void)
{
	/* Read framing: one request in flight, no pipelining. */
	const char *req = read_framing ? "32" : "30\n31\n32\n2\n";
	const char *want =
	    read_framing ? "2178309\n" : "832040\n1346269\n2178309\n1\n";
	int nreq = read_framing ? 1 : 4;
	struct tsrv s;
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	expect_line(fd, "1\n", "1\n");
	T_CHECK(t_send(fd, req) == 0);
	usleep(
	    20000); /* let the server take them; the test does not rely on it */
	T_CHECK(tsrv_stop(&s, 30) == 0, "%s: bad exit at stop", cur->name);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), nreq) == nreq &&
		    strcmp(buf, want) == 0,
		"%s: replies lost at stop: '%s'", cur->name, buf);
	T_CHECK(t_wait_eof(fd), "%s: not closed after stop", cur->name);
	close(fd);
}

/* A stop sent the moment the server says it listens is not lost. */
static void case_sigterm_at_start(void)
{
	struct tsrv s;

	for (int i = 0; i < 5; i++) {
		if (start(&s, NULL, 1))
			return;
		if (stop_ok(&s))
			return;
	}
}

/*
 * Whether task tid of pid blocks both SIGTERM and SIGINT; -1 when its
 * status cannot be read (it has just exited). Its name goes to comm.
 */
static int task_blocks_stops(pid_t pid, const char *tid, char *comm,
			     size_t commlen)
{
	const unsigned long long stops =
	    1ULL << (SIGTERM - 1) | 1ULL << (SIGINT - 1);
	unsigned long long blk;
	char path[320], line[128];
	int found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	comm[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "SigBlk: %llx", &blk) == 1)
			found = (blk & stops) == stops;
		else if (strncmp(line, "Name:\t", 6) == 0)
			snprintf(comm, commlen, "%.*s",
				 (int)strcspn(line + 6, "\n"), line + 6);
	}
	fclose(f);
	return found;
}

/*
 * One thread takes SIGTERM and SIGINT, in sigwait(): fibd-stop
 * (STOP_THREAD_NAME, stop.h says why). Every other thread, main included,
 * blocks both, so the kernel cannot hand a stop to anyone else. many's
 * supervisor forks, so it stays single-threaded and takes them itself
 * (STOP_BY_HANDLER): no fibd-stop, and its one thread blocks neither.
 * Checked with a connection open and answered, so per-connection and
 * pool threads exist.
 */
static void case_stop_signals_one_thread(void)
{
	bool forks = cur->forks;
	char path[64], comm[32];
	struct dirent *e;
	struct tsrv s;
	int fd, others = 0, takers = 0;
	DIR *d;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	expect_line(fd, "25\n", "75025\n");
	snprintf(path, sizeof(path), "/proc/%d/task", (int)s.pid);
	d = opendir(path);
	T_CHECK(d != NULL, "cannot list %s", path);
	while (d && (e = readdir(d))) {
		int blocks;

		if (e->d_name[0] == '.')
			continue;
		blocks =
		    task_blocks_stops(s.pid, e->d_name, comm, sizeof(comm));
		if (strcmp(comm, "fibd-stop") == 0) {
			takers++;
			continue;
		}
		others++;
		T_CHECK(blocks == !forks, "%s: thread %s (%s) %s the stops",
			cur->name, e->d_name, comm,
			forks ? "blocks" : "does not block");
	}
	if (d)
		closedir(d);
	T_CHECK(takers == !forks, "%s: %d fibd-stop threads, want %d",
		cur->name, takers, !forks);
	T_CHECK(!forks || others == 1, "%s: %d threads, want 1", cur->name,
		others);
	fprintf(stderr, "%s: %d threads besides fibd-stop checked\n", cur->name,
		others);
	close(fd);
	stop_ok(&s);
}

/* single: the second client is answered only after the first leaves. */
static void conc_serial(void)
{
	struct tsrv s;
	int a, b;

	if (start(&s, NULL, 1))
		return;
	a = tsrv_connect(&s, 0);
	expect_line(a, "10\n", "55\n");
	b = tsrv_connect(&s, 0);
	T_CHECK(send_req(b, "11\n") == 0);
	expect_line(a, "12\n", "144\n");
	T_CHECK(t_nothing_pending(b), "%s served a second client", cur->name);
	close(a);
	T_CHECK(t_read_lines(b, buf, sizeof(buf), 1) == 1 &&
		strcmp(buf, "89\n") == 0);
	close(b);
	stop_ok(&s);
}

/*
 * Client b is answered while client a's slow request is still running.
 * Under the GIL too: the thread computing a's fib(35) must drop the GIL
 * within the switch interval (5 ms) once b's thread asks for it, and b's
 * fib(20) takes a millisecond or two of Python. So b is answered slowly
 * but long before a: the GIL serialises compute, not clients.
 *
 * Except between subinterpreters (python_serial: isolate): CPython 3.11 files
 * the waiter's drop request with the waiter's own interpreter, so a holder
 * computing in another interpreter never sees it and keeps the GIL until
 * its request is done. b is still answered, correctly, but after a: that
 * is CPython's behaviour, not the model's (docs/MODELS.md), so there only
 * the replies are checked.
 */
static void conc_overlap(const char *const *args, int nports, int port_b)
{
	bool starves = python && cur->python_serial;
	struct tsrv s;
	int a, b;

	if (start(&s, args, nports))
		return;
	a = tsrv_connect(&s, 0);
	expect_line(a, "1\n", "1\n");
	/* About 2 s of CPU (fib(45) in C, fib(35) in CPython): a wide margin
	 * on a loaded machine. */
	T_CHECK(send_req(a, python ? "35\n" : "45\n") == 0);
	usleep(50000);
	b = tsrv_connect(&s, port_b);
	expect_line(b, "20\n", "6765\n");
	T_CHECK(starves || t_nothing_pending(a),
		"%s: fib(%s) finished before a fast request got through",
		cur->name, python ? "35 in python" : "45");
	T_CHECK(t_read_lines(a, buf, sizeof(buf), 1) == 1 &&
		strcmp(buf, python ? "9227465\n" : "1134903170\n") == 0);
	close(a);
	close(b);
	stop_ok(&s);
}

/* Sharded: two clients on two shards, by --ports (which test_registry
 * checks every sharded model takes). */
static void case_concurrency(void)
{
	static const char *const per_process[] = {"--workers", "2", "--ports",
						  NULL};

	if (strcmp(cur->concurrency, "serial") == 0)
		conc_serial();
	else if (strcmp(cur->concurrency, "sharded") == 0)
		conc_overlap(per_process, 2, 1);
	else
		conc_overlap(NULL, 1, 0);
}

/* Read framing: sends exactly req[0..len) as one read, expects one reply. */
static void expect_read(int fd, const char *req, size_t len, const char *want)
{
	T_CHECK(t_send_bytes(fd, req, len) == 0 &&
		    t_read_lines(fd, buf, sizeof(buf), 1) == 1,
		"%s: no reply to a read of %zu bytes", cur->name, len);
	T_CHECK(strcmp(buf, want) == 0, "%s: read '%.*s' got '%s' want '%s'",
		cur->name, (int)len, req, buf, want);
}
#define EXPECT_READ(fd, lit, want) expect_read(fd, lit, sizeof(lit) - 1, want)

static void case_bad_input_read(void)
{
	struct tsrv s;
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	EXPECT_READ(fd, "\n", "ERR empty request\n");
	EXPECT_READ(fd, "   \r\n", "ERR empty request\n");
	EXPECT_READ(fd, " \t\v\f\r\n", "ERR empty request\n");
	EXPECT_READ(fd, "abc", "ERR not a number\n");
	EXPECT_READ(fd, "1.5", "ERR not a number\n");
	EXPECT_READ(fd, "1\n2",
		    "ERR not a number\n"); /* one read, one request */
	EXPECT_READ(fd, "-3", "ERR negative n\n");
	EXPECT_READ(fd, "46", "ERR n too large (max 45)\n");
	EXPECT_READ(fd, "99999999999999999999999",
		    "ERR n too large (max 45)\n");
	EXPECT_READ(fd, "\0\x01\xff", "ERR not a number\n");
	EXPECT_READ(fd, "\v\f +20\t\r\n", "6765\n"); /* int()'s whitespace */
	EXPECT_READ(fd, "20", "6765\n");
	close(fd);
	stop_ok(&s);
}

/* A burst longer than --max-line is cut at read boundaries, as recv(100). */
static void case_read_split(void)
{
	static const char *const args[] = {"--max-line", "16", NULL};
	struct tsrv s;
	int fd;

	if (start(&s, args, 1))
		return;
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, "00000000000000100000000000000002") == 0);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 2) == 2 &&
		    strcmp(buf, "55\n1\n") == 0,
		"%s: 32 bytes with --max-line 16 got '%s'", cur->name, buf);
	EXPECT_READ(fd, "7", "13\n");
	close(fd);
	stop_ok(&s);
}

static void case_fast_big_read(void)
{
	static const char *const args[] = {"--algo", "fast", NULL};
	static char want[32768];
	struct tsrv s;
	int fd;

	if (start(&s, args, 1))
		return;
	fd = tsrv_connect(&s, 0);
	t_expect(100000, want, sizeof(want));
	EXPECT_READ(fd, "100000", want);
	EXPECT_READ(fd, "93", "12200160415121876738\n");
	EXPECT_READ(fd, "100001", "ERR n too large (max 100000)\n");
	close(fd);
	stop_ok(&s);
}

static void case_half_close_read(void)
{
	struct tsrv s;
	int fd;

	if (start(&s, NULL, 1))
		return;
	fd = tsrv_connect(&s, 0);
	EXPECT_READ(fd, "27", "196418\n");
	T_CHECK(t_send(fd, "7") == 0);
	shutdown(fd, SHUT_WR);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "13\n") == 0,
		"%s: got '%s'", cur->name, buf);
	T_CHECK(t_wait_eof(fd), "%s: no close after half-close", cur->name);
	close(fd);
	stop_ok(&s);
}

/*
 * Read framing and a client that sends random bytes (NULs and newlines
 * included) and never reads: every buffer on the way fills, the server
 * stays bounded, others are served (serial models once the idle timeout
 * drops the flooder), and it stops cleanly.
 */
static void case_flood_read(void)
{
	static const char *const args[] = {"--idle-timeout", "2", NULL};
	static char junk[65536];
	unsigned seed = 10;
	struct tsrv s;
	int stuck, other;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(rand_r(&seed) & 0xff);
	if (start(&s, args, 1))
		return;
	stuck = tsrv_connect(&s, 0);
	T_CHECK(t_fill(stuck, junk, sizeof(junk), 16u << 20) > 0);
	other = tsrv_connect(&s, 0);
	expect_line(other, "15\n", "610\n");
	close(other);
	close(stuck);
	other = tsrv_connect(&s, 0);
	expect_line(other, "12\n", "144\n");
	close(other);
	stop_ok(&s);
}

#define CASE(fn, secs)	    TSRV_CASE(cur, fn, secs)
#define READ_CASE(fn, secs) tsrv_case(cur, "read/" #fn, fn, secs)

/* The cases again, the engine python: cases named "MODEL+python/CASE". */
static void python_cases(void)
{
	struct tsrv_model label = *cur;

	snprintf(label.name, sizeof(label.name), "%.20s+python", cur->name);
	python = true;
	TSRV_CASE(&label, case_replies, 60);
	TSRV_CASE(&label, case_fast_big, 60);
	TSRV_CASE(&label, case_bad_input, 60);
	TSRV_CASE(&label, case_half_close, 60);
	TSRV_CASE(&label, case_reset, 60);
	TSRV_CASE(&label, case_sigterm_inflight, 60);
	TSRV_CASE(&label, case_concurrency, 120);
	python = false;
}

/* $FIBD_ENGINES (default "c,python") lists python, and the build has it. */
static bool python_wanted(void)
{
	const char *list = getenv("FIBD_ENGINES");

	return pyengine_available() &&
	       (!list || !*list || strstr(list, "python"));
}

int main(void)
{
	bool py = python_wanted();

	nmodels = tsrv_list_models(models, MAX_MODELS);
	T_CHECK(nmodels > 0, "no models listed");
	for (int i = 0; i < nmodels; i++) {
		cur = &models[i];
		fprintf(stderr, "model %s (%s)\n", cur->name, cur->concurrency);
		CASE(case_replies, 60);
		CASE(case_fast_big, 60);
		CASE(case_pipeline, 60);
		CASE(case_byte_by_byte, 60);
		CASE(case_bad_input, 60);
		CASE(case_line_too_long, 60);
		CASE(case_half_close, 60);
		CASE(case_reset, 60);
		CASE(case_sigterm_idle, 60);
		CASE(case_sigterm_inflight, 60);
		CASE(case_sigterm_at_start, 120);
		CASE(case_stop_signals_one_thread, 60);
		CASE(case_concurrency, 120);
		read_framing = 1;
		READ_CASE(case_replies, 60);
		READ_CASE(case_bad_input_read, 60);
		READ_CASE(case_read_split, 60);
		READ_CASE(case_fast_big_read, 60);
		READ_CASE(case_half_close_read, 60);
		READ_CASE(case_reset, 60);
		READ_CASE(case_sigterm_idle, 60);
		READ_CASE(case_sigterm_inflight, 60);
		READ_CASE(case_concurrency, 120);
		READ_CASE(case_flood_read, 60);
		read_framing = 0;
		if (py)
			python_cases();
	}
	return t_done("test_models");
}
