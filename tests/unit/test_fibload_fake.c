/*
 * test_fibload_fake - the load generator, run as a subprocess against tiny
 * fake servers in this process that answer wrongly, never answer, hang up
 * or count what they are sent: what it counts, and how it fails.
 * test_fibload.c runs it against a real fibd. Nothing here asserts a speed.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/tfibload.h"
#include "../lib/tjson.h"
#include "../t.h"
#include "core/net.h"

static char out[1 << 16], err[1 << 16];

/* BUILD/fibload ARGS...: stdout in out, stderr in err; its exit status. */
static int fibload(const char *const *args)
{
	return tfibload_run(args, out, sizeof(out), err, sizeof(err));
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
	T_CHECK(tjson_num(out, NULL, "requests") == 1234, "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", g->port_str, "-c", "2",
					      "--rate", "5000", "-P", "2", "-r",
					      "301", "--json", NULL}) == 0,
		"%s", err);
	T_CHECK(atomic_load(&g->lines) == 301, "server saw %lu",
		atomic_load(&g->lines));
	T_CHECK(tjson_num(out, NULL, "requests") == 301, "%s", out);
}

static void test_wrong_answer(void)
{
	struct fake *f = fake_start(FAKE_WRONG), *g = fake_start(FAKE_GARBAGE);

	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-r", "50",
					      "--json", NULL}) == 1);
	T_CHECK(tjson_num(out, "errors", "wrong") == 50, "%s", out);
	T_CHECK(tjson_num(out, "errors", "total") == 50, "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") == 0, "%s", out);
	/* A reply that is not a reply: a protocol error, then reconnect. */
	T_CHECK(fibload((const char *const[]){"-p", g->port_str, "-r", "20",
					      "--json", NULL}) == 1);
	T_CHECK(tjson_num(out, "errors", "protocol") >= 1, "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") == 0, "%s", out);
}

static void test_timeout(void)
{
	struct fake *f = fake_start(FAKE_SILENT);

	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-d", "1",
					      "--timeout", "200", "-c", "2",
					      "--json", NULL}) == 1);
	T_CHECK(tjson_num(out, "errors", "timeout") >= 2, "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") == 0, "%s", out);
	/* -r with a server that never answers still ends. */
	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-r", "5",
					      "--timeout", "100", NULL}) == 1);
}

static void test_hangup(void)
{
	struct fake *f = fake_start(FAKE_CLOSE);

	T_CHECK(fibload((const char *const[]){"-p", f->port_str, "-d", "0.3",
					      "--json", NULL}) == 1);
	T_CHECK(tjson_num(out, "errors", "read") >= 1, "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") >= 1, "%s", out);
}

/*
 * Runs fibload --json at a new FAKE_DRAIN server, f: 4 requests for
 * fib(30), 2 pipelined, so that f's first connection answers one and hangs
 * up on the other; extra (NULL-terminated, 4 at most) adds to the flags.
 * Returns fibload's exit status.
 */
static int drain_run(struct fake **f, const char *const *extra)
{
	const char *args[16] = {"-p", NULL,  "-P", "2",	    "-r",
				"4",  "--n", "30", "--json"};
	int n = 9;

	*f = fake_start(FAKE_DRAIN);
	args[1] = (*f)->port_str;
	while (extra && *extra && n < 13)
		args[n++] = *extra++;
	return fibload(args);
}

/* A server that stops: it answers the first of two pipelined requests and
 * closes the connection, the second never read. */
static void test_resend(void)
{
	struct fake *f, *g;
	struct fake *h = fake_start(FAKE_DROP), *c = fake_start(FAKE_CLOSE);
	char hist[64];

	/* without --resend: the unanswered request is a read error */
	T_CHECK(drain_run(&f, NULL) == 1, "%s%s", out, err);
	T_CHECK(tjson_num(out, "errors", "read") == 1, "%s", out);
	T_CHECK(tjson_num(out, NULL, "resent") == 0, "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") == 3, "%s", out);

	/* with it: sent again on a new connection and answered (832040,
	 * checked by fibload as every reply is) */
	tfibload_temp(hist, "");
	T_CHECK(drain_run(&g, (const char *const[]){"--resend", "--hist-out",
						    hist, NULL}) == 0,
		"%s%s", out, err);
	T_CHECK(tjson_num(out, NULL, "resent") == 1, "%s", out);
	T_CHECK(tjson_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") == 4, "%s", out);
	T_CHECK(strstr(out, "\"resend\":true"), "%s", out);
	T_CHECK(atomic_load(&g->lines) == 5, "server saw %lu",
		atomic_load(&g->lines));
	T_CHECK(atomic_load(&g->conns) == 2, "%lu connections",
		atomic_load(&g->conns));
	T_CHECK(fibload((const char *const[]){"merge", "--json", hist, hist,
					      NULL}) == 0,
		"%s%s", out, err);
	T_CHECK(tjson_num(out, NULL, "resent") == 2, "%s", out);
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
	T_CHECK(tjson_num(out, "errors", "total") == 0, "%s", out);
	T_CHECK(tjson_num(out, NULL, "requests") == 20, "%s", out);
	T_CHECK(atomic_load(&c->lines) == 20, "server saw %lu: %s",
		atomic_load(&c->lines), out);

	/* a resent request that is not answered either is an error */
	T_CHECK(fibload((const char *const[]){"-p", h->port_str, "-r", "1",
					      "--resend", "--json", NULL}) == 1,
		"%s%s", out, err);
	T_CHECK(tjson_num(out, NULL, "resent") == 1, "%s", out);
	T_CHECK(tjson_num(out, "errors", "read") == 1, "%s", out);
	T_CHECK(tjson_num(out, "errors", "total") == 1, "%s", out);
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
	T_CHECK(tjson_num(out, NULL, "requests") == 100, "%s", out);
	T_CHECK(atomic_load(&f->lines) == 100);
	T_CHECK(strstr(out, "\"request\":\"PING\\r\\n\""), "%s", out);
	T_CHECK(fibload((const char *const[]){"-p", g->port_str, "--request",
					      "PING\\r\\n", "--expect", "+PONG",
					      "-r", "10", NULL}) == 1);
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

int main(void)
{
	T_RUN(test_exact_n, 60);
	T_RUN(test_wrong_answer, 60);
	T_RUN(test_timeout, 60);
	T_RUN(test_hangup, 60);
	T_RUN(test_resend, 60);
	T_RUN(test_no_server, 60);
	T_RUN(test_request_mode, 60);
	T_RUN(test_ports, 60);
	T_RUN(test_short_flags, 30);
	return t_done("test_fibload_fake");
}
