/*
 * test_coro_net - the coroutine runtime's netpoller: echo over a socketpair
 * with EAGAIN parking both ways, close and shutdown waking a parked reader,
 * reads after a short read (which wait before they read), timed waits,
 * lazy read deadlines, cancelling I/O, and an accept loop over TCP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/tcoro.h"
#include "../t.h"
#include "coro/coro.h"
#include "coro/san.h"

#define CHECK(cond) T_CHECK(cond)

/* ---- echo: 4 MiB through small socket buffers, so both sides park ----- */

#define ECHO_LEN (4 << 20)

struct echo {
	int fd[2];
	unsigned char *out, *in;
};

static void echo_server(void *arg)
{
	struct echo *e = arg;
	char buf[8192];
	ssize_t n;

	while ((n = coro_read(e->fd[1], buf, sizeof(buf))) > 0)
		CO_CHECK(coro_write(e->fd[1], buf, (size_t)n) == n);
	CO_CHECK(n == 0);
	CO_CHECK(coro_close(e->fd[1]) == 0);
}

static void echo_reader(void *arg)
{
	struct echo *e = arg;
	size_t got = 0;
	ssize_t n = 1;

	while (got < ECHO_LEN && n > 0) {
		n = coro_read(e->fd[0], e->in + got, ECHO_LEN - got);
		got += n > 0 ? (size_t)n : 0;
	}
	CO_CHECK(got == ECHO_LEN);
}

static void echo_client(void *arg)
{
	struct echo *e = arg;
	struct coro *r = coro_spawn(coro_self_rt(), echo_reader, e);

	/* One big write: it must park on EAGAIN until the echo drains. */
	CO_CHECK(coro_write(e->fd[0], e->out, ECHO_LEN) == ECHO_LEN);
	shutdown(e->fd[0], SHUT_WR);
	coro_join(r);
	CO_CHECK(coro_close(e->fd[0]) == 0);
}

