/*
 * procpool's fault cases: a worker process killed with -9, busy or idle,
 * and the server itself killed. After each, requests on the same and on new
 * connections succeed, the dead worker is reaped (no zombie) and replaced.
 * The workers are found as the server's children in /proc; waits poll for a
 * state with a deadline and never assert a speed.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

#define MAX_WORKERS 8
#define WAIT_MS	    20000
/*
 * A request that keeps a worker busy for a while: naive fib(45), ~1.5 s.
 * TSan makes naive fib about 10 times slower, so there fib(40) does.
 */
#ifdef __SANITIZE_THREAD__
#define BUSY_REQ   "40\n"
#define BUSY_REPLY "102334155\n"
#else
#define BUSY_REQ   "45\n"
#define BUSY_REPLY "1134903170\n"
#endif

static char buf[4096];

/* The state letter of pid (R, S, Z...) and its parent, or 0 if it is gone. */
static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], line[512], *p;
	char state = 0;
	int parent = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	/* "pid (comm) S ppid ...": comm may hold spaces and parentheses. */
	if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')))
		sscanf(p + 1, " %c %d", &state, &parent);
	fclose(f);
	if (ppid)
		*ppid = parent;
	return state;
}

/* The server's child processes (its workers). Returns how many. */
static int workers_of(pid_t server, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t pid, ppid;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		pid = (pid_t)atoi(e->d_name);
		if (pid > 0 && proc_state(pid, &ppid) && ppid == server)
			pids[n++] = pid;
	}
	closedir(d);
	return n;
}

/* Waits until want workers are running (state R); returns one, or 0. */
static pid_t wait_running(pid_t server, int want)
{
	pid_t pids[MAX_WORKERS], busy = 0;
	int running, n;

	for (int ms = 0; ms < WAIT_MS; ms += 5) {
		n = workers_of(server, pids, MAX_WORKERS);
		running = 0;
		for (int i = 0; i < n; i++) {
			if (proc_state(pids[i], NULL) == 'R') {
				busy = pids[i];
				running++;
			}
		}
		if (running >= want)
			return busy;
		poll(NULL, 0, 5);
	}
	return 0;
}

/*
 * Waits until the server has want workers, each live (no zombie), or with
 * asleep, each asleep (state S: blocked on its socket, waiting for a job).
 * A worker still starting (exec, the loader) also shows R, so only after
 * the asleep wait does R mean "computing a request".
 */
static int wait_pool(pid_t server, int want, bool asleep)
{
	pid_t pids[MAX_WORKERS];
	int n, good;
	char st;

	for (int ms = 0; ms < WAIT_MS; ms += 5) {
		n = workers_of(server, pids, MAX_WORKERS);
		good = 0;
		for (int i = 0; i < n; i++) {
			st = proc_state(pids[i], NULL);
			good += asleep ? st == 'S' : st != 'Z';
		}
		if (n == want && good == want)
			return 1;
		poll(NULL, 0, 5);
	}
	return 0;
}

static int wait_pool_whole(pid_t server, int want)
{
	return wait_pool(server, want, false);
}

static int wait_pool_idle(pid_t server, int want)
{
	return wait_pool(server, want, true);
}

/* Waits until pid is gone: its parent has reaped it. */
static int wait_gone(pid_t pid)
{
	for (int ms = 0; ms < WAIT_MS; ms += 5) {
		if (proc_state(pid, NULL) == 0)
			return 1;
		poll(NULL, 0, 5);
	}
	return 0;
}

/* Waits until pid is gone or a zombie (of init, once its parent died). */
static int wait_dead(pid_t pid)
{
	char st;

	for (int ms = 0; ms < WAIT_MS; ms += 5) {
		st = proc_state(pid, NULL);
		if (st == 0 || st == 'Z')
			return 1;
		poll(NULL, 0, 5);
	}
	return 0;
}

static void expect_line(int fd, const char *req, const char *want)
{
	T_CHECK(t_ask(fd, req, buf, sizeof(buf)), "no reply to %s", req);
	T_CHECK(strcmp(buf, want) == 0, "asked %s got '%s' want '%s'", req, buf,
		want);
}

