/*
 * isolate's fault case: a connection whose compute worker cannot start is
 * turned away busy in its own protocol, a 503 with Retry-After for an HTTP
 * client and "ERR server busy" for a fib/1 one, and the server goes on.
 *
 * The worker is made to fail with RLIMIT_NPROC: the server may start the
 * connection's thread and not one task more. That limit counts every task
 * of the server's user, so the case runs as a user of its own (the suite
 * runs as root; as anyone else the case is skipped), and it checks the
 * count first: with room for one more task, a client is served.
 */
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

#define WAIT_MS 20000

static char buf[4096];

/* Threads: of the tasks whose real uid is uid, over all of /proc. */
static unsigned tasks_of_user(uid_t uid)
{
	char path[300], line[256];
	unsigned total = 0, ruid, threads;
	struct dirent *e;
	DIR *d = opendir("/proc");
	FILE *f;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		ruid = threads = 0;
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "Uid: %u", &ruid);
			sscanf(line, "Threads: %u", &threads);
		}
		fclose(f);
		if (ruid == uid)
			total += threads;
	}
	if (d)
		closedir(d);
	return total;
}

/* Waits until uid has want tasks. Returns 1, or 0 at the deadline. */
static int wait_tasks(uid_t uid, unsigned want)
{
	for (int ms = 0; ms < WAIT_MS; ms += 10) {
		if (tasks_of_user(uid) == want)
			return 1;
		usleep(10 * 1000);
	}
	return 0;
}

static char fibd_copy[64];

/*
 * Copies BUILD/fibd where uid may run it: the checkout may be in a folder
 * only root can enter (/root, a 0700 temporary folder). 0 or -1.
 */
static int copy_fibd_for(uid_t uid)
{
	static char dir[] = "/tmp/fibd-isolate-XXXXXX";
	char from[256], cmd[600];

	snprintf(from, sizeof(from), "%s/fibd", tsrv_build_dir());
	if (!mkdtemp(dir))
		return -1;
	snprintf(fibd_copy, sizeof(fibd_copy), "%s/fibd", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 755 '%s' '%s'", from,
		 fibd_copy, dir, fibd_copy);
	if (system(cmd) != 0 || chown(dir, uid, uid) ||
	    chown(fibd_copy, uid, uid))
		return -1;
	tsrv_fibd = fibd_copy;
	return 0;
}

/*
 * Drops root for a uid no other process has, so that RLIMIT_NPROC counts
 * this test and its server alone, with a copy of fibd that uid may run.
 * Returns the uid, or 0 when not root.
 */
static uid_t become_own_user(void)
{
	uid_t uid = 200000 + (uid_t)getpid() % 100000;

	if (geteuid() != 0 || copy_fibd_for(uid))
		return 0;
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
	    setresuid(uid, uid, uid))
		return 0;
	return uid;
}

/*
 * Sets s's soft RLIMIT_NPROC to max tasks, or back to the hard limit when
 * max is 0. Returns 0 or -1.
 */
static int limit_tasks(const struct tsrv *s, rlim_t max)
{
	struct rlimit rl;

	if (prlimit(s->pid, RLIMIT_NPROC, NULL, &rl))
		return -1;
	rl.rlim_cur = max ? max : rl.rlim_max;
	return prlimit(s->pid, RLIMIT_NPROC, &rl, NULL);
}

/* Reads what the server sends until it closes the connection. */
static void read_to_eof(int fd)
{
	t_read_lines(fd, buf, sizeof(buf), INT_MAX);
}

static void case_worker_fails_to_start(void)
{
	uid_t uid = become_own_user();
	unsigned idle;
	struct tsrv s;
	int fd;

	if (!uid) {
		fprintf(stderr, "skip case_worker_fails_to_start: not root\n");
		return;
	}
	if (tsrv_start(&s, "isolate", NULL, 1) != 0) {
		T_CHECK(0, "isolate did not start");
		return;
	}
	idle = tasks_of_user(uid);
	/* Room for the connection's thread and its worker: served. */
	T_CHECK(limit_tasks(&s, idle + 2) == 0);
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_ask(fd, "20\n", buf, sizeof(buf)) &&
		    strcmp(buf, "6765\n") == 0,
		"with room for the worker: '%s'", buf);
	close(fd);
	T_CHECK(wait_tasks(uid, idle), "the connection's threads lingered");

	/* Room for the connection's thread only: its worker fails. */
	T_CHECK(limit_tasks(&s, idle + 1) == 0);
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, "GET /fib/20 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
	read_to_eof(fd);
	T_CHECK(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0 &&
		    strstr(buf, "\r\nRetry-After: "),
		"an HTTP client without a worker got '%s'", buf);
	close(fd);
	T_CHECK(wait_tasks(uid, idle), "the connection's thread lingered");
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_send(fd, "20\n") == 0);
	read_to_eof(fd);
	T_CHECK(strcmp(buf, "ERR server busy\n") == 0,
		"a fib/1 client without a worker got '%s'", buf);
	close(fd);
	T_CHECK(wait_tasks(uid, idle), "the connection's thread lingered");

	/* The limit lifted, the server serves again. */
	T_CHECK(limit_tasks(&s, 0) == 0);
	fd = tsrv_connect(&s, 0);
	T_CHECK(t_ask(fd, "20\n", buf, sizeof(buf)) &&
		    strcmp(buf, "6765\n") == 0,
		"after the limit was lifted: '%s'", buf);
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0, "bad exit");
	/* Ours: uid owns the copy and its folder. */
	unlink(fibd_copy);
	*strrchr(fibd_copy, '/') = '\0';
	rmdir(fibd_copy);
}

int main(void)
{
	T_RUN(case_worker_fails_to_start, 120);
	return t_done("test_isolate");
}
