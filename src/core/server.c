#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evaccept.h"
#include "log.h"
#include "metrics.h"
#include "stop.h"

/* Bases server_pick_ports() tries before it gives up. */
#define SERVER_PICK_TRIES 64
/* The lowest base it tries below the ephemeral range (unprivileged). */
#define SERVER_PICK_LOW 10000

void server_cfg_default(struct server_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->model_name = "thread";
	strcpy(cfg->host, SERVER_DEFAULT_HOST);
	cfg->port = SERVER_DEFAULT_PORT;
	proto_limits_default(&cfg->limits);
	cfg->max_conns = SERVER_DEFAULT_MAX_CONNS;
	cfg->idle_timeout_ms = SERVER_DEFAULT_IDLE_TIMEOUT_MS;
	cfg->header_timeout_ms = SERVER_DEFAULT_HEADER_TIMEOUT_MS;
}

unsigned server_workers(const struct server_cfg *cfg)
{
	cpu_set_t cpus;
	long n;

	if (cfg->workers)
		return cfg->workers;
	/*
	 * The CPUs this process may run on, not those the machine has: under
	 * taskset or a container's cpuset, one shard per online CPU would put
	 * two loops on one CPU, each stalling the other's clients for a
	 * scheduler slice at a time. Go sizes GOMAXPROCS the same way.
	 */
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0)
		n = CPU_COUNT(&cpus);
	else
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

void server_announce(const struct server_cfg *cfg, int port)
{
	int v6 = strchr(cfg->host, ':') != NULL;
	bool py = cfg->limits.engine == FIB_ENGINE_PYTHON;
	bool rd = cfg->limits.framing == PROTO_FRAMING_READ;

	log_msg("listening on %s%s%s:%d (model %s, algo %s, framing %s%s)",
		v6 ? "[" : "", cfg->host, v6 ? "]" : "", port, cfg->model_name,
		fib_algo_name(cfg->limits.algo), rd ? "read" : "line",
		py ? ", engine python" : "");
}

/*
 * Listens on P+1..P+n-1 after P, the port of *fds, as the model will: a
 * bind alone can succeed where the model's listen() would not. Returns 0,
 * or -EADDRINUSE when one is taken or past 65535 (then P is no good), or
 * another -errno. Leaves every descriptor it opened in fds.
 */
static int server_listen_run(const struct server_cfg *cfg, int *fds, unsigned n)
{
	int base = net_local_port(fds[0]);

	if (base < 0)
		return base;
	if ((unsigned)base + n - 1 > 65535)
		return -EADDRINUSE;
	for (unsigned i = 1; i < n; i++) {
		fds[i] = net_listen(cfg->host, (uint16_t)(base + i), 0, 1);
		if (fds[i] < 0)
			return fds[i];
	}
	return 0;
}

/*
 * A base port below the kernel's ephemeral range (ip_local_port_range), or
 * 0 when that range leaves no room below it. The kernel hands ports from
 * that range to every connect() and every listen on port 0, so a base
 * picked there has a neighbour some client may take between our probe
 * and the model's own bind; below it, only an explicit bind can.
 */
static int server_pick_base(unsigned n, unsigned try)
{
	unsigned lo = 0, hi = 0, room;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	if (f) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			lo = 0;
		fclose(f);
	}
	if (lo < SERVER_PICK_LOW + n + 1)
		return 0;
	room = lo - SERVER_PICK_LOW - n;
	return (int)(SERVER_PICK_LOW +
		     ((unsigned)getpid() * 2654435761u + try * 40503u) % room);
}

int server_pick_ports(const struct server_cfg *cfg, unsigned n)
{
	int *fds = calloc(n, sizeof(*fds)), err = -EADDRINUSE, port = 0;

	if (!fds)
		return -ENOMEM;
	for (unsigned try = 0; try < SERVER_PICK_TRIES && err == -EADDRINUSE;
	     try++) {
		for (unsigned i = 0; i < n; i++)
			fds[i] = -1;
		fds[0] = net_listen(cfg->host,
				    (uint16_t)server_pick_base(n, try), 0, 1);
		err = fds[0] < 0 ? fds[0] : server_listen_run(cfg, fds, n);
		if (!err)
			port = net_local_port(fds[0]);
		for (unsigned i = 0; i < n; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	free(fds);
	if (err)
		log_err(err, "cannot find %u free consecutive ports on %s", n,
			cfg->host);
	return err ? err : port;
}

int server_listen(const struct server_cfg *cfg, uint16_t port, int flags)
{
	int fd = net_listen(cfg->host, port, flags, SERVER_BACKLOG);
	int v6 = strchr(cfg->host, ':') != NULL;

	if (fd < 0) {
		log_err(fd, "cannot listen on %s%s%s:%u", v6 ? "[" : "",
			cfg->host, v6 ? "]" : "", port);
		return fd;
	}
	server_announce(cfg, net_local_port(fd));
	return fd;
}

int server_listen_shard(const struct server_cfg *cfg, unsigned i,
			uint16_t shared_port)
{
	int flags = NET_NONBLOCK | (cfg->ports ? 0 : NET_REUSEPORT);
	uint16_t port = cfg->port;
	int lfd;

	if (cfg->ports && port)
		port = (uint16_t)(port + i);
	else if (!cfg->ports && i > 0)
		port = shared_port;
	lfd = net_listen(cfg->host, port, flags, SERVER_BACKLOG);
	if (lfd < 0)
		log_err(lfd, "cannot listen on %s:%u", cfg->host, port);
	return lfd;
}

/* A descriptor held back for server_shed(). */

static int server_reserve_fd = -1;

/*
 * Out of descriptors, the pending connection cannot be accepted, and a
 * level-triggered listener would report it forever. So: give back the
 * reserved descriptor, accept the connection, tell it "ERR server busy",
 * close it, take the reserve again, and back off briefly. poll() first,
 * because accept() on a blocking listener would wait for the next client.
 */
static void server_shed(int lfd)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	int fd;

	if (server_reserve_fd >= 0 && poll(&p, 1, 0) == 1) {
		close(server_reserve_fd);
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			server_reject_busy(fd, NULL);
		server_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	poll(NULL, 0, 10);
}

int server_accept(int lfd, int flags)
{
	int fd;

	if (server_reserve_fd < 0)
		server_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | flags);
		if (fd >= 0) {
			net_nodelay(fd);
			return fd;
		}
		switch (errno) {
		case EINTR:
			if (stop_requested())
				return -EINTR;
			continue;
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			server_shed(lfd);
			if (stop_requested())
				return -EINTR;
			continue;
		default:
			return -errno;
		}
	}
}

/*
 * A blocking accept loop may wait for the refused client's first bytes
 * (EVACCEPT_BUSY_WAIT_MS at most, see evaccept.h): at its limit it would
 * accept nobody it could serve meanwhile, and the kernel's backlog holds
 * the others. Then it answers in the client's protocol.
 */
void server_reject_busy(int fd, const struct server_cfg *cfg)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (poll(&p, 1, EVACCEPT_BUSY_WAIT_MS) < 0 && errno == EINTR &&
	       !stop_requested())
		;
	evaccept_tell_busy(fd, cfg);
	close(fd);
}
