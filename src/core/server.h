/*
 * server - the configuration every model runs with, and the listening step
 * they share.
 */
#ifndef FIBD_CORE_SERVER_H
#define FIBD_CORE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"
#include "proto.h"

#define SERVER_DEFAULT_HOST		 "127.0.0.1"
#define SERVER_DEFAULT_PORT		 25000 /* the talk's port */
#define SERVER_DEFAULT_MAX_CONNS	 10000
#define SERVER_DEFAULT_IDLE_TIMEOUT_MS	 300000 /* 5 minutes */
#define SERVER_DEFAULT_HEADER_TIMEOUT_MS 10000	/* a request head's deadline */
#define SERVER_BACKLOG			 65535 /* the kernel caps it at somaxconn */

/* Everything fibd's command line decides; read-only once a model runs. */
struct server_cfg {
	const char *model_name;	 /* for the "listening on" line */
	char host[NET_HOST_MAX]; /* address to bind */
	uint16_t port;		 /* 0: pick a free port */
	struct proto_limits limits;
	unsigned workers;   /* threads/processes; 0: the CPUs we may run on */
	bool ports;	    /* one port per shard (P, P+1...): takes_ports */
	bool offload;	    /* fib on a blocking pool: takes_offload */
	unsigned max_conns; /* beyond it: "ERR server busy", close */
	unsigned
	    idle_timeout_ms; /* close connections silent this long; 0 = never */
	/*
	 * A request (a line, or an HTTP head up to its blank line) must
	 * arrive whole within this long of its first byte; 0 = no limit.
	 */
	unsigned header_timeout_ms;
	/*
	 * Lame-duck drain: on a stop, keep the listener open and serve on for
	 * this long while /healthz answers 503, then stop; 0 = stop at once.
	 */
	unsigned drain_ms;
};

/* The defaults, as fibd --help documents them. */
void server_cfg_default(struct server_cfg *cfg);

/*
 * cfg->workers, or when it is 0 the number of CPUs this process may run on
 * (its affinity mask: taskset, a cpuset), or of online CPUs if that fails.
 */
unsigned server_workers(const struct server_cfg *cfg);

/*
 * Opens a listener on cfg->host:port with net_listen(flags) and announces it
 * on stderr: "fibd: listening on HOST:PORT (model M, algo A, framing F)",
 * plus ", engine python" under --engine python. port 0 picks a free port and
 * the line shows the one picked. Returns the fd or -errno
 * (after logging why).
 */
int server_listen(const struct server_cfg *cfg, uint16_t port, int flags);

/*
 * The non-blocking listener of shard i of a sharded model (one loop or
 * process per shard): PORT+i with --ports, else the shared port with
 * SO_REUSEPORT, where shard 0 resolves port 0 and passes what it got as
 * shared_port to the others. With --ports, port 0 is resolved beforehand
 * (fibd: server_pick_ports()). Does not announce. Returns
 * the fd or -errno (after logging why).
 */
int server_listen_shard(const struct server_cfg *cfg, unsigned i,
			uint16_t shared_port);

/*
 * For --ports with port 0: finds n consecutive ports P..P+n-1 free on
 * cfg->host by listening on them all (P below the kernel's ephemeral port
 * range, where no connect() takes a port, or kernel-picked when that range
 * leaves no room; another P when one is taken), and lets them go. Returns P, or
 * -errno (after logging why). Between this and the model's own binds another
 * process could take one; the model then fails to listen and says so.
 */
int server_pick_ports(const struct server_cfg *cfg, unsigned n);

/* Prints the "listening on" line for port (when the listener is elsewhere). */
void server_announce(const struct server_cfg *cfg, int port);

/*
 * accept4() for a blocking accept loop. Retries EINTR (unless a stop was
 * requested) and connections that died in the backlog. When the process is
 * out of descriptors (EMFILE/ENFILE) it frees a reserved descriptor, accepts
 * and closes the pending connection so the kernel stops reporting it, and
 * backs off briefly: no busy loop, no death. The new connection gets
 * TCP_NODELAY. Returns the fd or -errno (-EINTR when a stop interrupted it).
 */
int server_accept(int lfd, int flags);

/*
 * Writes "ERR server busy" to a connection over --max-conns and closes it.
 * cfg may be NULL.
 */
void server_reject_busy(int fd, const struct server_cfg *cfg);

#endif
