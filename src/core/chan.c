#include "chan.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int chan_init(struct chan *c, size_t cap)
{
	memset(c, 0, sizeof(*c));
	c->ring = malloc(cap);
	if (!c->ring)
		return -ENOMEM;
	c->cap = cap;
	pthread_mutex_init(&c->lock, NULL);
	return 0;
}

void chan_destroy(struct chan *c)
{
	pthread_mutex_destroy(&c->lock);
	free(c->ring);
	c->ring = NULL;
}

/*
 * Sleeps until the channel changes. Called and returns with the lock held.
 * A change made after seq was read makes FUTEX_WAIT return at once, so no
 * wake-up is lost between the unlock and the sleep.
 */
static void chan_wait(struct chan *c)
{
	uint32_t seen = atomic_load(&c->seq);

	c->sleepers++;
	pthread_mutex_unlock(&c->lock);
	syscall(SYS_futex, &c->seq, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
	pthread_mutex_lock(&c->lock);
	c->sleepers--;
}

/* Announces a change, with the lock held; a syscall only if one sleeps. */
static void chan_changed(struct chan *c)
{
	atomic_fetch_add(&c->seq, 1);
	if (c->sleepers)
		syscall(SYS_futex, &c->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
			NULL, 0);
}

/* Copies src[0..len) in, waiting for room. Lock held. 0 or -EPIPE. */
static int chan_put(struct chan *c, const unsigned char *src, size_t len)
{
	size_t k, tail, first;

	while (len) {
		while (c->used == c->cap && !c->closed)
			chan_wait(c);
		if (c->closed)
			return -EPIPE;
		k = len < c->cap - c->used ? len : c->cap - c->used;
		tail = (c->head + c->used) % c->cap;
		first = k < c->cap - tail ? k : c->cap - tail;
		memcpy(c->ring + tail, src, first);
		memcpy(c->ring, src + first, k - first);
		c->used += k;
		src += k;
		len -= k;
		chan_changed(c);
	}
	return 0;
}

/* Copies len bytes out into dst (dropped if dst is NULL). Lock held. */
static int chan_get(struct chan *c, unsigned char *dst, size_t len)
{
	size_t k, first;

	while (len) {
		while (c->used == 0 && !c->closed)
			chan_wait(c);
		if (c->used == 0)
			return -EPIPE;
		k = len < c->used ? len : c->used;
		first = k < c->cap - c->head ? k : c->cap - c->head;
		if (dst) {
			memcpy(dst, c->ring + c->head, first);
			memcpy(dst + first, c->ring, k - first);
			dst += k;
		}
		c->head = (c->head + k) % c->cap;
		c->used -= k;
		len -= k;
		chan_changed(c);
	}
	return 0;
}

int chan_send(struct chan *c, const void *msg, size_t len)
{
	uint32_t head = (uint32_t)len;
	int err;

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	pthread_mutex_lock(&c->lock);
	err = chan_put(c, (const unsigned char *)&head, sizeof(head));
	if (!err)
		err = chan_put(c, msg, len);
	pthread_mutex_unlock(&c->lock);
	return err;
}

ssize_t chan_recv(struct chan *c, struct buf *out)
{
	uint32_t len;
	int err, room;

	pthread_mutex_lock(&c->lock);
	err = chan_get(c, (unsigned char *)&len, sizeof(len));
	if (!err) {
		room = buf_reserve(out, len) == 0;
		err = chan_get(
		    c, room ? (unsigned char *)out->data + out->len : NULL,
		    len);
		if (!err && room)
			out->len += len;
		else if (!err)
			err = -ENOMEM;
	}
	pthread_mutex_unlock(&c->lock);
	return err ? err : (ssize_t)len;
}

void chan_close(struct chan *c)
{
	pthread_mutex_lock(&c->lock);
	c->closed = true;
	chan_changed(c);
	pthread_mutex_unlock(&c->lock);
}
