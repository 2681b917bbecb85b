/*
 * net - small socket helpers shared by the servers, fibload and the tests.
 *
 * Convention (libuv's): functions return 0 or a file descriptor on success
 * and a negative errno on failure. They never print.
 */
#ifndef FIBD_CORE_NET_H
#define FIBD_CORE_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Longest host part of HOST:PORT we accept (an IPv6 literal fits). */
#define NET_HOST_MAX 64

/* Flags for net_listen(). */
#define NET_NONBLOCK  0x1 /* the listening socket is non-blocking */
#define NET_REUSEPORT 0x2 /* SO_REUSEPORT: several listeners share a port */
#define NET_BIND_ONLY 0x4 /* bind but do not listen: reserves a port */

/*
 * Splits "HOST:PORT", "[V6]:PORT" or ":PORT" (host 127.0.0.1) into parts.
 * Returns 0 or -EINVAL.
 */
int net_parse_hostport(const char *s, char host[NET_HOST_MAX], uint16_t *port);

/*
 * Binds and listens on host:port (port 0 picks a free port), with
 * SO_REUSEADDR and a backlog of backlog. Returns the fd or -errno.
 */
int net_listen(const char *host, uint16_t port, int flags, int backlog);

/* The local port an fd is bound to, or -errno. */
int net_local_port(int fd);

/* Connects (blocking) to host:port. Returns the fd or -errno. */
int net_connect(const char *host, uint16_t port);

/* TCP_NODELAY on a connection: replies go out at once. Returns 0 or -errno. */
int net_nodelay(int fd);

/* Writes all of buf, retrying on EINTR and short writes. 0 or -errno. */
int net_write_all(int fd, const void *buf, size_t len);

/* Ignores SIGPIPE process-wide: a vanished peer is an EPIPE, not a death. */
void net_ignore_sigpipe(void);

#endif
