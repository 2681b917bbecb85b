#include "evaccept.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static int evaccept_reserve(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void evaccept_init(struct evaccept *a, int lfd)
{
	a->lfd = lfd;
	a->reserve = evaccept_reserve();
}

/* Out of descriptors: trade the reserve for the pending connection. */
static int evaccept_shed(struct evaccept *a, const struct server_cfg *cfg)
{
	int fd;

	if (a->reserve < 0) {
		a->reserve = evaccept_reserve();
		return -EMFILE;
	}
	close(a->reserve);
	fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd >= 0)
		server_reject_busy(fd, cfg);
	a->reserve = evaccept_reserve();
	return fd >= 0 ? -EBUSY : -EMFILE;
}

int evaccept_next(struct evaccept *a, const struct server_cfg *cfg)
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
			return evaccept_shed(a, cfg);
		case ENOBUFS:
		case ENOMEM:
			return -EMFILE; /* back off: memory may come back */
		default:
			return -errno;
		}
	}
}

void evaccept_close(struct evaccept *a)
{
	if (a->reserve >= 0)
		close(a->reserve);
	close(a->lfd);
	a->reserve = a->lfd = -1;
}
