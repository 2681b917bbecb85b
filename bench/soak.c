/*
 * soak - run a model for minutes under mixed, churning load and check that
 * nothing is lost, nothing is wrong, and nothing grows.
 *
 * It starts build/fibd --model M on a free port, then C client threads each
 * open a connection, pipeline a few requests, check every reply against
 * the reference (proto_handle_line() with fibd's default limits), and end
 * the connection in one of several ways:
 *
 *   close     read every reply, close()
 *   half      send everything, shutdown(SHUT_WR), read every reply and EOF
 *   rst       read every reply, close with an RST (SO_LINGER 0)
 *   abort     send requests and half a line, RST at once, read nothing
 *   long      a few requests, then a line over --max-line: their replies,
 *             "ERR line too long", then EOF
 *
 * The mix: fib(1) (I/O-bound), fib(25) (some compute) and bad input (not a
 * number, negative, empty, too large, NUL bytes, blanks and CR).
 *
 * The server's RSS and open descriptors (its own plus its children's:
 * procpool's workers, many's processes) are read from /proc at two quiet
 * points: after a warm-up, and after the run once every client has left.
 * One grep-able line per model:
 *
 *   soak model=M minutes=N requests=N errors=N wrong=N lost=N conns=N
 *        rss_kb_start=N rss_kb_end=N fds_start=N fds_end=N exit=N
 *
 * Usage: build/bench/soak --model M | --all [--minutes N] [--clients C]
 *                         [--fibd PATH] [-- FIBD_ARGS...]
 * Exits 0 when every model had no error and exited 0 on SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/core/net.h"
#include "../src/core/proto.h"
#include "../tests/lib/tsrv.h"

#define SOAK_MAX_CLIENTS 64
#define SOAK_MAX_BATCH	 4    /* requests pipelined before reading */
#define SOAK_MAX_REQS	 16   /* requests per connection */
#define SOAK_RCV_TIMEOUT 20   /* seconds: a reply later than this is lost */
#define SOAK_QUIET_MS	 2000 /* settle time before measuring the server */
#define SOAK_BUF	 4096

/* One kind of request, its share of the mix, and the reply it must get. */
struct soak_req {
	const char *line;
	size_t len;
	unsigned weight;
	char want[96];
};

#define REQ(s, w)                                                              \
	{                                                                      \
		s, sizeof(s) - 1, w, ""                                        \
	}
static struct soak_req soak_reqs[] = {
    REQ("1\n", 50),	    REQ("25\n", 15),
    REQ("abc\n", 4),	    REQ("-7\n", 4),
    REQ("\n", 4),	    REQ("46\n", 4),
    REQ(" +25 \r\n", 4),    REQ("12x\n", 4),
    REQ("\0\xff\x01\n", 4), REQ("99999999999999999999999\n", 3),
};
#define SOAK_NREQS (sizeof(soak_reqs) / sizeof(soak_reqs[0]))
static unsigned soak_weight_sum;

/* How a connection ends; shares of 100. */
enum soak_end {
	SOAK_CLOSE, /* 55 */
	SOAK_HALF,  /* 15 */
	SOAK_RST,   /* 15 */
	SOAK_ABORT, /* 10 */
	SOAK_LONG,  /* 5 */
};

struct soak_stats {
	atomic_ulong requests;	  /* replies checked */
	atomic_ulong wrong;	  /* a reply that is not the right one */
	atomic_ulong lost;	  /* a reply that never came */
	atomic_ulong conns;	  /* connections opened */
	atomic_ulong connect_err; /* connect() failed (not port exhaustion) */
};

static struct soak_stats st;
static atomic_bool soak_stop;
static uint16_t soak_port;
static char soak_long_line[PROTO_DEFAULT_MAX_LINE + 64];
static char soak_long_want[96];

static void soak_expect(const char *line, size_t len, char *want, size_t cap)
{
	struct proto_limits lim;
	struct reply r;

	proto_limits_default(&lim);
	proto_handle_line(&lim, line, len, &r);
	snprintf(want, cap, "%.*s", (int)r.len, r.text);
	reply_release(&r);
}

