/*
 * test_async - what the async model promises beyond the behaviour suite:
 * bounded memory when a client pipelines and never reads, replies in order
 * when a later request finishes first, many tasks parked on pool futures at
 * once, a stop that answers the tasks waiting on futures and the clients
 * still in the accept queue, the idle timeout (slowloris included),
 * --max-conns, and running out of descriptors.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

static char buf[1 << 20];

/* The server's resident set in kB, from /proc/PID/status; -1 if unknown. */
static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Sends req count times without reading anything, until all is sent or the
 * socket stays full for a second (the server stopped reading: what we want
 * to see). Returns the number of whole requests sent.
 */
static long flood(int fd, const char *req, long count)
{
	static char block[65536];
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	size_t rl = strlen(req), chunk = 0, done = 0, total, off, want;
	ssize_t n;

	while (chunk + rl <= sizeof(block)) {
		memcpy(block + chunk, req, rl);
		chunk += rl;
	}
	total = (size_t)count * rl;
	while (done < total) {
		off = done % chunk; /* block holds whole requests only */
		want = chunk - off < total - done ? chunk - off : total - done;
		n = send(fd, block + off, want, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			if (poll(&p, 1, 1000) == 0)
				break;
			continue;
		}
		if (n < 0)
			break;
		done += (size_t)n;
	}
	return (long)(done / rl);
}

/*
 * Client a pipelines and never reads; client b must still be served and the
 * server's RSS must stay near where it started. The bound: per connection
 * evconn holds at most max_line + 16 KiB of input, 64 KiB of output plus
 * (jobs_max + 1) replies, and 256 slots (see evconn.h): well under 4 MB even
 * for fib(100000)'s 20 899-byte replies with 2 workers. Unbounded, a would
 * cost 2 bytes x 200 000 (small) or 21 kB x 20 000 = 418 MB (big). We allow
 * 16 MB over the start for allocator slack and thread arenas.
 */
