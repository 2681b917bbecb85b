/*
 * many - the talk's many_server: the single-threaded server, once per
 * process.
 *
 *	              supervisor (this process: forks, watches, restarts)
 *	             /          |           \
 *	      child 0        child 1   ...   child N-1
 *	  accept->serve   accept->serve     accept->serve     (one_server each)
 *
 * By default every child listens on the same port with SO_REUSEPORT and
 * the kernel hashes each new connection to one of them. With --ports, child
 * i listens on PORT+i, as in the talk, and clients pick a port.
 *
 * Parallelism exists only across processes: a child is single-threaded, so
 * a slow request stalls every connection that child owns (nginx's known
 * drawback of hashing connections to workers), even while another child
 * sits idle. And a client that stalls, or idles, while others wait behind
 * it in the child's backlog is shed (serve_serial()), so one bad client
 * cannot hold a share of the port. The supervisor restarts a child that dies
 * and forwards SIGTERM to all of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/serve.h"
#include "../core/stop.h"
#include "model.h"

#define MANY_MAX_WORKERS 256
/* A child that dies sooner than this after its start is restarted slowly. */
#define MANY_FLAP_MS 1000
/*
 * A child sheds a client idle this long between requests once others wait
 * in its backlog (a stalled one goes after SERVE_STALL_MS): with the port
 * shared, one idle client must not hold every connection hashed to it.
 */
#define MANY_IDLE_SHED_MS 2000
/* Without pidfds (old kernels, valgrind), exits are polled this often. */
#define MANY_POLL_MS 200

struct many_child {
	pid_t pid;
	int pidfd;     /* readable when the child exits */
	uint16_t port; /* the port it serves */
	struct timespec started;
};

/* In the child: listen, tell the parent the port (or the error), serve. */
static void many_child_main(const struct server_cfg *cfg, uint16_t port,
			    int flags, int report_fd)
{
	int32_t msg;
	int lfd;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	stop_after_fork();
	lfd = net_listen(cfg->host, port, flags, SERVER_BACKLOG);
	msg = lfd < 0 ? lfd : net_local_port(lfd);
	if (write(report_fd, &msg, sizeof(msg)) != sizeof(msg) || lfd < 0)
		exit(2);
	close(report_fd);
	stop_watch(lfd);
	serve_serial(lfd, cfg, MANY_IDLE_SHED_MS);
	close(lfd);
	exit(0);
}

