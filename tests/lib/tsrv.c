#include "tsrv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fib.h"
#include "core/net.h"
#include "../t.h"

const char *tsrv_build_dir(void)
{
	const char *b = getenv("FIBD_BUILD");

	return b && *b ? b : "build";
}

unsigned tsrv_nofile;
const char *tsrv_fibd;

/* True when name is in the comma-separated list. */
static int tsrv_listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

int tsrv_list_models(struct tsrv_model *models, int max)
{
	const char *only = getenv("FIBD_MODELS");
	static char json[65536];
	char cmd[300];
	size_t len;
	int n, kept = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s/fibd --list-models --json",
		 tsrv_build_dir());
	p = popen(cmd, "r");
	if (!p)
		return 0;
	len = fread(json, 1, sizeof(json) - 1, p);
	json[len] = '\0';
	if (pclose(p) != 0 || len == sizeof(json) - 1)
		return 0;
	n = tsrv_parse_models(json, models, max);
	for (int i = 0; i < n; i++)
		if (!only || !*only || tsrv_listed(only, models[i].name))
			models[kept++] = models[i];
	return kept;
}

void tsrv_case(const struct tsrv_model *m, const char *name, void (*fn)(void),
	       unsigned secs)
{
	char full[96];

	snprintf(full, sizeof(full), "%s/%s", m->name, name);
	t_run(full, fn, secs);
}

/* tsrv_fibd, or BUILD/fibd. */
static void tsrv_fibd_path(char *path, size_t cap)
{
	if (tsrv_fibd)
		snprintf(path, cap, "%s", tsrv_fibd);
	else
		snprintf(path, cap, "%s/fibd", tsrv_build_dir());
}

static void tsrv_exec(const char *model, const char *const *args, int logfd)
{
	char path[256];
	const char *argv[64];
	int n = 0;

	tsrv_fibd_path(path, sizeof(path));
	argv[n++] = path;
	argv[n++] = "--model";
	argv[n++] = model;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	for (int i = 0; args && args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (tsrv_nofile) {
		struct rlimit rl = {tsrv_nofile, tsrv_nofile};
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/*
	 * A group of its own, so that a server that will not stop is killed
	 * with every process it forked: a child left behind keeps the test's
	 * stdout open, and the suite's runner would wait on it for ever. And
	 * dead with the test (started from the thread that stops it).
	 */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	dup2(logfd, STDERR_FILENO);
	execv(path, (char *const *)argv);
	fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

/* SIGKILL to the server and every process it forked (its group); reaps it. */
static void tsrv_kill(const struct tsrv *s, int *status)
{
	kill(-s->pid, SIGKILL);
	waitpid(s->pid, status, 0);
}

/* Reads the ports announced so far from the log. */
static int tsrv_scan_ports(struct tsrv *s)
{
	char line[512];
	FILE *f = fopen(s->log_path, "r");

	s->nports = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f) && s->nports < TSRV_MAX_PORTS) {
		char *addr = strstr(line, "listening on ");
		char *colon;
		if (!addr)
			continue;
		addr += strlen("listening on ");
		addr[strcspn(addr, " \n")] = '\0';
		colon = strrchr(addr, ':');
		if (colon)
			s->ports[s->nports++] = (uint16_t)atoi(colon + 1);
	}
	fclose(f);
	return s->nports;
}

int tsrv_start(struct tsrv *s, const char *model, const char *const *args,
	       int nports)
{
	int logfd, status;

	memset(s, 0, sizeof(*s));
	strcpy(s->log_path, "/tmp/fibd-test-XXXXXX");
	logfd = mkstemp(s->log_path);
	if (logfd < 0)
		return -1;
	fflush(NULL);
	s->pid = fork();
	if (s->pid == 0)
		tsrv_exec(model, args, logfd);
	if (s->pid > 0)
		setpgid(s->pid, s->pid); /* as the child does: no race */
	close(logfd);
	for (int waited = 0; waited < 10000; waited += 5) {
		if (tsrv_scan_ports(s) >= nports)
			return 0;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			fprintf(stderr, "fibd --model %s exited early\n",
				model);
			s->pid = 0;
			return -1;
		}
		poll(NULL, 0, 5);
	}
	fprintf(stderr, "fibd --model %s did not announce %d port(s)\n", model,
		nports);
	tsrv_kill(s, &status);
	s->pid = 0;
	return -1;
}

