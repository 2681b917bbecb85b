/*
 * procpool - one worker process of the procpool model, from both sides:
 * how the server (procpool.c) starts, talks to and reaps one, and the
 * worker's own main (procpool_worker.c holds all of it).
 *
 *	server (procpool.c)                  worker (procpool_worker.c)
 *	procpool_spawn()         -- exec -->  procpool_worker_main()
 *	apply(n): write u64 n    --------->  read n
 *	procpool_recv_reply()    <---------  fib(n), write u32 len + bytes
 *	procpool_reap()          -- EOF -->  exits
 *
 * Frames are in host byte order: both ends are the same binary.
 * Functions return 0 or -errno.
 */
#ifndef FIBD_MODELS_PROCPOOL_H
#define FIBD_MODELS_PROCPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/proto.h"

#define PROCPOOL_FD 3 /* the worker's end of its socketpair */

/* What every worker is exec'd as: our own binary, and the server's limits. */
struct procpool_image {
	int exe_fd;		 /* our binary, open; -1: use exe_path as is */
	char exe_path[32];	 /* what workers exec: /proc/self/fd/N */
	struct proto_limits lim; /* passed on to every worker */
};

/* A worker process, as the server holds it. */
struct procpool_proc {
	pid_t pid; /* 0: no process to reap */
	int fd;	   /* our end of its socketpair; -1: none */
	int pidfd; /* readable once the process has exited; -1: none */
};

/* Opens our own binary for procpool_spawn(). Never fails: see exe_fd. */
void procpool_image_open(struct procpool_image *img,
			 const struct proto_limits *lim);

/* Closes what procpool_image_open() opened. */
void procpool_image_close(struct procpool_image *img);

/* Starts one worker process into proc. Returns 0 or -errno. */
int procpool_spawn(const struct procpool_image *img,
		   struct procpool_proc *proc);

/* Closes our end of the socket: at EOF the worker exits. */
void procpool_hang_up(struct procpool_proc *proc);

/*
 * Closes our ends, sends sig (unless 0) and waits for the process, so no
 * zombie is left. Returns the wait status, or -1 when there was no process.
 */
int procpool_reap(struct procpool_proc *proc, int sig);

/*
 * Reaps proc (SIGKILL first), logs how it ended, and spawns a new worker
 * into it. Returns 0 or -errno, logged.
 */
int procpool_respawn(const struct procpool_image *img,
		     struct procpool_proc *proc);

/*
 * Reads one reply frame from a worker into r; a small one usually in one
 * read. Returns 0, or -errno when the worker is gone (-EPIPE) or broken.
 */
int procpool_recv_reply(int fd, const struct proto_limits *lim,
			struct reply *r);

/*
 * fibd --child procpool ALGO MAX_N ENGINE (argv[0] is "procpool"): the
 * worker's main. Returns its exit status.
 */
int procpool_worker_main(int argc, char **argv);

#endif
