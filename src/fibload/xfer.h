/*
 * xfer - bytes on the wire for one non-blocking socket: an output buffer
 * written as far as the socket takes it, and input read in big chunks
 * behind the partial line kept from the last read. It knows nothing of
 * requests, replies or connections' states: a leaf.
 */
#ifndef FIBLOAD_XFER_H
#define FIBLOAD_XFER_H

#include <stddef.h>
#include <sys/types.h>

struct fl_xfer {
	char *out; /* bytes not yet written: out[out_off..out_len) */
	size_t out_off, out_len;
	char *carry; /* a partial line kept between reads */
	size_t carry_len, carry_cap;
};

/* Allocates room for out_cap bytes of output and a partial line of up to
 * line_max bytes. 0 or -ENOMEM; release in every case. */
int fl_xfer_init(struct fl_xfer *x, size_t out_cap, size_t line_max);
void fl_xfer_release(struct fl_xfer *x);

/* Forgets everything buffered (the socket is gone). */
void fl_xfer_reset(struct fl_xfer *x);

/* Moves the unsent bytes to the front, making room at the end. */
void fl_xfer_compact(struct fl_xfer *x);

/* Appends len bytes to the output (the caller sized out_cap for it). */
void fl_xfer_queue(struct fl_xfer *x, const char *bytes, size_t len);

/* Writes what is queued. 0 when all of it is out, -EAGAIN when the rest
 * must wait for room (EPOLLOUT), another -errno when the write failed. */
int fl_xfer_flush(struct fl_xfer *x, int fd);

/*
 * Reads what has arrived into buf[0..cap), behind the kept partial line.
 * Returns the bytes now in buf (carry + new), -EAGAIN when nothing new has
 * come, 0 when the peer closed, or another -errno. *full is set when the
 * read filled buf (more may be waiting).
 */
ssize_t fl_xfer_read(struct fl_xfer *x, int fd, char *buf, size_t cap,
		     int *full);

/* Keeps rest[0..len) as the partial line for the next read. -EMSGSIZE when
 * it is longer than line_max (no line of the protocol is that long). */
int fl_xfer_keep(struct fl_xfer *x, const char *rest, size_t len);

#endif