static void soak_init_reqs(void)
{
	struct proto_limits lim;
	struct reply r;

	for (size_t i = 0; i < SOAK_NREQS; i++) {
		soak_expect(soak_reqs[i].line, soak_reqs[i].len,
			    soak_reqs[i].want, sizeof(soak_reqs[i].want));
		soak_weight_sum += soak_reqs[i].weight;
	}
	memset(soak_long_line, '7', sizeof(soak_long_line));
	proto_limits_default(&lim);
	proto_error_reply(&lim, PROTO_LINE_TOO_LONG, &r);
	snprintf(soak_long_want, sizeof(soak_long_want), "%.*s", (int)r.len,
		 r.text);
	reply_release(&r);
}

static const struct soak_req *soak_pick(unsigned *seed)
{
	unsigned x = (unsigned)rand_r(seed) % soak_weight_sum;
	size_t i = 0;

	while (x >= soak_reqs[i].weight)
		x -= soak_reqs[i++].weight;
	return &soak_reqs[i];
}

static enum soak_end soak_pick_end(unsigned *seed)
{
	unsigned x = (unsigned)rand_r(seed) % 100;

	if (x < 55)
		return SOAK_CLOSE;
	if (x < 70)
		return SOAK_HALF;
	if (x < 85)
		return SOAK_RST;
	return x < 95 ? SOAK_ABORT : SOAK_LONG;
}

/* A connection's receive side: buffered, one reply line at a time. */
struct soak_conn {
	int fd;
	size_t have;
	char buf[SOAK_BUF];
};

/* Reads one line into line. Returns its length, 0 at EOF, -1 on error. */
static ssize_t soak_read_line(struct soak_conn *c, char *line, size_t cap)
{
	char *nl;
	ssize_t n;
	size_t len;

	while (!(nl = memchr(c->buf, '\n', c->have))) {
		if (c->have == sizeof(c->buf))
			return -1;
		n = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n;
		c->have += (size_t)n;
	}
	len = (size_t)(nl - c->buf) + 1;
	snprintf(line, cap, "%.*s", (int)len, c->buf);
	c->have -= len;
	memmove(c->buf, nl + 1, c->have);
	return (ssize_t)len;
}

/* Checks the next reply against want. Returns 0, or -1 if none came. */
static int soak_check(struct soak_conn *c, const char *want)
{
	char line[SOAK_BUF];
	ssize_t n = soak_read_line(c, line, sizeof(line));

	if (n <= 0) {
		atomic_fetch_add(&st.lost, 1);
		return -1;
	}
	atomic_fetch_add(&st.requests, 1);
	if (strcmp(line, want) != 0) {
		atomic_fetch_add(&st.wrong, 1);
		fprintf(stderr, "soak: got '%.*s' want '%.*s'\n",
			(int)strcspn(line, "\n"), line,
			(int)strcspn(want, "\n"), want);
	}
	return 0;
}

/* True when the server closed the connection (EOF or reset). */
static bool soak_eof(struct soak_conn *c)
{
	char line[SOAK_BUF];

	return soak_read_line(c, line, sizeof(line)) <= 0 && c->have == 0;
}

