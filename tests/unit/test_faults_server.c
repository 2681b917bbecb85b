/*
 * Fault injection on the server's side, run against every model in the
 * registry: a stop under load, SIGTERM and SIGHUP with clients queued,
 * a --drain and one cut short, and a child process killed. Everything
 * sent before a stop is answered, and the server exits 0.
 * test_faults.c has the clients' faults.
 */
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/tfaults.h"
#include "../lib/tsrv.h"
#include "../t.h"

static const struct tsrv_model *cur;
static char buf[1 << 20];

static int is_parallel(void)
{
	return strcmp(cur->concurrency, "parallel") == 0;
}

/* Requests fully sent before SIGTERM are all answered; exit 0. */
static void case_stop_under_load(void)
{
	enum {
		N = 100
	};
	static int fds[N];
	int conns = is_parallel() ? N : 1, per = N / conns, ok = 0;
	struct tsrv s;

	if (tsrv_start(&s, cur->name, NULL, 1))
		return;
	for (int i = 0; i < conns; i++) {
		fds[i] = tsrv_connect(&s, 0);
		T_CHECK(t_ask(fds[i], "1\n", buf, sizeof(buf)));
	}
	for (int i = 0; i < conns; i++)
		for (int k = 0; k < per; k++)
			t_send(fds[i], "24\n");
	T_CHECK(tsrv_stop(&s, 60) == 0, "%s: bad exit under load", cur->name);
	/* Count the right answers: a lost or a wrong one both fail. */
	for (int i = 0; i < conns; i++) {
		int lines = t_read_lines(fds[i], buf, sizeof(buf), per);
		close(fds[i]);
		for (char *p = buf; lines-- > 0 && *p; p = strchr(p, '\n') + 1)
			ok += strncmp(p, "46368\n", 6) == 0;
	}
	T_CHECK(ok == N, "%s: %d of %d in-flight requests answered right",
		cur->name, ok, N);
}

/*
 * Waits up to secs for s to exit after a signal the test sent. Returns its
 * exit status, or -1 when it died by a signal or had to be killed.
 */
static int wait_exit(struct tsrv *s, unsigned secs)
{
	int status = 0;

	for (unsigned ms = 0; ms < secs * 1000; ms += 5) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			unlink(s->log_path);
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		poll(NULL, 0, 5);
	}
	tsrv_stop(s, 5);
	return -1;
}

/*
 * 50 clients each send "32\n" and the stop comes 20 ms later, while most
 * of them still sit in the listener's accept queue (a serial model has
 * taken one; a threaded one may not have reached them all). Everything
 * sent before a stop is answered: the queued connections are taken and
 * served before the listener closes (closing it would reset them).
 */
static void stop_with_queued(int sig)
{
	enum {
		N = 50
	};
	static int fds[N];
	int ok = 0, status;
	struct tsrv s;

	if (tsrv_start(&s, cur->name, NULL, 1))
		return;
	for (int i = 0; i < N; i++) {
		fds[i] = tsrv_connect(&s, 0);
		T_CHECK(fds[i] >= 0 && t_send(fds[i], "32\n") == 0);
	}
	poll(NULL, 0, 20);
	kill(s.pid, sig);
	status = wait_exit(&s, 120);
	for (int i = 0; i < N; i++) {
		ok += fds[i] >= 0 &&
		      t_read_lines(fds[i], buf, sizeof(buf), 1) == 1 &&
		      strcmp(buf, "2178309\n") == 0;
		if (fds[i] >= 0)
			close(fds[i]);
	}
	T_CHECK(ok == N, "%s: %d of %d queued requests answered after %s",
		cur->name, ok, N, strsignal(sig));
	T_CHECK(status == 0, "%s: exit %d after %s", cur->name, status,
		strsignal(sig));
}

static void case_stop_with_queued(void)
{
	stop_with_queued(SIGTERM);
}

/* SIGHUP stops as SIGTERM does. */
static void case_sighup_with_queued(void)
{
	stop_with_queued(SIGHUP);
}

/*
 * --drain: after SIGTERM the server keeps its listener and serves new
 * clients for the drain's length (3 s; the client comes 300 ms in), then
 * exits 0 on its own.
 */
static void case_drain(void)
{
	static const char *const args[] = {"--drain", "3", NULL};
	struct tsrv s;
	int fd;

	if (tsrv_start(&s, cur->name, args, 1))
		return;
	kill(s.pid, SIGTERM);
	poll(NULL, 0, 300);
	fd = tsrv_connect(&s, 0);
	T_CHECK(fd >= 0 && t_ask(fd, "20\n", buf, sizeof(buf)) &&
		    strcmp(buf, "6765\n") == 0,
		"%s: a new client during the drain got '%s'", cur->name,
		fd >= 0 ? buf : "no connection");
	if (fd >= 0)
		close(fd);
	T_CHECK(wait_exit(&s, 60) == 0, "%s: bad exit after the drain",
		cur->name);
}

/*
 * A second signal during the drain stops at once: a drain of 600 s ends
 * well within the 60 s this waits.
 */
static void case_drain_cut_short(void)
{
	static const char *const args[] = {"--drain", "600", NULL};
	struct tsrv s;
	int fd;

	if (tsrv_start(&s, cur->name, args, 1))
		return;
	kill(s.pid, SIGTERM);
	poll(NULL, 0, 200);
	fd = tsrv_connect(&s, 0);
	T_CHECK(fd >= 0 && t_ask(fd, "10\n", buf, sizeof(buf)) &&
		    strcmp(buf, "55\n") == 0,
		"%s: a client during the drain got '%s'", cur->name, buf);
	if (fd >= 0)
		close(fd);
	kill(s.pid, SIGTERM);
	T_CHECK(wait_exit(&s, 60) == 0,
		"%s: a second SIGTERM did not end the drain", cur->name);
}

/* The pids of s's child processes (procpool workers, many's children). */
static int children_of(pid_t pid, pid_t *out, int max)
{
	char path[300], list[4096];
	int n = 0;
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		FILE *f;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/children",
			 (int)pid, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		for (char *tok = fgets(list, sizeof(list), f)
				     ? strtok(list, " ")
				     : NULL;
		     tok && n < max; tok = strtok(NULL, " \n"))
			out[n++] = atoi(tok);
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

static void case_child_killed(void)
{
	pid_t kids[64];
	struct tsrv s;
	int n;

	if (tsrv_start(&s, cur->name, NULL, 1))
		return;
	n = children_of(s.pid, kids, 64);
	if (n == 0) { /* a one-process model: nothing to kill */
		tfaults_serves_then_stops(cur, &s);
		return;
	}
	kill(kids[0], SIGKILL);
	poll(NULL, 0, 300);
	for (int i = 0; i < 10; i++) {
		int fd = tsrv_connect(&s, 0);
		T_CHECK(t_ask(fd, "21\n", buf, sizeof(buf)) &&
			    strcmp(buf, "10946\n") == 0,
			"%s: client %d after a child died: '%s'", cur->name, i,
			buf);
		close(fd);
	}
	tfaults_serves_then_stops(cur, &s);
}

static const struct tfaults_case cases[] = {
    TFAULTS_CASE(case_stop_under_load, 90),
    TFAULTS_CASE(case_child_killed, 60),
    TFAULTS_CASE(case_stop_with_queued, 150),
    TFAULTS_CASE(case_sighup_with_queued, 150),
    TFAULTS_CASE(case_drain, 60),
    TFAULTS_CASE(case_drain_cut_short, 60),
};

int main(void)
{
	return tfaults_main("test_faults_server", &cur, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