static void test_echo(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct echo e;
	struct coro_worker_stats ws;
	uint64_t polls = 0;
	int i, buf = 16384;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, e.fd) == 0);
	for (i = 0; i < 2; i++)
		setsockopt(e.fd[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	e.out = malloc(ECHO_LEN);
	e.in = calloc(1, ECHO_LEN);
	for (i = 0; i < ECHO_LEN; i++)
		e.out[i] = (unsigned char)(i * 7 + i / 251);
	CHECK(coro_go(rt, echo_server, &e) == 0);
	CHECK(coro_go(rt, echo_client, &e) == 0);
	coro_rt_wait(rt);
	CHECK(memcmp(e.in, e.out, ECHO_LEN) == 0);
	for (i = 0; i < 2; i++) {
		coro_worker_stats(rt, (unsigned)i, &ws);
		polls += ws.polls;
	}
	T_CHECK(polls > 0, "nobody ever polled: no parking happened");
	free(e.out);
	free(e.in);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- waking a parked reader -------------------------------------------- */

struct wake {
	int fd[2];
	ssize_t got;
	int how; /* 0: coro_close, 1: shutdown(SHUT_RD) */
};

static void parked_reader(void *arg)
{
	struct wake *w = arg;
	char c;

	w->got = coro_read(w->fd[0], &c, 1);
}

static void waker(void *arg)
{
	struct wake *w = arg;

	coro_sleep(50); /* long enough for the reader to park */
	if (w->how == 0)
		CO_CHECK(coro_close(w->fd[0]) == 0);
	else
		CO_CHECK(shutdown(w->fd[0], SHUT_RD) == 0);
}

static void test_wake_parked(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct wake w;

	for (w.how = 0; w.how < 2; w.how++) {
		w.got = 1;
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, w.fd) == 0);
		CHECK(coro_go(rt, parked_reader, &w) == 0);
		CHECK(coro_go(rt, waker, &w) == 0);
		coro_rt_wait(rt);
		if (w.how == 0) {
			T_CHECK(w.got == -EBADF, "close: got %zd", w.got);
		} else {
			T_CHECK(w.got == 0, "shutdown: got %zd", w.got);
			CHECK(coro_close(w.fd[0]) == 0); /* outside: plain */
		}
		close(w.fd[1]);
	}
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- reads after a short read -------------------------------------------- */

/*
 * A short read from a stream socket makes the next read wait for an edge
 * before it reads. Every way data can be there must still be read: sent
 * after the reader parked, sent between two reads (the edge came while
 * nobody waited), left over by a full read (no new edge at all), after an
 * explicit coro_wait_readable(), and at EOF, also when the FIN came with
 * the data (one edge for both). Datagrams never wait first:
 * a short read there leaves the next datagram queued, with no new edge.
 * The test thread (the peer) and the reader take turns through events. A
 * read that waits for an edge that never comes hangs, and T_RUN fails it.
 */
struct drain {
	int fd[2];
	struct coro_event go, done; /* peer -> reader, reader -> peer */
	int failed;
};

static ssize_t drain_read(int fd, char *buf, size_t len, const char *want)
{
	ssize_t n = coro_read(fd, buf, len);

	if (n != (ssize_t)strlen(want) || memcmp(buf, want, strlen(want))) {
		fprintf(stderr, "FAIL drain: want '%s', got %zd\n", want, n);
		atomic_fetch_add(&tcoro_failed, 1);
	}
	return n;
}

static void drain_reader(void *arg)
{
	struct drain *d = arg;
	int fd = d->fd[0];
	char buf[64];

	drain_read(fd, buf, sizeof(buf), "a"); /* short: drained */
	coro_event_signal(&d->done);
	drain_read(fd, buf, sizeof(buf), "b"); /* sent while parked */
	coro_event_signal(&d->done);
	coro_event_wait(&d->go);
	drain_read(fd, buf, sizeof(buf), "c"); /* sent before this read */
	coro_event_signal(&d->done);
	coro_event_wait(&d->go);
	drain_read(fd, buf, 4, "dddd"); /* full: more may be queued */
	drain_read(fd, buf, sizeof(buf), "ee");
	coro_event_signal(&d->done);
	CO_CHECK(coro_wait_readable(fd, -1) == 0);
	drain_read(fd, buf, sizeof(buf), "f"); /* after the explicit wait */
	CO_CHECK(coro_read_timeout(fd, buf, sizeof(buf), 20) == -ETIMEDOUT);
	coro_event_signal(&d->done);
	CO_CHECK(coro_read(fd, buf, sizeof(buf)) == 0); /* EOF */
}

/* The FIN came with the data, in the one edge the wait used up. */
static void drain_eof(void *arg)
{
	struct drain *d = arg;
	char buf[64];

	CO_CHECK(coro_wait_readable(d->fd[0], -1) == 0);
	drain_read(d->fd[0], buf, sizeof(buf), "g");
	CO_CHECK(coro_read(d->fd[0], buf, sizeof(buf)) == 0);
}

static void drain_dgram(void *arg)
{
	struct drain *d = arg;
	char buf[64];

	/* The one edge (readiness at registration) is used up here. */
	CO_CHECK(coro_wait_readable(d->fd[0], -1) == 0);
	drain_read(d->fd[0], buf, sizeof(buf), "x");
	drain_read(d->fd[0], buf, sizeof(buf), "y"); /* queued, no new edge */
}

/* A connected TCP pair over loopback: fd[0] accepted, fd[1] the client. */
static int tcp_pair(int fd[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), err = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd[1] = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd >= 0 && fd[1] >= 0 &&
	    !bind(lfd, (struct sockaddr *)&a, sizeof(a)) && !listen(lfd, 1) &&
	    !getsockname(lfd, (struct sockaddr *)&a, &len) &&
	    !connect(fd[1], (struct sockaddr *)&a, sizeof(a)) &&
	    (fd[0] = accept(lfd, NULL, NULL)) >= 0)
		err = 0;
	close(lfd);
	return err;
}

static void peer_send(struct drain *d, const char *s)
{
	CHECK(write(d->fd[1], s, strlen(s)) == (ssize_t)strlen(s));
}

