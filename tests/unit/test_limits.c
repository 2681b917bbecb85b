/*
 * The limits, run against every model in the registry: --idle-timeout
 * (silent clients and slowloris), --max-conns, and running out of file
 * descriptors. Deadlines here are generous bounds that catch "never", not
 * speed: a server that closes a 1 s idle client within 30 s passes.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

#define MAX_MODELS 32

static struct tsrv_model models[MAX_MODELS];
static const struct tsrv_model *cur;
static char buf[65536];

static void case_idle_timeout(void)
{
	static const char *const args[] = {"--idle-timeout", "1", NULL};
	struct tsrv s;
	int fd;

	if (tsrv_start(&s, cur->name, args, 1))
		return;
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_ask(fd, "9\n", buf, sizeof(buf)) && strcmp(buf, "34\n") == 0);
	T_CHECK(t_wait_eof(fd), "%s: idle client never closed", cur->name);
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0);
}

/* True when the server has closed fd (EOF or RST is readable now). */
static int closed_by_peer(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, 0) != 1)
		return 0;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static void case_slowloris(void)
{
	static const char *const args[] = {"--idle-timeout", "1", NULL};
	struct tsrv s;
	int fd, closed = 0;

	if (tsrv_start(&s, cur->name, args, 1))
		return;
	fd = tsrv_connect(&s, 0);
	/* One digit every 200 ms, never a newline: 20 s at most. */
	for (int i = 0; i < 100 && !closed; i++) {
		if (send(fd, "1", 1, MSG_NOSIGNAL) != 1)
			closed = 1;
		poll(NULL, 0, 200);
		closed |= closed_by_peer(fd);
	}
	T_CHECK(closed, "%s: a slowloris client was never closed", cur->name);
	close(fd);
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_ask(fd, "9\n", buf, sizeof(buf)) && strcmp(buf, "34\n") == 0);
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0);
}

static void case_max_conns(void)
{
	static const char *const args[] = {"--max-conns", "2", "--workers", "1",
					   NULL};
	struct tsrv s;
	int a, b, c, served = 0;

	/*
	 * A serial server (single, and each process of many) holds one
	 * client at a time; the rest wait in the backlog: the limit cannot
	 * bite there.
	 */
	if (strcmp(cur->concurrency, "parallel") != 0)
		return;
	if (tsrv_start(&s, cur->name, args, 1))
		return;
	a = tsrv_connect(&s, 0);
	b = tsrv_connect(&s, 0);
	T_CHECK(t_ask(a, "3\n", buf, sizeof(buf)) && strcmp(buf, "2\n") == 0);
	T_CHECK(t_ask(b, "4\n", buf, sizeof(buf)) && strcmp(buf, "3\n") == 0);
	c = tsrv_connect(&s, 0);
	T_CHECK(t_read_lines(c, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "ERR server busy\n") == 0,
		"%s: third client got '%s'", cur->name, buf);
	T_CHECK(t_wait_eof(c));
	close(c);
	close(a);
	/* The slot frees once the server notices; retry for a while. */
	for (int i = 0; i < 100 && !served; i++) {
		c = tsrv_connect(&s, 0);
		served = t_ask(c, "5\n", buf, sizeof(buf)) &&
			 strcmp(buf, "5\n") == 0;
		close(c);
		if (!served)
			poll(NULL, 0, 50);
	}
	T_CHECK(served, "%s: a freed slot was never reused", cur->name);
	close(b);
	T_CHECK(tsrv_stop(&s, 30) == 0);
}

/* CPU seconds (user + system) a process has used so far. */
static double cpu_seconds(pid_t pid)
{
	char path[64];
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	/* Fields 14 and 15, after the parenthesised name. */
	if (fscanf(f,
		   "%*d (%*[^)]) %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
		   "%*u %lu %lu",
		   &ut, &st) != 2)
		ut = st = 0;
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void case_out_of_fds(void)
{
	enum {
		N = 120
	};
	static int fds[N];
	struct tsrv s;
	double cpu;
	int fd;

	tsrv_nofile = 64;
	if (tsrv_start(&s, cur->name, NULL, 1))
		return;
	tsrv_nofile = 0;
	for (int i = 0; i < N; i++) {
		fds[i] = tsrv_connect(&s, 0);
		if (fds[i] >= 0)
			t_send(fds[i], "6\n");
	}
	/* Hold the pressure for a second: a busy loop would burn it all. */
	cpu = cpu_seconds(s.pid);
	poll(NULL, 0, 1000);
	cpu = cpu_seconds(s.pid) - cpu;
	T_CHECK(cpu < 0.5, "%s: %.2f CPU s in 1 s out of descriptors",
		cur->name, cpu);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	poll(NULL, 0, 200);
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_ask(fd, "6\n", buf, sizeof(buf)) && strcmp(buf, "8\n") == 0,
		"%s: not serving after running out of descriptors", cur->name);
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0);
}

int main(void)
{
	int n = tsrv_list_models(models, MAX_MODELS);

	T_CHECK(n > 0, "no models listed");
	for (int i = 0; i < n; i++) {
		cur = &models[i];
		fprintf(stderr, "model %s (%s)\n", cur->name, cur->concurrency);
		TSRV_CASE(cur, case_idle_timeout, 60);
		TSRV_CASE(cur, case_slowloris, 60);
		TSRV_CASE(cur, case_max_conns, 60);
		TSRV_CASE(cur, case_out_of_fds, 60);
	}
	return t_done("test_limits");
}
