/* xfer - bytes on the wire for one socket (see xfer.h). */
#include "xfer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int fl_xfer_init(struct fl_xfer *x, size_t out_cap, size_t line_max)
{
	memset(x, 0, sizeof(*x));
	x->out = malloc(out_cap);
	x->carry = malloc(line_max + 1);
	x->carry_cap = line_max;
	return x->out && x->carry ? 0 : -ENOMEM;
}

void fl_xfer_release(struct fl_xfer *x)
{
	free(x->out);
	free(x->carry);
	x->out = x->carry = NULL;
}

void fl_xfer_reset(struct fl_xfer *x)
{
	x->out_off = x->out_len = x->carry_len = 0;
}

void fl_xfer_compact(struct fl_xfer *x)
{
	if (!x->out_off)
		return;
	memmove(x->out, x->out + x->out_off, x->out_len - x->out_off);
	x->out_len -= x->out_off;
	x->out_off = 0;
}

void fl_xfer_queue(struct fl_xfer *x, const char *bytes, size_t len)
{
	memcpy(x->out + x->out_len, bytes, len);
	x->out_len += len;
}

int fl_xfer_flush(struct fl_xfer *x, int fd)
{
	ssize_t n;

	while (x->out_off < x->out_len) {
		n = send(fd, x->out + x->out_off, x->out_len - x->out_off,
			 MSG_NOSIGNAL);
		if (n > 0) {
			x->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return -EAGAIN;
		return n < 0 ? -errno : -EPIPE;
	}
	x->out_off = x->out_len = 0;
	return 0;
}

ssize_t fl_xfer_read(struct fl_xfer *x, int fd, char *buf, size_t cap,
		     int *full)
{
	size_t have = x->carry_len;
	ssize_t n;

	do {
		n = read(fd, buf + have, cap - have);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	memcpy(buf, x->carry, have);
	x->carry_len = 0;
	*full = (size_t)n == cap - have;
	return (ssize_t)(have + (size_t)n);
}

int fl_xfer_keep(struct fl_xfer *x, const char *rest, size_t len)
{
	if (len > x->carry_cap)
		return -EMSGSIZE;
	memmove(x->carry, rest, len);
	x->carry_len = len;
	return 0;
}