static void test_read_drained(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct drain d = {.go = CORO_EVENT_INIT, .done = CORO_EVENT_INIT};

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, d.fd) == 0);
	CHECK(coro_go(rt, drain_reader, &d) == 0);
	peer_send(&d, "a");
	coro_event_wait(&d.done);
	usleep(20 * 1000); /* let the reader park on its next read */
	peer_send(&d, "b");
	coro_event_wait(&d.done);
	peer_send(&d, "c"); /* the reader waits on go, not in a read */
	usleep(20 * 1000);
	coro_event_signal(&d.go);
	coro_event_wait(&d.done);
	peer_send(&d, "ddddee");
	usleep(20 * 1000);
	coro_event_signal(&d.go);
	coro_event_wait(&d.done);
	peer_send(&d, "f");
	coro_event_wait(&d.done);
	shutdown(d.fd[1], SHUT_WR);
	coro_rt_wait(rt);
	CHECK(coro_close(d.fd[0]) == 0);
	close(d.fd[1]);

	CHECK(tcp_pair(d.fd) == 0);
	peer_send(&d, "g");
	shutdown(d.fd[1], SHUT_WR);
	CHECK(coro_go(rt, drain_eof, &d) == 0);
	coro_rt_wait(rt);
	CHECK(coro_close(d.fd[0]) == 0);
	close(d.fd[1]);

	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, d.fd) == 0);
	peer_send(&d, "x");
	peer_send(&d, "y");
	CHECK(coro_go(rt, drain_dgram, &d) == 0);
	coro_rt_wait(rt);
	CHECK(coro_close(d.fd[0]) == 0);
	close(d.fd[1]);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/*
 * coro_wait_input() waits only where coro_read() would wait first: after a
 * short read of a stream socket. Anywhere else it returns at once, also
 * with data queued after a full read, which a wait for a new edge would
 * never see (T_RUN fails the hang). It may return early, when an edge came
 * while nobody waited: the read after it then waits, so the reads here
 * each wait for their data first, and no such edge is left over.
 */
static void input_reader(void *arg)
{
	struct drain *d = arg;
	int fd = d->fd[0];
	char buf[64];

	CO_CHECK(coro_wait_input(fd, -1) == 0); /* not read yet: no wait */
	CO_CHECK(coro_read_timeout(fd, buf, sizeof(buf), 20) == -ETIMEDOUT);
	coro_event_signal(&d->done);
	drain_read(fd, buf, sizeof(buf), "a"); /* parked, then short */
	CO_CHECK(coro_wait_input(fd, 20) == -ETIMEDOUT); /* drained: waits */
	coro_event_signal(&d->done);
	CO_CHECK(coro_wait_input(fd, -1) == 0); /* woken by "b" */
	drain_read(fd, buf, sizeof(buf), "b");
	coro_event_signal(&d->done);
	coro_event_wait(&d->go);
	CO_CHECK(coro_wait_input(fd, -1) == 0); /* "c" came before the wait */
	drain_read(fd, buf, 4, "cccc");		/* full: more may be queued */
	CO_CHECK(coro_wait_input(fd, -1) == 0);
	drain_read(fd, buf, sizeof(buf), "dd");
}

static void test_wait_input(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct drain d = {.go = CORO_EVENT_INIT, .done = CORO_EVENT_INIT};

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, d.fd) == 0);
	CHECK(coro_go(rt, input_reader, &d) == 0);
	coro_event_wait(&d.done);
	usleep(20 * 1000); /* let the reader park in coro_read */
	peer_send(&d, "a");
	coro_event_wait(&d.done);
	usleep(20 * 1000); /* let the reader park in coro_wait_input */
	peer_send(&d, "b");
	coro_event_wait(&d.done);
	peer_send(&d, "c");
	usleep(20 * 1000);
	peer_send(&d, "cccdd");
	coro_event_signal(&d.go);
	coro_rt_wait(rt);
	CHECK(coro_close(d.fd[0]) == 0);
	close(d.fd[1]);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- timed waits, eventfd, cancel ---------------------------------------- */