static void soak_rst(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static int soak_connect(void)
{
	struct timeval tv = {.tv_sec = SOAK_RCV_TIMEOUT};
	int fd;

	for (;;) {
		fd = net_connect("127.0.0.1", soak_port);
		if (fd >= 0)
			break;
		if (fd != -EADDRNOTAVAIL || atomic_load(&soak_stop)) {
			atomic_fetch_add(&st.connect_err, 1);
			return -1;
		}
		poll(NULL, 0, 10); /* out of local ports (TIME_WAIT) */
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	net_nodelay(fd);
	atomic_fetch_add(&st.conns, 1);
	return fd;
}

/*
 * Sends nreq requests in pipelined batches and checks every reply; with
 * half set, shuts the write side before reading the last batch.
 * Returns 0, or -1 when the connection broke.
 */
static int soak_exchange(struct soak_conn *c, unsigned nreq, bool half,
			 unsigned *seed)
{
	const struct soak_req *batch[SOAK_MAX_BATCH];
	unsigned k;

	while (nreq) {
		k = 1 + (unsigned)rand_r(seed) % SOAK_MAX_BATCH;
		k = k < nreq ? k : nreq;
		for (unsigned i = 0; i < k; i++) {
			batch[i] = soak_pick(seed);
			if (net_write_all(c->fd, batch[i]->line, batch[i]->len))
				goto out_lost;
		}
		nreq -= k;
		if (half && !nreq)
			shutdown(c->fd, SHUT_WR);
		for (unsigned i = 0; i < k; i++)
			if (soak_check(c, batch[i]->want))
				goto out_lost;
	}
	return 0;

out_lost:
	atomic_fetch_add(&st.lost, nreq);
	return -1;
}

/* Requests, then half of one more, then an RST: nothing is read. */
static void soak_abort(struct soak_conn *c, unsigned nreq, unsigned *seed)
{
	const struct soak_req *r;

	for (unsigned i = 0; i < nreq; i++) {
		r = soak_pick(seed);
		net_write_all(c->fd, r->line, r->len);
	}
	net_write_all(c->fd, "2", 1);
	soak_rst(c->fd);
}

/* Requests, then a line too long: their replies, the error, then EOF. */
static void soak_long(struct soak_conn *c, unsigned nreq, unsigned *seed)
{
	if (soak_exchange(c, nreq, false, seed))
		return;
	if (net_write_all(c->fd, soak_long_line, sizeof(soak_long_line)) ||
	    soak_check(c, soak_long_want))
		return;
	if (!soak_eof(c)) {
		atomic_fetch_add(&st.wrong, 1);
		fprintf(stderr, "soak: no close after a line too long\n");
	}
}

/* One connection, from connect to its chosen end. */
static void soak_session(unsigned *seed)
{
	struct soak_conn *c = malloc(sizeof(*c));
	unsigned nreq = 1 + (unsigned)rand_r(seed) % SOAK_MAX_REQS;
	enum soak_end end = soak_pick_end(seed);

	if (!c)
		return;
	c->have = 0;
	c->fd = soak_connect();
	if (c->fd < 0) {
		free(c);
		poll(NULL, 0, 100);
		return;
	}
	switch (end) {
	case SOAK_ABORT:
		soak_abort(c, nreq, seed);
		free(c);
		return;
	case SOAK_LONG:
		soak_long(c, nreq % 4, seed);
		break;
	case SOAK_HALF:
		if (!soak_exchange(c, nreq, true, seed) && !soak_eof(c))
			atomic_fetch_add(&st.wrong, 1);
		break;
	default:
		soak_exchange(c, nreq, false, seed);
	}
	if (end == SOAK_RST)
		soak_rst(c->fd);
	else
		close(c->fd);
	free(c);
}

static void *soak_client(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&soak_stop))
		soak_session(&seed);
	return NULL;
}

/* The server under test. */

static uint64_t soak_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* /proc: the server's memory and descriptors, its children's included. */

static long soak_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0)
			kb = atol(line + klen);
	fclose(f);
	return kb;
}

static long soak_nfds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* RSS (kB) and open descriptors of pid plus its direct children. */
static void soak_measure(pid_t pid, long *rss_kb, long *fds)
{
	struct dirent *e;
	DIR *d = opendir("/proc");
	pid_t child;

	*rss_kb = soak_status_kb(pid, "VmRSS:");
	*fds = soak_nfds(pid);
	while (d && (e = readdir(d))) {
		child = (pid_t)atoi(e->d_name);
		if (child > 0 && soak_status_kb(child, "PPid:") == pid) {
			*rss_kb += soak_status_kb(child, "VmRSS:");
			*fds += soak_nfds(child);
		}
	}
	if (d)
		closedir(d);
}