static void noread(const char *const *args, const char *req, long count,
		   const char *breq, const char *bwant)
{
	struct tsrv s;
	long base, peak, now, sent;
	int a, b;

	if (tsrv_start(&s, "async", args, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	base = rss_kb(s.pid);
	a = tsrv_connect(&s, 0);
	sent = flood(a, req, count);
	T_CHECK(sent > 0, "nothing sent");
	peak = rss_kb(s.pid);
	b = tsrv_connect(&s, 0);
	T_CHECK(t_ask(b, breq, buf, sizeof(buf)) && strcmp(buf, bwant) == 0,
		"client b not served while a does not read: '%.40s'", buf);
	now = rss_kb(s.pid);
	peak = now > peak ? now : peak;
	T_CHECK(base > 0 && peak - base < 16 * 1024,
		"RSS grew from %ld kB to %ld kB after %ld requests", base, peak,
		sent);
	fprintf(stderr, "ok   noread %.*s x %ld: RSS %ld -> %ld kB\n",
		(int)strcspn(req, "\n"), req, sent, base, peak);
	close(b);
	t_reset(a);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

static void case_noread_small(void)
{
	noread(NULL, "1\n", 200000, "20\n", "6765\n");
}

static void case_noread_big(void)
{
	static const char *const args[] = {"--algo", "fast", "--workers", "2",
					   NULL};

	noread(args, "100000\n", 200000, "93\n", "12200160415121876738\n");
}

/* After the flood stops, every reply arrives, in order, none lost. */
static void case_noread_then_read(void)
{
	struct tsrv s;
	long sent, got = 0;
	int a, ok = 1;

	if (tsrv_start(&s, "async", NULL, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	a = tsrv_connect(&s, 0);
	sent = flood(a, "3\n", 200000);
	shutdown(a, SHUT_WR);
	for (;;) {
		ssize_t n = read(a, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			/* Replies alternate '2' and '\n'. */
			ok &= buf[i] == ((got * 2 + i) % 2 ? '\n' : '2');
		}
		got += n;
	}
	T_CHECK(ok, "a reply was not '2'");
	T_CHECK(got == sent * 2, "sent %ld requests, got %ld bytes", sent, got);
	close(a);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

/* fib(35) goes to the pool, everything after it finishes first. */
static void case_order(void)
{
	static const char *const args[] = {"--workers", "2", NULL};
	struct tsrv s;
	int fd;

	if (tsrv_start(&s, "async", args, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, "35\n25\n1\nabc\n19\n") == 0);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 5) == 5);
	T_CHECK(strcmp(buf, "9227465\n75025\n1\nERR not a number\n4181\n") == 0,
		"got '%s'", buf);
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

/*
 * A pipeline of requests cheap enough for the loop spills to the pool once
 * its inline budget is spent; the replies still come back in order.
 */
static void case_inline_spill(void)
{
	static char req[3 * 2000 + 8];
	struct tsrv s;
	int fd, ok = 1;
	char *p = buf;

	for (int i = 0; i < 2000; i++)
		memcpy(req + 3 * i, i % 2 ? "17\n" : "18\n", 3);
	strcpy(req + 3 * 2000, "5\n");
	if (tsrv_start(&s, "async", NULL, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, req) == 0);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 2001) == 2001);
	for (int i = 0; i < 2000 && ok; i++, p += strlen(p) + 1) {
		ok = strncmp(p, i % 2 ? "1597\n" : "2584\n", 5) == 0;
		p[4] = '\0';
	}
	T_CHECK(ok && strcmp(p, "5\n") == 0, "reply order broken near '%.12s'",
		p);
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

/*
 * Many connections pipeline requests that all go to the pool (above the
 * inline thresholds), so that every task is parked on a future at once:
 * each connection gets its own replies, in its order.
 */
static void case_many_futures(void)
{
	enum {
		NCONNS = 64
	};
	static const char *const args[] = {"--workers", "2", NULL};
	char want[128];
	struct tsrv s;
	int fds[NCONNS], ok = 0;

	if (tsrv_start(&s, "async", args, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	for (int i = 0; i < NCONNS; i++) {
		char req[64];

		fds[i] = tsrv_connect(&s, 0);
		snprintf(req, sizeof(req), "%d\n%d\n%d\n", 20 + i % 8,
			 27 - i % 8, 19);
		T_CHECK(t_send(fds[i], req) == 0);
	}
	for (int i = 0; i < NCONNS; i++) {
		char a[32], b[32], c[32];

		t_expect(20 + i % 8, a, sizeof(a));
		t_expect(27 - i % 8, b, sizeof(b));
		t_expect(19, c, sizeof(c));
		snprintf(want, sizeof(want), "%s%s%s", a, b, c);
		ok += t_read_lines(fds[i], buf, sizeof(buf), 3) == 3 &&
		      strcmp(buf, want) == 0;
		close(fds[i]);
	}
	T_CHECK(ok == NCONNS, "%d of %d connections got their replies", ok,
		NCONNS);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

/*
 * A stop while tasks wait on futures: each gets its reply, then EOF, and
 * the server exits 0. Clients that connected and sent a request while the
 * server was frozen (SIGSTOP) are still in its accept queue when it takes
 * the stop: they are accepted and answered too.
 */
static void case_stop_answers(void)
{
	enum {
		NBUSY = 4,
		NQUEUED = 3
	};
	static const char *const args[] = {"--workers", "2", NULL};
	int busy[NBUSY], queued[NQUEUED];
	struct tsrv s;

	if (tsrv_start(&s, "async", args, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	for (int i = 0; i < NBUSY; i++) {
		busy[i] = tsrv_connect(&s, 0);
		T_CHECK(t_send(busy[i], "38\n") == 0);
	}
	usleep(100000); /* read, and on the pool: fib(38) takes longer */
	kill(s.pid, SIGSTOP);
	for (int i = 0; i < NQUEUED; i++) {
		queued[i] = tsrv_connect(&s, 0);
		T_CHECK(t_send(queued[i], "10\n") == 0);
	}
	kill(s.pid, SIGTERM);
	kill(s.pid, SIGCONT);
	for (int i = 0; i < NBUSY; i++) {
		T_CHECK(t_read_lines(busy[i], buf, sizeof(buf), 1) == 1 &&
			    strcmp(buf, "39088169\n") == 0,
			"a task waiting on its future got '%s' at the stop",
			buf);
		T_CHECK(t_wait_eof(busy[i]), "not closed after the stop");
		close(busy[i]);
	}
	for (int i = 0; i < NQUEUED; i++) {
		T_CHECK(t_read_lines(queued[i], buf, sizeof(buf), 1) == 1 &&
			    strcmp(buf, "55\n") == 0,
			"a client in the accept queue got '%s' at the stop",
			buf);
		close(queued[i]);
	}
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

/*
 * A slowloris never finishes a line: --idle-timeout, shorter than the
 * header timeout, is its request's limit, and it is told so before the
 * close. An idle client never sends a line, and is closed without a word.
 */
static void case_idle_timeout(void)
{
	static const char *const args[] = {"--idle-timeout", "0.3", NULL};
	struct tsrv s;
	int slow, idle, busy;

	if (tsrv_start(&s, "async", args, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	idle = tsrv_connect(&s, 0);
	slow = tsrv_connect(&s, 0);
	busy = tsrv_connect(&s, 0);
	T_CHECK(t_send(busy, "40\n") == 0); /* longer than the timeout */
	for (int i = 0; i < 10; i++) {
		if (send(slow, "1", 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(100000);
	}
	T_CHECK(t_read_lines(slow, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "ERR request timeout\n") == 0,
		"slowloris told '%s'", buf);
	T_CHECK(t_wait_eof(slow), "slowloris not closed");
	T_CHECK(t_wait_eof(idle), "idle client not closed");
	T_CHECK(t_read_lines(busy, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "102334155\n") == 0,
		"a client waiting for its reply was cut off: '%s'", buf);
	close(idle);
	close(slow);
	close(busy);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

/*
 * A fresh client asks req. The server may meet it before it has seen the
 * earlier clients close, and then rightly says busy: retry a while.
 */
static void ask_fresh(struct tsrv *s, const char *req)
{
	int fd;

	for (int i = 0; i < 100; i++) {
		fd = tsrv_connect(s, 0);
		if (!t_ask(fd, req, buf, sizeof(buf)) ||
		    strcmp(buf, "ERR server busy\n") != 0)
			break;
		close(fd);
		usleep(20000);
	}
	close(fd);
}

static void case_max_conns(void)
{
	static const char *const args[] = {"--max-conns", "2", NULL};
	struct tsrv s;
	int a, b, c;

	if (tsrv_start(&s, "async", args, 1)) {
		T_CHECK(0, "async did not start");
		return;
	}
	a = tsrv_connect(&s, 0);
	b = tsrv_connect(&s, 0);
	T_CHECK(t_ask(a, "5\n", buf, sizeof(buf)) && !strcmp(buf, "5\n"));
	T_CHECK(t_ask(b, "6\n", buf, sizeof(buf)) && !strcmp(buf, "8\n"));
	c = tsrv_connect(&s, 0);
	T_CHECK(t_read_lines(c, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "ERR server busy\n") == 0,
		"third client got '%s'", buf);
	T_CHECK(t_wait_eof(c), "busy client not closed");
	close(c);
	close(a);
	ask_fresh(&s, "7\n");
	T_CHECK(strcmp(buf, "13\n") == 0,
		"a slot freed, but the next client got '%s'", buf);
	close(b);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

/* With ulimit -n 24, most of 40 clients find no descriptor: told busy. */
static void case_emfile(void)
{
	enum {
		NCLIENTS = 40
	};
	struct rlimit old, low;
	struct tsrv s;
	int fds[NCLIENTS], served = 0, busy = 0, err;

	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = 24;
	setrlimit(RLIMIT_NOFILE, &low); /* inherited by the server only */
	err = tsrv_start(&s, "async", NULL, 1);
	setrlimit(RLIMIT_NOFILE, &old);
	if (err) {
		T_CHECK(0, "async did not start");
		return;
	}
	for (int i = 0; i < NCLIENTS; i++) {
		fds[i] = tsrv_connect(&s, 0);
		if (!t_ask(fds[i], "10\n", buf, sizeof(buf)))
			continue;
		served += strcmp(buf, "55\n") == 0;
		busy += strcmp(buf, "ERR server busy\n") == 0;
	}
	T_CHECK(served > 0 && served + busy == NCLIENTS,
		"served %d, busy %d of %d", served, busy, NCLIENTS);
	fprintf(stderr, "ok   emfile: %d served, %d told busy\n", served, busy);
	for (int i = 0; i < NCLIENTS; i++)
		close(fds[i]);
	ask_fresh(&s, "11\n");
	T_CHECK(strcmp(buf, "89\n") == 0, "after the storm: '%s'", buf);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit status");
}

int main(void)
{
	T_RUN(case_noread_small, 120);
	T_RUN(case_noread_big, 120);
	T_RUN(case_noread_then_read, 120);
	T_RUN(case_order, 60);
	T_RUN(case_inline_spill, 60);
	T_RUN(case_many_futures, 60);
	T_RUN(case_stop_answers, 60);
	T_RUN(case_idle_timeout, 60);
	T_RUN(case_max_conns, 60);
	T_RUN(case_emfile, 60);
	return t_done("test_async");
}