static void timed(void *arg)
{
	int efd = *(int *)arg;
	uint64_t v = 1;

	CO_CHECK(coro_wait_readable(efd, 30) == -ETIMEDOUT);
	CO_CHECK(coro_write(efd, &v, sizeof(v)) == sizeof(v));
	CO_CHECK(coro_wait_readable(efd, 1000) == 0);
	CO_CHECK(coro_read(efd, &v, sizeof(v)) == sizeof(v));
	/* Cancelled from the test thread while parked with no deadline. */
	CO_CHECK(coro_wait_readable(efd, -1) == -ECANCELED);
	CO_CHECK(coro_read(efd, &v, sizeof(v)) == -ECANCELED);
	CO_CHECK(coro_close(efd) == 0);
}

static void test_timed_cancel(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	int efd = eventfd(0, EFD_CLOEXEC);

	CHECK(efd >= 0);
	CHECK(coro_go(rt, timed, &efd) == 0);
	usleep(200 * 1000);
	coro_rt_cancel_io(rt);
	coro_rt_wait(rt);
	T_CHECK(coro_read(0, NULL, 0) == -EPERM, "I/O outside a coroutine");
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- a reader's deadline is lazy: moved, not requeued, per read --------- */

struct lazy {
	int fd[2];
	struct coro_event timed_out; /* the other side is done */
};

static void lazy_peer(void *arg)
{
	struct lazy *z = arg;

	CO_CHECK(coro_sleep(5) == 0);
	CO_CHECK(coro_write(z->fd[1], "a", 1) == 1);
	coro_event_wait(&z->timed_out);
	CO_CHECK(coro_write(z->fd[1], "b", 1) == 1);
	/* Past the 500 ms deadline the reader's timer was queued for. */
	CO_CHECK(coro_sleep(1000) == 0);
	CO_CHECK(coro_write(z->fd[1], "c", 1) == 1);
}

static void lazy_reader(void *arg)
{
	struct lazy *z = arg;
	char c = 0;

	/* Its timer stays queued for +60 s once the byte came... */
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 60000) == 1 && c == 'a');
	/* ...and a shorter deadline moves it earlier (T_RUN's limit is 10 s) */
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 30) == -ETIMEDOUT);
	coro_event_signal(&z->timed_out);
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 500) == 1 && c == 'b');
	/*
	 * The timer queued for +500 ms fires while this read waits with a
	 * later deadline: the read goes on, it does not time out.
	 */
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 5000) == 1 && c == 'c');
	/* Closed with its timer queued (+5 s): the timer goes with the pd. */
	CO_CHECK(coro_close(z->fd[0]) == 0);
	CO_CHECK(coro_close(z->fd[1]) == 0);
	/* The numbers come back: a fresh reader times out on its own terms. */
	CO_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, z->fd) ==
		 0);
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 30) == -ETIMEDOUT);
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 0) == -ETIMEDOUT);
	CO_CHECK(coro_close(z->fd[0]) == 0);
	CO_CHECK(coro_close(z->fd[1]) == 0);
}

static void test_lazy_deadline(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct lazy z = {.timed_out = CORO_EVENT_INIT};

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, z.fd) == 0);
	CHECK(coro_go(rt, lazy_reader, &z) == 0);
	CHECK(coro_go(rt, lazy_peer, &z) == 0);
	coro_rt_wait(rt);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/*
 * A reader's timer queued in one runtime's heap is gone with its fd: the
 * same fd number, reused under a second runtime once the first is freed,
 * arms a timer in its own heap (a stale one would never fire there).
 */
static void late_write(void *arg)
{
	struct lazy *z = arg;

	CO_CHECK(coro_sleep(5) == 0);
	CO_CHECK(coro_write(z->fd[1], "a", 1) == 1);
	coro_event_signal(&z->timed_out);
}

static void queue_then_close(void *arg)
{
	struct lazy *z = arg;
	char c = 0;

	/* Parked with a deadline, so its timer is queued, then woken. */
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 60000) == 1);
	coro_event_wait(&z->timed_out); /* the writer is done with fd[1] */
	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 0) == -ETIMEDOUT);
	CO_CHECK(coro_close(z->fd[0]) == 0);
	CO_CHECK(coro_close(z->fd[1]) == 0);
}

