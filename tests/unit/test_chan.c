/*
 * chan: messages of every size, bigger than the ring too, arrive whole and
 * in order between two threads; an empty message is a message; close lets
 * the receiver drain, then says -EPIPE, and fails later sends.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "core/chan.h"
#include "../t.h"

#define RING   64
#define NMSG   2000
#define MAXLEN 700 /* over ten times the ring */

/* Message i is msg_len(i) bytes of pattern from offset i % 3. */
static unsigned char pattern[MAXLEN + 3];

static size_t msg_len(int i)
{
	return (size_t)(i * 37) % MAXLEN;
}

static void *producer(void *arg)
{
	struct chan *c = arg;

	for (int i = 0; i < NMSG; i++)
		if (chan_send(c, pattern + i % 3, msg_len(i)))
			break;
	chan_close(c);
	return NULL;
}

static void case_stream(void)
{
	struct chan c;
	struct buf b = BUF_INIT;
	pthread_t t;
	ssize_t len;
	int i, order_ok = 1;

	T_CHECK(chan_init(&c, RING) == 0);
	T_CHECK(pthread_create(&t, NULL, producer, &c) == 0);
	for (i = 0; (len = chan_recv(&c, &b)) >= 0; i++) {
		size_t want = msg_len(i);
		order_ok &=
		    (size_t)len == want && buf_used(&b) == want &&
		    (!want || !memcmp(buf_head(&b), pattern + i % 3, want));
		buf_consume(&b, buf_used(&b));
	}
	T_CHECK(order_ok, "a message arrived changed or out of order");
	T_CHECK(i == NMSG, "%d messages, want %d", i, NMSG);
	T_CHECK(len == -EPIPE, "after close: %zd", len);
	pthread_join(t, NULL);
	T_CHECK(chan_send(&c, "x", 1) == -EPIPE);
	buf_free(&b);
	chan_destroy(&c);
}

int main(void)
{
	for (int i = 0; i < MAXLEN + 3; i++)
		pattern[i] = (unsigned char)(i * 7 + 1);
	T_RUN(case_stream, 60);
	return t_done("test_chan");
}
