/*
 * procpool_worker - the worker process of the procpool model: the far end
 * of apply().
 *
 *	server (procpool.c)                  worker (this file)
 *	apply(n): write u64 n    --------->  read n
 *	          read the reply <---------  fib(n), write u32 len + bytes
 *
 * Each worker is fibd exec'd as "fibd --child procpool ALGO MAX_N ENGINE"
 * with its end of a socketpair on PROCPOOL_FD; it answers until the server
 * closes the socket.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/net.h"
#include "../core/opt.h"
#include "../core/proto.h"
#include "../core/pyengine.h"
#include "procpool.h"

/*
 * Reads at least min and at most cap bytes. Returns the count, -EPIPE at
 * EOF (the other side is gone), or -errno.
 */
ssize_t procpool_read(int fd, void *buf, size_t min, size_t cap)
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

/* argv: procpool ALGO MAX_N ENGINE. */
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
