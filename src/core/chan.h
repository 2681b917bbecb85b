/*
 * chan - a bounded one-way message channel between two threads: the only
 * thing isolate's connection thread and its compute worker share.
 *
 * A message is bytes. chan_send() copies them into the channel's ring and
 * chan_recv() copies them out on the other side, so neither thread ever
 * holds a pointer into the other's memory. Messages are framed (a u32
 * length, then the bytes) in a ring of fixed size; a message larger than
 * the ring flows through it in pieces, so memory stays bounded. One thread
 * sends and one thread receives.
 *
 * A side that must wait (a receiver on an empty ring, a sender on a full
 * one) sleeps on a futex. The other side makes the wake-up syscall only
 * when someone sleeps: a wake-up is the price of crossing to a sleeping
 * thread, and nothing is paid when the other side is busy.
 *
 * Functions return 0 (or a length) on success and a negative errno.
 */
#ifndef FIBD_CORE_CHAN_H
#define FIBD_CORE_CHAN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct chan {
	pthread_mutex_t lock; /* guards everything below but seq's futex word */
	unsigned char *ring;  /* cap bytes, malloc'd */
	size_t cap;	      /* ring size */
	size_t head;	      /* next byte to receive */
	size_t used;	      /* bytes in the ring */
	_Atomic uint32_t seq; /* bumped on every change; the futex word */
	unsigned sleepers;    /* threads asleep on seq */
	bool closed;	      /* chan_close() was called */
};

/* Sets up an open channel with a ring of cap bytes. 0 or -ENOMEM. */
int chan_init(struct chan *c, size_t cap);

/* Frees the ring. Nobody may be using the channel any more. */
void chan_destroy(struct chan *c);

/*
 * Copies msg[0..len) in as one message, waiting for room as it goes.
 * Returns 0, or -EPIPE when the channel is (or gets) closed.
 */
int chan_send(struct chan *c, const void *msg, size_t len);

/*
 * Waits for the next message and appends it to out. Returns its length;
 * -EPIPE when the channel is closed and drained; -ENOMEM when out cannot
 * grow (the message is then dropped, and the channel stays in step).
 */
ssize_t chan_recv(struct chan *c, struct buf *out);

/* Closes the channel: wakes both sides; later sends fail, receives drain. */
void chan_close(struct chan *c);

#endif