/* Forks one child serving port; fills c. Returns 0 or -errno. */
static int many_spawn(const struct server_cfg *cfg, struct many_child *c,
		      uint16_t port, int flags)
{
	int32_t msg = -EIO;
	int report[2];

	if (pipe2(report, O_CLOEXEC) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid == 0) {
		close(report[0]);
		many_child_main(cfg, port, flags, report[1]);
	}
	if (c->pid < 0) {
		msg = -errno;
		c->pid = 0; /* never -1: many_stop() would kill(-1, ...) */
		close(report[0]);
		close(report[1]);
		return msg;
	}
	close(report[1]);
	if (read(report[0], &msg, sizeof(msg)) != sizeof(msg))
		msg = -EIO;
	close(report[0]);
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	if (msg < 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
		log_err(msg, "cannot start a worker on %s:%u", cfg->host, port);
		return msg;
	}
	/* -1 before Linux 5.3 or under valgrind 3.19: then we poll. */
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	c->port = (uint16_t)msg;
	return 0;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 +
	       (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Reaps child c if it exited (its pidfd said so, or a poll finds it). */
static bool many_reaped(struct many_child *c, const struct pollfd *pfd,
			int *status)
{
	if (!c->pid)
		return false;
	if (c->pidfd >= 0)
		return pfd->revents && waitpid(c->pid, status, 0) == c->pid;
	return waitpid(c->pid, status, WNOHANG) == c->pid;
}

/* Child c exited with status: start a new one on the same port. */
static void many_restart(const struct server_cfg *cfg, struct many_child *c,
			 int flags, int status)
{
	metrics_process_gone(c->pid); /* its open connections are closed */
	if (c->pidfd >= 0)
		close(c->pidfd);
	log_msg("worker %d on port %u %s %d; restarting", (int)c->pid, c->port,
		WIFSIGNALED(status) ? "killed by signal" : "exited with",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	if (ms_since(&c->started) < MANY_FLAP_MS)
		poll(NULL, 0, MANY_FLAP_MS / 4);
	if (many_spawn(cfg, c, c->port, flags) < 0)
		c->pid = 0; /* its port goes unserved; the others go on */
}

/* Waits for child exits and the stop; restarts children until the stop. */
static void many_supervise(const struct server_cfg *cfg,
			   struct many_child *kids, unsigned n, int flags)
{
	struct pollfd pfd[MANY_MAX_WORKERS + 1];
	int timeout, status;

	while (!stop_requested()) {
		pfd[0] =
		    (struct pollfd){.fd = stop_eventfd(), .events = POLLIN};
		timeout = -1;
		for (unsigned i = 0; i < n; i++) {
			pfd[i + 1] = (struct pollfd){
			    .fd = kids[i].pid ? kids[i].pidfd : -1,
			    .events = POLLIN};
			if (kids[i].pid && kids[i].pidfd < 0)
				timeout = MANY_POLL_MS; /* no pidfd */
		}
		if (poll(pfd, n + 1, timeout) < 0)
			continue;
		for (unsigned i = 0; i < n && !stop_requested(); i++)
			if (many_reaped(&kids[i], &pfd[i + 1], &status))
				many_restart(cfg, &kids[i], flags, status);
	}
}

/* Forwards the stop and waits for every child. Returns 0 if all exit 0. */
static int many_stop(struct many_child *kids, unsigned n)
{
	int status, rc = 0;

	for (unsigned i = 0; i < n; i++)
		if (kids[i].pid)
			kill(kids[i].pid, SIGTERM);
	for (unsigned i = 0; i < n; i++) {
		if (!kids[i].pid)
			continue;
		while (waitpid(kids[i].pid, &status, 0) < 0 && errno == EINTR)
			;
		if (kids[i].pidfd >= 0)
			close(kids[i].pidfd);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = -ECHILD;
	}
	return rc;
}

/* With one shared port and port 0, picks the port once for everyone. */
static int many_pick_port(const struct server_cfg *cfg, int *reserve_fd)
{
	int fd = net_listen(cfg->host, 0, NET_REUSEPORT | NET_BIND_ONLY, 0);

	if (fd < 0) {
		log_err(fd, "cannot bind %s", cfg->host);
		return fd;
	}
	*reserve_fd = fd;
	return net_local_port(fd);
}

static int many_run(const struct server_cfg *cfg)
{
	static struct many_child kids[MANY_MAX_WORKERS];
	unsigned n = server_workers(cfg);
	int flags = cfg->ports ? 0 : NET_REUSEPORT;
	int port = cfg->port, reserve_fd = -1, err = 0;
	unsigned i;

	if (n > MANY_MAX_WORKERS)
		return -EINVAL; /* fibd holds --workers to max_workers */
	if (!cfg->ports && port == 0 &&
	    (port = many_pick_port(cfg, &reserve_fd)) < 0)
		return port;
	for (i = 0; i < n && !err; i++) {
		uint16_t p =
		    cfg->ports && port ? (uint16_t)(port + i) : (uint16_t)port;
		err = many_spawn(cfg, &kids[i], p, flags);
	}
	if (reserve_fd >= 0)
		close(reserve_fd);
	if (err) {
		many_stop(kids, i);
		return err;
	}
	for (i = 0; i < (cfg->ports ? n : 1); i++)
		server_announce(cfg, kids[i].port);
	many_supervise(cfg, kids, n, flags);
	return many_stop(kids, n);
}

const struct model model_many = {
    .name = "many",
    .summary = "N single-threaded processes on one port (SO_REUSEPORT) or "
	       "--ports",
    .concurrency = MODEL_SHARDED,
    .talk_server = "many_server",
    .serial_shards = true,
    .takes_ports = true,
    .forks = true,
    .max_workers = MANY_MAX_WORKERS,
    .run = many_run,
};
