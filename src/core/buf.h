/*
 * buf - a byte buffer with a read offset, for connection input and output.
 *
 * Bytes live in data[off..len). Appending grows the allocation; consuming
 * advances off, and the space is reclaimed by buf_compact() (or lazily when
 * the buffer empties). Every function that may allocate returns 0 or -ENOMEM.
 */
#ifndef FIBD_CORE_BUF_H
#define FIBD_CORE_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* malloc'd storage, NULL until first use */
	size_t off; /* first unconsumed byte */
	size_t len; /* one past the last byte */
	size_t cap; /* bytes allocated */
};

#define BUF_INIT                                                               \
	{                                                                      \
		NULL, 0, 0, 0                                                  \
	}

/* Unconsumed bytes. */
static inline size_t buf_used(const struct buf *b)
{
	return b->len - b->off;
}

/* First unconsumed byte. */
static inline char *buf_head(const struct buf *b)
{
	return b->data + b->off;
}

/* Frees the storage; the buffer is then empty and reusable. */
void buf_free(struct buf *b);

/* Makes room for at least room more bytes after len. */
int buf_reserve(struct buf *b, size_t room);

/* Appends src[0..n). */
int buf_append(struct buf *b, const void *src, size_t n);

/* Drops n bytes from the front; n <= buf_used(). Empties reset off to 0. */
void buf_consume(struct buf *b, size_t n);

/* Moves the unconsumed bytes to the front of the storage. */
void buf_compact(struct buf *b);

#endif
