#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * The first allocation of a buffer that grows by appends: small, because
 * most replies are a few bytes and the allocator keeps chunks this size in
 * per-thread caches. uring holds each connection's reply until its send
 * completes, a turn later: with a 4 KiB floor, 10,000 connections had up to
 * 16 MiB of reply buffers live per turn, and glibc grew the heap for them
 * and gave it back (madvise) every turn, doubling the server's CPU per
 * request. Readers that know their size reserve it outright.
 */
#define BUF_MIN_CAP 256

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

int buf_reserve(struct buf *b, size_t room)
{
	size_t cap;
	char *data;

	if (b->cap - b->len >= room)
		return 0;
	/* Reclaim consumed space before growing. */
	if (b->off && b->cap - buf_used(b) >= room) {
		buf_compact(b);
		return 0;
	}
	cap = b->cap ? b->cap : BUF_MIN_CAP;
	while (cap - buf_used(b) < room) {
		if (cap > ((size_t)-1) / 2)
			return -ENOMEM;
		cap *= 2;
	}
	buf_compact(b);
	data = realloc(b->data, cap);
	if (!data)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *src, size_t n)
{
	int err = buf_reserve(b, n);

	if (err)
		return err;
	memcpy(b->data + b->len, src, n);
	b->len += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

void buf_compact(struct buf *b)
{
	size_t used = buf_used(b);

	if (!b->off)
		return;
	memmove(b->data, b->data + b->off, used);
	b->off = 0;
	b->len = used;
}