/* The child of tsrv_run(): BUILD/fibd ARGS with stdout and stderr in fd. */
static void tsrv_run_exec(const char *const *args, int fd)
{
	char path[256];
	const char *argv[64];
	int n = 0;

	tsrv_fibd_path(path, sizeof(path));
	argv[n++] = path;
	for (int i = 0; args && args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	execv(path, (char *const *)argv);
	fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

int tsrv_run(const char *const *args, char *out, size_t cap)
{
	char log[] = "/tmp/fibd-run-XXXXXX";
	int fd = mkstemp(log), status = -1;
	pid_t pid, r = 0;
	ssize_t n;

	out[0] = '\0';
	if (fd < 0)
		return -1;
	unlink(log);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		tsrv_run_exec(args, fd);
	for (int waited = 0; pid > 0 && waited < 10000 && r == 0; waited += 5)
		if ((r = waitpid(pid, &status, WNOHANG)) == 0)
			poll(NULL, 0, 5);
	if (pid > 0 && r != pid) {
		fprintf(stderr, "fibd did not exit: killed\n");
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		status = -1;
	}
	n = pread(fd, out, cap - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * A server that ignored SIGTERM is a bug to find, not just a failure to
 * count: show the tail of its stderr and where each of its threads waits
 * (when gdb is installed).
 */
static void tsrv_dump_threads(const struct tsrv *s)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "tail -n 20 %s >&2; command -v gdb >/dev/null && "
		 "gdb -p %d -batch -nx -ex 'thread apply all bt' </dev/null "
		 "2>/dev/null | grep -E '^(Thread|#)' >&2",
		 s->log_path, (int)s->pid);
	if (system(cmd) < 0)
		fprintf(stderr, "cannot run the thread dump\n");
}

int tsrv_stop(struct tsrv *s, unsigned timeout_s)
{
	int status = 0;
	pid_t r = 0;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	timeout_s *= t_slow();
	for (unsigned ms = 0; ms < timeout_s * 1000; ms += 5) {
		r = waitpid(s->pid, &status, WNOHANG);
		if (r == s->pid)
			break;
		poll(NULL, 0, 5);
	}
	if (r != s->pid) {
		fprintf(stderr, "fibd (pid %d) ignored SIGTERM for %us\n",
			(int)s->pid, timeout_s);
		tsrv_dump_threads(s);
		tsrv_kill(s, &status);
		status = -1;
	} else if (WIFSIGNALED(status)) {
		fprintf(stderr, "fibd died by signal %d\n", WTERMSIG(status));
		status = -1;
	} else {
		status = WEXITSTATUS(status);
	}
	s->pid = 0;
	unlink(s->log_path);
	return status;
}

int tsrv_connect(const struct tsrv *s, int idx)
{
	struct timeval tv = {.tv_sec = TSRV_RCV_TIMEOUT_S * t_slow()};
	int fd = net_connect("127.0.0.1", s->ports[idx]);

	if (fd < 0)
		return fd;
	net_nodelay(fd);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int t_send(int fd, const char *str)
{
	return net_write_all(fd, str, strlen(str));
}

int t_send_bytes(int fd, const void *p, size_t len)
{
	return net_write_all(fd, p, len);
}

int t_read_lines(int fd, char *buf, size_t cap, int nlines)
{
	size_t len = 0;
	int lines = 0;
	ssize_t n;

	while (lines < nlines && len + 1 < cap) {
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			lines += buf[len + (size_t)i] == '\n';
		len += (size_t)n;
	}
	buf[len] = '\0';
	return lines;
}

int t_ask(int fd, const char *req, char *buf, size_t cap)
{
	if (t_send(fd, req))
		return 0;
	return t_read_lines(fd, buf, cap, 1) == 1;
}

int t_wait_eof(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

int t_nothing_pending(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 0;
}

size_t t_fill(int fd, const void *p, size_t len, size_t max)
{
	size_t sent = 0;
	int stalled = 0;

	while (stalled < 40 && sent < max) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			sent += (size_t)n;
			stalled = 0;
		} else {
			stalled++;
			poll(NULL, 0, 5);
		}
	}
	return sent;
}

void t_reset(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

void t_expect(uint64_t n, char *buf, size_t cap)
{
	long len = fib_decimal(FIB_FAST, n, buf, cap - 1);

	if (len < 0)
		len = 0;
	buf[len++] = '\n';
	buf[len] = '\0';
}
