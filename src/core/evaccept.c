#include "evaccept.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"

static int evaccept_reserve(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void evaccept_init(struct evaccept *a, int lfd)
{
	a->lfd = lfd;
	a->reserve = evaccept_reserve();
	a->lent = -1;
}

/* Reads and drops up to max bytes of what fd holds, without waiting. */
static void evaccept_drop_input(int fd, size_t max)
{
	char sink[1024];
	ssize_t n;

	while (max && (n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0)
		max -= (size_t)n < max ? (size_t)n : max;
}

void evaccept_tell_busy(int fd, const struct server_cfg *cfg)
{
	char first[256], reply[HTTP_BUSY_MAX];
	ssize_t got = recv(fd, first, sizeof(first), MSG_DONTWAIT);
	size_t n;

	(void)cfg; /* the busy line quotes no limit */
	metrics_conn_rejected();
	/*
	 * Input left unread at close() makes the kernel send RST, which can
	 * destroy the answer before the client reads it: drop the rest of a
	 * longer request too, up to a bound.
	 */
	if (got == (ssize_t)sizeof(first))
		evaccept_drop_input(fd, 8192);
	n = http_busy_reply(first, got > 0 ? (size_t)got : 0, reply);
	if (send(fd, reply, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* The client is gone or not reading: it is closed either way.
		 */
	}
}

/* Out of descriptors: trade the reserve for the pending connection. */
int evaccept_shed(struct evaccept *a)
{
	int fd;

	if (a->lent >= 0)
		return -EMFILE;
	if (a->reserve < 0) {
		a->reserve = evaccept_reserve();
		return -EMFILE;
	}
	close(a->reserve);
	a->reserve = -1;
	fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		a->reserve = evaccept_reserve();
		return -EMFILE;
	}
	a->lent = fd;
	return -EBUSY;
}

void evaccept_shed_done(struct evaccept *a)
{
	a->lent = -1;
	if (a->reserve < 0 && a->lfd >= 0) /* not after evaccept_close() */
		a->reserve = evaccept_reserve();
}

/* evaccept_next(), leaving a shed connection in a->lent. */
static int evaccept_next_lend(struct evaccept *a)
{
	int fd;

	for (;;) {
		fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			net_nodelay(fd);
			return fd;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED: /* died in the backlog: try the next */
		case EPROTO:
			continue;
		case EAGAIN:
			return -EAGAIN;
		case EMFILE:
		case ENFILE:
			return evaccept_shed(a);
		case ENOBUFS:
		case ENOMEM:
			return -EMFILE; /* back off: memory may come back */
		default:
			return -errno;
		}
	}
}

int evaccept_next(struct evaccept *a, const struct server_cfg *cfg)
{
	int fd = evaccept_next_lend(a);

	if (fd == -EBUSY) {
		evaccept_tell_busy(a->lent, cfg);
		close(a->lent);
		evaccept_shed_done(a);
	}
	return fd;
}

void evaccept_close(struct evaccept *a)
{
	if (a->reserve >= 0)
		close(a->reserve);
	close(a->lfd);
	a->reserve = a->lfd = -1;
}