/*
 * Two clients each have a long fib computing on one of the two workers; one
 * worker is killed. Its client gets ERR, the other its answer, and both
 * connections, a new one and a full pool go on.
 */
static void case_kill_busy_worker(void)
{
	static const char *const args[] = {"--workers", "2", NULL};
	struct tsrv s;
	pid_t victim;
	int a, b, c, errs = 0, oks = 0;

	if (tsrv_start(&s, "procpool", args, 1) != 0) {
		T_CHECK(0, "procpool did not start");
		return;
	}
	a = tsrv_connect(&s, 0);
	b = tsrv_connect(&s, 0);
	expect_line(a, "1\n", "1\n");
	/*
	 * Killing a worker that is still starting fails no request (apply's
	 * send fails and it retries elsewhere), so the victim must be one
	 * that took a job: both idle first, then both running.
	 */
	T_CHECK(wait_pool_idle(s.pid, 2), "the workers never both waited");
	T_CHECK(t_send(a, BUSY_REQ) == 0 && t_send(b, BUSY_REQ) == 0);
	victim = wait_running(s.pid, 2);
	T_CHECK(victim > 0, "the workers never both ran");
	T_CHECK(victim > 0 && kill(victim, SIGKILL) == 0);
	for (int i = 0; i < 2; i++) {
		T_CHECK(t_read_lines(i ? b : a, buf, sizeof(buf), 1) == 1);
		errs += strcmp(buf, "ERR internal error\n") == 0;
		oks += strcmp(buf, BUSY_REPLY) == 0;
	}
	T_CHECK(errs == 1 && oks == 1, "%d ERR and %d answers, want 1 and 1",
		errs, oks);
	expect_line(a, "20\n", "6765\n");
	expect_line(b, "21\n", "10946\n");
	c = tsrv_connect(&s, 0);
	expect_line(c, "22\n", "17711\n");
	T_CHECK(wait_pool_whole(s.pid, 2), "the pool was not made whole");
	T_CHECK(proc_state(victim, NULL) == 0,
		"the dead worker was not reaped");
	close(a);
	close(b);
	close(c);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit after a worker died");
}

/*
 * A worker killed while idle: the keeper notices at once (no zombie waits
 * for the next request), and nobody's request fails.
 */
static void case_kill_idle_worker(void)
{
	static const char *const args[] = {"--workers", "1", NULL};
	struct tsrv s;
	pid_t pids[MAX_WORKERS];
	int fd;

	if (tsrv_start(&s, "procpool", args, 1) != 0) {
		T_CHECK(0, "procpool did not start");
		return;
	}
	fd = tsrv_connect(&s, 0);
	expect_line(fd, "10\n", "55\n");
	T_CHECK(workers_of(s.pid, pids, MAX_WORKERS) == 1);
	T_CHECK(kill(pids[0], SIGKILL) == 0);
	T_CHECK(wait_gone(pids[0]), "the idle dead worker was not reaped");
	T_CHECK(wait_pool_whole(s.pid, 1), "the pool was not made whole");
	expect_line(fd, "12\n", "144\n");
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit after a worker died");
}

/* The server killed with -9: its workers, busy or idle, must not linger. */
static void case_server_killed(void)
{
	static const char *const args[] = {"--workers", "2", NULL};
	struct tsrv s;
	pid_t pids[MAX_WORKERS];
	int fd, n, status;

	if (tsrv_start(&s, "procpool", args, 1) != 0) {
		T_CHECK(0, "procpool did not start");
		return;
	}
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, BUSY_REQ) == 0);
	T_CHECK(wait_running(s.pid, 1) > 0, "no worker ran");
	n = workers_of(s.pid, pids, MAX_WORKERS);
	T_CHECK(n == 2, "%d workers, want 2", n);
	kill(s.pid, SIGKILL);
	waitpid(s.pid, &status, 0);
	for (int i = 0; i < n; i++)
		T_CHECK(wait_dead(pids[i]), "worker %d outlived the server",
			(int)pids[i]);
	T_CHECK(t_wait_eof(fd));
	close(fd);
	unlink(s.log_path);
}

int main(void)
{
	T_RUN(case_kill_busy_worker, 120);
	T_RUN(case_kill_idle_worker, 60);
	T_RUN(case_server_killed, 60);
	return t_done("test_procpool");
}