static unsigned long soak_errors(void)
{
	return atomic_load(&st.wrong) + atomic_load(&st.lost) +
	       atomic_load(&st.connect_err);
}

static void soak_progress(pid_t server, double t)
{
	long rss, fds;

	soak_measure(server, &rss, &fds);
	printf("  t=%.0fs requests=%lu errors=%lu conns=%lu rss_kb=%ld "
	       "fds=%ld (under load)\n",
	       t, atomic_load(&st.requests), soak_errors(),
	       atomic_load(&st.conns), rss, fds);
	fflush(stdout);
}

static void soak_load(unsigned nclients, double secs, pid_t server,
		      double report_s)
{
	pthread_t tids[SOAK_MAX_CLIENTS];
	uint64_t t0 = soak_now_ms(), next = report_s * 1000, el;
	unsigned started = 0;

	atomic_store(&soak_stop, false);
	for (; started < nclients; started++)
		if (pthread_create(&tids[started], NULL, soak_client,
				   (void *)(uintptr_t)(t0 + started * 7919)))
			break;
	while ((el = soak_now_ms() - t0) < secs * 1000) {
		poll(NULL, 0, 100);
		if (report_s > 0 && el >= next) {
			soak_progress(server, el / 1000.0);
			next += report_s * 1000;
		}
	}
	atomic_store(&soak_stop, true);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
}

/* The run. */

struct soak_opts {
	const char *fibd;
	double minutes;
	unsigned clients;
	char **extra; /* more fibd arguments, after "--" */
};

struct soak_result {
	const char *model;
	unsigned long requests, errors, wrong, lost, conns;
	long rss_start, rss_end, fds_start, fds_end;
	int exit;
};

/* Warm up, measure, soak, let it settle, measure, stop. */
static int soak_model(const struct soak_opts *o, const char *model,
		      struct soak_result *res)
{
	double secs = o->minutes * 60, warm = secs / 10 < 5 ? secs / 10 : 5;
	char kept[96];
	struct tsrv s;

	memset(&st, 0, sizeof(st));
	memset(res, 0, sizeof(*res));
	res->model = model;
	tsrv_fibd = o->fibd;
	if (tsrv_start(&s, model, (const char *const *)o->extra, 1))
		return -1;
	soak_port = s.ports[0];
	/* A second name for the server's log: tsrv_stop() removes the first. */
	snprintf(kept, sizeof(kept), "/tmp/fibd-soak-%s-%d.log", model,
		 (int)s.pid);
	if (link(s.log_path, kept) < 0)
		kept[0] = '\0';
	printf("soak: %s on port %u, %u clients, %.1f min\n", model, soak_port,
	       o->clients, o->minutes);
	soak_load(o->clients, warm, s.pid, 0);
	poll(NULL, 0, SOAK_QUIET_MS);
	soak_measure(s.pid, &res->rss_start, &res->fds_start);
	soak_load(o->clients, secs, s.pid, secs >= 600 ? 60 : secs / 5);
	poll(NULL, 0, SOAK_QUIET_MS);
	soak_measure(s.pid, &res->rss_end, &res->fds_end);
	res->exit = tsrv_stop(&s, 30);
	res->requests = atomic_load(&st.requests);
	res->wrong = atomic_load(&st.wrong);
	res->lost = atomic_load(&st.lost);
	res->conns = atomic_load(&st.conns);
	res->errors = soak_errors();
	if (res->exit == 0 && res->errors == 0)
		unlink(kept);
	else if (kept[0])
		fprintf(stderr, "soak: %s: server log kept in %s\n", model,
			kept);
	return res->exit == 0 && res->errors == 0 ? 0 : -1;
}

static void soak_print(const struct soak_result *r, double minutes)
{
	printf("soak model=%s minutes=%.2f requests=%lu errors=%lu wrong=%lu "
	       "lost=%lu conns=%lu rss_kb_start=%ld rss_kb_end=%ld "
	       "fds_start=%ld fds_end=%ld exit=%d\n",
	       r->model, minutes, r->requests, r->errors, r->wrong, r->lost,
	       r->conns, r->rss_start, r->rss_end, r->fds_start, r->fds_end,
	       r->exit);
	fflush(stdout);
}

