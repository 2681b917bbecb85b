/*
 * procpool - what the server (procpool.c) and its worker processes
 * (procpool_worker.c) share: where the socket is, and how to read it.
 * Frames are in host byte order: both ends are the same binary.
 */
#ifndef FIBD_MODELS_PROCPOOL_H
#define FIBD_MODELS_PROCPOOL_H

#include <stddef.h>
#include <sys/types.h>

#define PROCPOOL_FD 3 /* the worker's end of its socketpair */

/*
 * Reads at least min and at most cap bytes. Returns the count, -EPIPE at
 * EOF (the other side is gone), or -errno.
 */
ssize_t procpool_read(int fd, void *buf, size_t min, size_t cap);

/*
 * fibd --child procpool ALGO MAX_N ENGINE (argv[0] is "procpool"): the
 * worker's main. Returns its exit status.
 */
int procpool_worker_main(int argc, char **argv);

#endif
