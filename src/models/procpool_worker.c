/*
 * procpool_worker - a worker process of the procpool model: how the server
 * starts one, the frames both ends exchange, how the server reaps one, and
 * the worker's own main, the far end of apply().
 *
 *	server (procpool.c)                  worker (this file)
 *	apply(n): write u64 n    --------->  read n
 *	          read the reply <---------  fib(n), write u32 len + bytes
 *
 * Workers start from a clean image: each is our own binary exec'd as
 * "fibd --child procpool ALGO MAX_N ENGINE" with its socket on PROCPOOL_FD,
 * so spawning one from the threaded server (posix_spawn, a vfork and an
 * exec) never runs malloc in a copy of a threaded process. The binary is a
 * descriptor opened on /proc/self/exe at start and exec'd as
 * /proc/self/fd/N: a worker respawned after the file was replaced (an
 * upgrade) still runs the server's own image, and valgrind, whose
 * /proc/self/exe is itself, can follow it (it hands out the client's
 * binary for that open). A worker answers until the server closes the
 * socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/net.h"
#include "../core/opt.h"
#include "../core/proto.h"
#include "../core/pyengine.h"
#include "model.h"
#include "procpool.h"

extern char **environ;

void procpool_image_open(struct procpool_image *img,
			 const struct proto_limits *lim)
{
	img->lim = *lim;
	img->exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (img->exe_fd >= 0)
		snprintf(img->exe_path, sizeof(img->exe_path),
			 "/proc/self/fd/%d", img->exe_fd);
	else
		strcpy(img->exe_path, "/proc/self/exe");
}

void procpool_image_close(struct procpool_image *img)
{
	if (img->exe_fd >= 0)
		close(img->exe_fd);
	img->exe_fd = -1;
}

int procpool_spawn(const struct procpool_image *img, struct procpool_proc *proc)
{
	char max_n[24];
	char *argv[] = {"fibd",	    MODEL_CHILD_ARG,
			"procpool", (char *)fib_algo_name(img->lim.algo),
			max_n,	    (char *)fib_engine_name(img->lim.engine),
			NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	int sv[2], err;

	snprintf(max_n, sizeof(max_n), "%llu",
		 (unsigned long long)img->lim.max_n);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	sigemptyset(&none);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], PROCPOOL_FD);
	err = posix_spawn(&proc->pid, img->exe_path, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (err) {
		close(sv[0]);
		proc->pid = 0;
		return -err;
	}
	proc->fd = sv[0];
	/* -1 on old kernels: EOF still tells a worker's death. */
	proc->pidfd = pidfd_open(proc->pid, 0);
	return 0;
}

void procpool_hang_up(struct procpool_proc *proc)
{
	if (proc->fd >= 0)
		close(proc->fd);
	proc->fd = -1;
}

int procpool_reap(struct procpool_proc *proc, int sig)
{
	int status = -1;

	procpool_hang_up(proc);
	if (proc->pidfd >= 0)
		close(proc->pidfd);
	proc->fd = proc->pidfd = -1;
	if (proc->pid <= 0)
		return -1;
	if (sig)
		kill(proc->pid, sig);
	while (waitpid(proc->pid, &status, 0) < 0 && errno == EINTR)
		;
	proc->pid = 0;
	return status;
}

int procpool_respawn(const struct procpool_image *img,
		     struct procpool_proc *proc)
{
	pid_t pid = proc->pid;
	int status = procpool_reap(proc, SIGKILL), err;

	if (pid > 0 && WIFSIGNALED(status))
		log_msg("procpool: worker %d died by signal %d; respawning",
			(int)pid, WTERMSIG(status));
	else if (pid > 0)
		log_msg("procpool: worker %d failed; respawning", (int)pid);
	err = procpool_spawn(img, proc);
	if (err)
		log_err(err, "procpool: cannot respawn a worker");
	return err;
}

/*
 * Reads at least min and at most cap bytes. Returns the count, -EPIPE at
 * EOF (the other side is gone), or -errno.
 */
static ssize_t procpool_read(int fd, void *buf, size_t min, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	while (got < min) {
		n = read(fd, (char *)buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int procpool_recv_reply(int fd, const struct proto_limits *lim, struct reply *r)
{
	char head[sizeof(uint32_t) + REPLY_INLINE_CAP];
	size_t max = fib_digits_bound(lim->max_n) + 128, have;
	ssize_t got = procpool_read(fd, head, sizeof(uint32_t), sizeof(head));
	uint32_t len;

	if (got < 0)
		return (int)got;
	memcpy(&len, head, sizeof(len));
	have = (size_t)got - sizeof(len);
	if (len == 0 || len > max || have > len)
		return -EPROTO;
	r->text = len <= sizeof(r->inline_buf) ? r->inline_buf : malloc(len);
	if (!r->text)
		return -ENOMEM;
	r->len = len;
	memcpy(r->text, head + sizeof(len), have);
	got = have < len
		  ? procpool_read(fd, r->text + have, len - have, len - have)
		  : 0;
	if (got < 0)
		reply_release(r);
	return got < 0 ? (int)got : 0;
}

/* Sends one reply frame: u32 length, then the bytes. Returns 0 or -errno. */
static int worker_send(int fd, const struct reply *r)
{
	char frame[sizeof(uint32_t) + REPLY_INLINE_CAP];
	uint32_t len = (uint32_t)r->len;
	int err;

	memcpy(frame, &len, sizeof(len));
	if (r->len <= REPLY_INLINE_CAP) {
		memcpy(frame + sizeof(len), r->text, r->len);
		return net_write_all(fd, frame, sizeof(len) + r->len);
	}
	err = net_write_all(fd, frame, sizeof(len));
	return err ? err : net_write_all(fd, r->text, r->len);
}

/* argv: procpool ALGO MAX_N ENGINE, as procpool_spawn() writes it. */
static int worker_limits(int argc, char **argv, struct proto_limits *lim)
{
	proto_limits_default(lim);
	if (argc != 4 || fib_algo_parse(argv[1], &lim->algo) ||
	    fib_engine_parse(argv[3], &lim->engine))
		return -EINVAL;
	return opt_uint("max_n", argv[2], 0, FIB_FAST_LIMIT_N, &lim->max_n);
}

/*
 * fibd --child procpool ALGO MAX_N ENGINE: answers u64 n with a reply
 * frame until the server closes the socket. The server owns its lifetime,
 * so SIGINT, SIGTERM and SIGHUP sent to the whole group do not cut short a
 * request in flight. With the python engine each worker is a process with its
 * own interpreter and its own GIL, started before the first request: this is
 * how the talk's multiprocess_server escapes the GIL.
 */
int procpool_worker_main(int argc, char **argv)
{
	struct proto_limits lim;
	struct reply r;
	uint64_t n;
	int err = 0;

	if (worker_limits(argc, argv, &lim)) {
		log_msg("procpool worker: bad arguments");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* the server died: stop at once */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	/* Before the first request, which would otherwise pay for it. */
	if (lim.engine == FIB_ENGINE_PYTHON && pyengine_init() < 0)
		return 1; /* logged; the keeper respawns it */
	while (!err &&
	       procpool_read(PROCPOOL_FD, &n, sizeof(n), sizeof(n)) > 0) {
		if (n > lim.max_n) /* the server checked; never trust a frame */
			proto_error_reply(&lim, PROTO_TOO_LARGE, &r);
		else
			proto_compute(&lim, n, &r);
		err = worker_send(PROCPOOL_FD, &r);
		reply_release(&r);
	}
	close(PROCPOOL_FD);
	return 0;
}