/* Models from fibd --list-models. Returns how many. */
static int soak_list_models(const char *fibd, char names[][32], int max)
{
	char cmd[PATH_MAX + 32], line[256];
	FILE *p;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "%s --list-models", fibd);
	p = popen(cmd, "r");
	if (!p)
		return 0;
	if (!fgets(line, sizeof(line), p)) /* the table's header */
		line[0] = '\0';
	while (n < max && fgets(line, sizeof(line), p))
		if (sscanf(line, "%31s", names[n]) == 1)
			n++;
	pclose(p);
	return n;
}

/* build/bench/soak -> build/fibd */
static const char *soak_default_fibd(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 16);

	if (n <= 0)
		return "build/fibd";
	path[n] = '\0';
	strcat(dirname(dirname(path)), "/fibd");
	return path;
}

static void soak_usage(FILE *f)
{
	fputs(
	    "usage: soak --model M | --all [--minutes N] [--clients C]\n"
	    "            [--fibd PATH] [-- FIBD_ARGS...]\n"
	    "  --minutes N   soak time per model, after a warm-up of a tenth\n"
	    "                of it (at most 5 s); default 1\n"
	    "  --clients C   client threads (default 4)\n"
	    "  --fibd PATH   the server (default: fibd next to bench/)\n",
	    f);
}

static int soak_parse(int argc, char **argv, struct soak_opts *o,
		      const char **model, bool *all)
{
	static const struct option lo[] = {
	    {"model", required_argument, NULL, 'm'},
	    {"all", no_argument, NULL, 'A'},
	    {"minutes", required_argument, NULL, 't'},
	    {"clients", required_argument, NULL, 'c'},
	    {"fibd", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "m:t:c:f:h", lo, NULL)) != -1) {
		if (c == 'm')
			*model = optarg;
		else if (c == 'A')
			*all = true;
		else if (c == 't')
			o->minutes = atof(optarg);
		else if (c == 'c')
			o->clients = (unsigned)atoi(optarg);
		else if (c == 'f')
			o->fibd = optarg;
		else
			return c == 'h' ? 1 : -1;
	}
	o->extra = argv + optind;
	if ((!*model && !*all) || o->minutes <= 0 || !o->clients ||
	    o->clients > SOAK_MAX_CLIENTS)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct soak_opts o = {.minutes = 1, .clients = 4};
	static char names[32][32];
	struct soak_result res[32];
	const char *model = NULL;
	bool all = false;
	int n = 1, failed = 0, rc;

	rc = soak_parse(argc, argv, &o, &model, &all);
	if (rc) {
		soak_usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	if (!o.fibd)
		o.fibd = soak_default_fibd();
	net_ignore_sigpipe();
	soak_init_reqs();
	if (all)
		n = soak_list_models(o.fibd, names, 32);
	else
		snprintf(names[0], sizeof(names[0]), "%s", model);
	for (int i = 0; i < n; i++) {
		failed += soak_model(&o, names[i], &res[i]) != 0;
		soak_print(&res[i], o.minutes);
	}
	printf("\n%-9s %7s %10s %6s %9s %9s %6s %6s %4s\n", "model", "minutes",
	       "requests", "errors", "rss_start", "rss_end", "fds_0", "fds_1",
	       "exit");
	for (int i = 0; i < n; i++)
		printf("%-9s %7.2f %10lu %6lu %7ldkB %7ldkB %6ld %6ld %4d\n",
		       res[i].model, o.minutes, res[i].requests, res[i].errors,
		       res[i].rss_start, res[i].rss_end, res[i].fds_start,
		       res[i].fds_end, res[i].exit);
	printf("soak: %d passed, %d failed\n", n - failed, failed);
	return failed ? 1 : 0;
}
