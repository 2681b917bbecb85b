#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int net_parse_hostport(const char *s, char host[NET_HOST_MAX], uint16_t *port)
{
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen >= NET_HOST_MAX)
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || errno || p > 65535)
		return -EINVAL;
	if (hlen == 0)
		strcpy(host, "127.0.0.1");
	else {
		memcpy(host, h, hlen);
		host[hlen] = '\0';
	}
	*port = (uint16_t)p;
	return 0;
}

/* Resolves a numeric host (no DNS: a server binds what it is told). */
static int net_sockaddr(const char *host, uint16_t port,
			struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

int net_listen(const char *host, uint16_t port, int flags, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, err;
	int type = SOCK_STREAM | SOCK_CLOEXEC;

	err = net_sockaddr(host, port, &ss, &len);
	if (err)
		return err;
	if (flags & NET_NONBLOCK)
		type |= SOCK_NONBLOCK;
	fd = socket(ss.ss_family, type, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto out_close_fd;
	if ((flags & NET_REUSEPORT) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto out_close_fd;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		goto out_close_fd;
	if (!(flags & NET_BIND_ONLY) && listen(fd, backlog) < 0)
		goto out_close_fd;
	return fd;

out_close_fd:
	err = -errno;
	close(fd);
	return err;
}

int net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int net_connect(const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, err;

	err = net_sockaddr(host, port, &ss, &len);
	if (err)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno == EINTR)
			continue;
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int net_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

int net_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void net_ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}