static void time_out_again(void *arg)
{
	struct lazy *z = arg;
	char c = 0;

	CO_CHECK(coro_read_timeout(z->fd[0], &c, 1, 30) == -ETIMEDOUT);
	CO_CHECK(coro_close(z->fd[0]) == 0);
	CO_CHECK(coro_close(z->fd[1]) == 0);
}

static void test_deadline_other_rt(void)
{
	struct coro_rt *a = tcoro_rt_new(1), *b = tcoro_rt_new(1);
	struct lazy z = {.timed_out = CORO_EVENT_INIT};
	int first;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, z.fd) == 0);
	first = z.fd[0];
	CHECK(coro_go(a, queue_then_close, &z) == 0);
	CHECK(coro_go(a, late_write, &z) == 0);
	coro_rt_wait(a);
	coro_rt_free(a); /* b keeps the pd table */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, z.fd) == 0);
	if (z.fd[0] != first) { /* a's epoll fds went too: take the number */
		CHECK(dup3(z.fd[0], first, O_CLOEXEC) == first);
		close(z.fd[0]);
		z.fd[0] = first;
	}
	CHECK(coro_go(b, time_out_again, &z) == 0);
	coro_rt_wait(b);
	coro_rt_free(b);
	tcoro_check_clean();
}

/* ---- an accept loop over TCP, stopped by closing the listener ------------ */

#define CLIENTS 20

struct srv {
	int lfd;
	struct sockaddr_in addr;
	_Atomic int served;
};

static void conn_fn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[64];
	ssize_t n;

	while ((n = coro_read(fd, buf, sizeof(buf))) > 0)
		CO_CHECK(coro_write(fd, buf, (size_t)n) == n);
	coro_close(fd);
}

static void accept_loop(void *arg)
{
	struct srv *s = arg;
	int fd;

	while ((fd = coro_accept(s->lfd, NULL, NULL)) >= 0) {
		atomic_fetch_add(&s->served, 1);
		CO_CHECK(coro_go(coro_self_rt(), conn_fn,
				 (void *)(intptr_t)fd) == 0);
	}
	CO_CHECK(fd == -EBADF);
}

/* A plain-thread client: the runtime serves it from the other side. */
static int client_roundtrip(const struct sockaddr_in *addr)
{
	char buf[8];
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
		close(fd);
		return 0;
	}
	ok = write(fd, "ping\n", 5) == 5 && read(fd, buf, 5) == 5 &&
	     !memcmp(buf, "ping\n", 5);
	close(fd);
	return ok;
}

static void stopper(void *arg)
{
	struct srv *s = arg;

	coro_sleep(10);
	CO_CHECK(coro_close(s->lfd) == 0);
}

static void test_accept(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct srv s = {.addr.sin_family = AF_INET};
	socklen_t len = sizeof(s.addr);
	int i, ok = 0;

	s.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(s.lfd, (struct sockaddr *)&s.addr, len) == 0);
	CHECK(listen(s.lfd, 64) == 0);
	CHECK(getsockname(s.lfd, (struct sockaddr *)&s.addr, &len) == 0);
	CHECK(coro_go(rt, accept_loop, &s) == 0);
	for (i = 0; i < CLIENTS; i++)
		ok += client_roundtrip(&s.addr);
	T_CHECK(ok == CLIENTS, "%d of %d round trips", ok, CLIENTS);
	CHECK(coro_go(rt, stopper, &s) == 0);
	coro_rt_wait(rt);
	T_CHECK(s.served == CLIENTS, "%d accepted", s.served);
	coro_rt_free(rt);
	tcoro_check_clean();
}

int main(void)
{
	T_RUN(test_echo, 30);
	T_RUN(test_wake_parked, 10);
	T_RUN(test_read_drained, 10);
	T_RUN(test_wait_input, 10);
	T_RUN(test_timed_cancel, 10);
	T_RUN(test_lazy_deadline, 10);
	T_RUN(test_deadline_other_rt, 10);
	T_RUN(test_accept, 20);
	return t_done("test_coro_net");
}
