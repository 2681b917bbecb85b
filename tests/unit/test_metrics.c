/*
 * Unit tests for src/core/metrics: counting through batches, jobs and
 * gauges, sums over shards from many threads and across fork() (the many
 * model), a killed child's gauges dropped (by hand, and in a live server
 * whose model forks), the process metrics, and a strict check of the
 * Prometheus text rendering. The python check with prometheus_client and
 * promtool runs against live servers (tests/http/check_metrics.py).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/metrics.h"
#include "../lib/tsrv.h"
#include "../t.h"

static char text[METRICS_TEXT_MAX];

/* The value of the sample line that starts with "prefix " in text. */
static long long sample(const char *prefix)
{
	size_t n = strlen(prefix);

	metrics_render(text, sizeof(text));
	for (const char *p = text; p && *p;
	     p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return atoll(p + n + 1);
	return -1;
}

static void test_batch(void)
{
	struct metrics_batch b = METRICS_BATCH_INIT;
	struct reply r;

	metrics_batch_request(&b, METRICS_LINE, PROTO_OK);
	metrics_batch_request(&b, METRICS_LINE, PROTO_OK);
	metrics_batch_request(&b, METRICS_HTTP, PROTO_NOT_NUMBER);
	metrics_batch_code(&b, 400);
	metrics_batch_code(&b, 418); /* not one of ours: counted as 500 */
	T_CHECK(metrics_requests(METRICS_LINE, PROTO_OK) == 0, "not yet");
	metrics_batch_flush(&b);
	T_CHECK(b.n == 0 && b.t0 == 0, "flush empties the batch");
	T_CHECK(metrics_requests(METRICS_LINE, PROTO_OK) == 2);
	T_CHECK(metrics_requests(METRICS_HTTP, PROTO_NOT_NUMBER) == 1);
	T_CHECK(sample("fibd_http_responses_total{code=\"400\"}") == 1);
	T_CHECK(sample("fibd_http_responses_total{code=\"500\"}") == 1);
	T_CHECK(sample("fibd_request_duration_seconds_count") == 3);
	metrics_batch_flush(&b); /* empty: nothing changes */
	T_CHECK(sample("fibd_request_duration_seconds_count") == 3);
	reply_set(&r, "ERR internal error\n", 19);
	T_CHECK(metrics_result(PROTO_OK, &r) == PROTO_INTERNAL);
	T_CHECK(metrics_result(PROTO_NEGATIVE, &r) == PROTO_NEGATIVE);
	reply_set(&r, "55\n", 3);
	T_CHECK(metrics_result(PROTO_OK, &r) == PROTO_OK);
}

static void *other_thread_end(void *arg)
{
	uint64_t t0 = *(uint64_t *)arg;

	metrics_job_end(METRICS_LINE, PROTO_OK, t0);
	metrics_conn_close();
	return NULL;
}

static void test_gauges(void)
{
	pthread_t t;
	uint64_t t0;

	t0 = metrics_job_begin();
	metrics_conn_open();
	T_CHECK(sample("fibd_requests_in_flight") == 1);
	T_CHECK(sample("fibd_connections_open") == 1);
	/* Ended on another thread, so on another shard: the sum is 0. */
	pthread_create(&t, NULL, other_thread_end, &t0);
	pthread_join(t, NULL);
	T_CHECK(sample("fibd_requests_in_flight") == 0);
	T_CHECK(sample("fibd_connections_open") == 0);
	T_CHECK(sample("fibd_connections_total") == 1);
	T_CHECK(metrics_requests(METRICS_LINE, PROTO_OK) == 1);
	metrics_compute_begin();
	T_CHECK(sample("fibd_requests_in_flight") == 1);
	metrics_compute_end();
	metrics_conn_rejected();
	T_CHECK(sample("fibd_connections_rejected_total") == 1);
}

#define THREADS	   80 /* more than METRICS_SHARDS: some share a shard */
#define PER_THREAD 2000

static void *count_many(void *arg)
{
	struct metrics_batch b = METRICS_BATCH_INIT;

	(void)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_batch_request(&b, METRICS_LINE, PROTO_TOO_LARGE);
		metrics_batch_flush(&b);
		metrics_conn_open();
		metrics_conn_close();
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, count_many, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	T_CHECK(metrics_requests(METRICS_LINE, PROTO_TOO_LARGE) ==
		THREADS * PER_THREAD);
	T_CHECK(sample("fibd_connections_total") == THREADS * PER_THREAD);
	T_CHECK(sample("fibd_connections_open") == 0);
}

static void test_shared_across_fork(void)
{
	struct metrics_batch b = METRICS_BATCH_INIT;
	pid_t pid;
	int st;

	T_CHECK(metrics_init() == 0);
	for (int k = 0; k < 3; k++) {
		pid = fork();
		if (pid == 0) {
			metrics_batch_request(&b, METRICS_HTTP, PROTO_OK);
			metrics_batch_flush(&b);
			_exit(0);
		}
		waitpid(pid, &st, 0);
	}
	T_CHECK(metrics_requests(METRICS_HTTP, PROTO_OK) == 3,
		"the children's counts reach the parent");
}

/*
 * A child killed with a connection open and a compute under way never
 * counts them down; once its parent has reaped it and said so, they are
 * gone from the sums.
 */
static void test_dead_child_gauges(void)
{
	pid_t pid;
	int st;

	T_CHECK(metrics_init() == 0);
	metrics_conn_open(); /* the parent's own, which stays */
	pid = fork();
	if (pid == 0) {
		metrics_conn_open();
		metrics_compute_begin();
		kill(getpid(), SIGKILL);
	}
	waitpid(pid, &st, 0);
	T_CHECK(WIFSIGNALED(st));
	T_CHECK(sample("fibd_connections_open") == 2, "before the reap");
	T_CHECK(sample("fibd_requests_in_flight") == 1, "before the reap");
	metrics_process_gone(pid);
	T_CHECK(sample("fibd_connections_open") == 1, "after the reap");
	T_CHECK(sample("fibd_requests_in_flight") == 0, "after the reap");
	T_CHECK(sample("fibd_connections_total") == 2, "counters stay");
}

/* The process metrics describe this process. */
static void test_process_metrics(void)
{
	long long now = (long long)time(NULL);
	long long start = sample("process_start_time_seconds");

	T_CHECK(sample("process_open_fds") >= 3, "stdin, stdout, stderr");
	T_CHECK(sample("process_resident_memory_bytes") > 100000);
	T_CHECK(sample("process_virtual_memory_bytes") >=
		sample("process_resident_memory_bytes"));
	T_CHECK(sample("process_max_fds") > 0);
	T_CHECK(sample("process_cpu_seconds_total") >= 0);
	T_CHECK(start > now - 3600 && start <= now + 1,
		"started at %lld, "
		"now %lld",
		start, now);
}

/* The one child of pid other than not (0: any), or 0. */
static pid_t child_of(pid_t pid, pid_t not )
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	char path[64], line[512], *p;
	FILE *f;
	int id, ppid;

	while (d && !found && (e = readdir(d))) {
		id = atoi(e->d_name);
		if (id <= 0 || id == not )
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", id);
		f = fopen(path, "r");
		if (!f)
			continue;
		p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
		if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == pid)
			found = id;
		fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* fibd_connections_open as GET /metrics on a new connection reports it. */
static long long scraped_conns_open(const struct tsrv *s)
{
	static const char get[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n"
				  "Connection: close\r\n\r\n";
	static char resp[16384];
	const char *p;
	size_t len = 0;
	ssize_t n;
	int fd = -1;

	/* Refused while no child listens: between a death and a restart. */
	for (int i = 0; i < 1000 && fd < 0; i++)
		if ((fd = tsrv_connect(s, 0)) < 0)
			usleep(10000);
	if (fd < 0 || t_send(fd, get) < 0)
		return -1;
	while (len < sizeof(resp) - 1 &&
	       (n = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0)
		len += (size_t)n;
	resp[len] = '\0';
	close(fd);
	p = strstr(resp, "\nfibd_connections_open ");
	return p ? atoll(p + strlen("\nfibd_connections_open ")) : -1;
}

/*
 * A live server whose model forks a process per shard: one connection is
 * open when its process is SIGKILLed; after the restart, a scrape on a new
 * connection counts that one alone.
 */
static void test_killed_child_live(void)
{
	static const char *const args[] = {"--workers", "1", NULL};
	struct tsrv_model models[32];
	int n = tsrv_list_models(models, 32), a, tested = 0;
	pid_t kid, next = 0;
	char buf[64];
	struct tsrv s;

	for (int i = 0; i < n; i++) {
		if (!models[i].forks || !models[i].max_workers)
			continue;
		if (tsrv_start(&s, models[i].name, args, 1)) {
			T_CHECK(0, "%s did not start", models[i].name);
			continue;
		}
		tested++;
		a = tsrv_connect(&s, 0);
		T_CHECK(t_ask(a, "1\n", buf, sizeof(buf)) &&
			strcmp(buf, "1\n") == 0);
		kid = child_of(s.pid, 0);
		T_CHECK(kid > 0 && kill(kid, SIGKILL) == 0, "%s: no child",
			models[i].name);
		for (int k = 0; k < 1000 && kid > 0 && !next; k++)
			if (!(next = child_of(s.pid, kid)))
				usleep(10000);
		T_CHECK(next > 0, "%s: no child after the kill",
			models[i].name);
		close(a);
		T_CHECK(scraped_conns_open(&s) == 1,
			"%s: a killed child's connection still counted",
			models[i].name);
		T_CHECK(tsrv_stop(&s, 30) == 0);
	}
	if (!tested)
		fprintf(stderr, "no model listed forks: live case skipped\n");
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static const char *metric_name(const char *p)
{
	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	      *p == '_' || *p == ':'))
		return NULL;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	       (*p >= '0' && *p <= '9') || *p == '_' || *p == ':')
		p++;
	return p;
}

/* {name="value",...}, values without escapes (ours need none). */
static const char *labels(const char *p)
{
	if (*p != '{')
		return p;
	p++;
	while (*p != '}') {
		p = metric_name(p);
		if (!p || *p++ != '=' || *p++ != '"')
			return NULL;
		while (*p && *p != '"' && *p != '\\' && *p != '\n')
			p++;
		if (*p++ != '"')
			return NULL;
		if (*p == ',')
			p++;
		else if (*p != '}')
			return NULL;
	}
	return p + 1;
}

/* One line of the exposition format; returns 1 when it is well-formed. */
static int line_ok(const char *p, const char *end)
{
	char *num_end;

	if (strncmp(p, "# HELP ", 7) == 0) {
		p = metric_name(p + 7);
		return p && *p == ' ';
	}
	if (strncmp(p, "# TYPE ", 7) == 0) {
		p = metric_name(p + 7);
		return p && (strncmp(p, " counter\n", 9) == 0 ||
			     strncmp(p, " gauge\n", 7) == 0 ||
			     strncmp(p, " histogram\n", 11) == 0);
	}
	p = metric_name(p);
	if (p)
		p = labels(p);
	if (!p || *p++ != ' ')
		return 0;
	strtod(p, &num_end);
	return num_end != p && num_end == end;
}

static void test_render_format(void)
{
	long long prev = -1, v;
	int n = metrics_render(text, sizeof(text)), bad = 0, buckets = 0;
	const char *p, *nl;

	T_CHECK(n > 0 && text[n - 1] == '\n', "ends in a newline");
	for (p = text; p < text + n; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + n - p));
		if (!nl || !line_ok(p, nl)) {
			fprintf(stderr, "bad line: %.*s\n", (int)(nl - p), p);
			bad++;
			break;
		}
		if (strncmp(p, "fibd_request_duration_seconds_bucket", 36) ==
		    0) {
			v = atoll(strchr(p, ' ') + 1);
			bad += v < prev; /* cumulative */
			prev = v;
			buckets++;
		}
	}
	T_CHECK(bad == 0);
	T_CHECK(buckets == METRICS_BUCKETS + 1);
	T_CHECK(sample("fibd_request_duration_seconds_bucket{le=\"+Inf\"}") ==
		sample("fibd_request_duration_seconds_count"));
	T_CHECK(metrics_render(text, 100) == -ENOSPC);
}

int main(void)
{
	T_RUN(test_batch, 10);
	T_RUN(test_gauges, 10);
	T_RUN(test_threads, 30);
	T_RUN(test_shared_across_fork, 10);
	T_RUN(test_dead_child_gauges, 10);
	T_RUN(test_process_metrics, 10);
	T_RUN(test_killed_child_live, 60);
	T_RUN(test_render_format, 10);
	return t_done("test_metrics");
}
