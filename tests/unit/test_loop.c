/*
 * loop: the event loop's shared bookkeeping, driven by hand through a fake
 * backend, without epoll or io_uring. The clock a connection runs on (idle,
 * header, linger) and the next wait; expiry (abort, 408 line, a busy
 * connection's clock restarted); a refused connection answered once its
 * time is up; a stop (the grace caps every deadline, read sides shut); the
 * tick that runs only while something lives.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"
#include "../t.h"

static struct {
	int busy_watched, busy_ended, paused, stopped;
	int expired, ticks, turns, accepted;
	struct evconn *last_expired;
} seen;

static int fake_busy_watch(struct loop *l, struct loop_busy *b)
{
	(void)l;
	(void)b;
	seen.busy_watched++;
	return 0;
}

static void fake_busy_end(struct loop *l, struct loop_busy *b)
{
	seen.busy_ended++;
	loop_busy_answer(l, b);
}

static void fake_accept_pause(struct loop *l, bool paused)
{
	(void)l;
	seen.paused += paused;
}

static void fake_stop(struct loop *l)
{
	(void)l;
	seen.stopped++;
}

static const struct loop_backend fake_backend = {
    .busy_watch = fake_busy_watch,
    .busy_end = fake_busy_end,
    .accept_pause = fake_accept_pause,
    .stop = fake_stop,
};

static int model_accept(struct loop *l, int fd)
{
	(void)l;
	seen.accepted++;
	close(fd);
	return 0;
}

static void model_event(struct loop *l, void *ptr, const struct loop_event *ev)
{
	(void)l;
	(void)ptr;
	(void)ev;
}

static void model_job(struct loop *l, struct tpool_job *job)
{
	(void)l;
	(void)job;
}

static void model_expire(struct loop *l, struct evconn *c)
{
	(void)l;
	seen.expired++;
	seen.last_expired = c;
	evconn_tq_remove(c); /* what settling a closed one does */
}

static void model_tick(struct loop *l, uint64_t now)
{
	(void)l;
	(void)now;
	seen.ticks++;
}

static void model_turn(struct loop *l)
{
	(void)l;
	seen.turns++;
}

static const struct loop_ops model_ops = {
    .accept = model_accept,
    .event = model_event,
    .job = model_job,
    .expire = model_expire,
    .tick = model_tick,
    .turn = model_turn,
};

static struct server_cfg cfg;
static atomic_uint nopen;

/* A loop on a real, idle, non-blocking listener. */
static void start(struct loop *l, unsigned idle_ms, unsigned header_ms)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	T_CHECK(lfd >= 0 && !bind(lfd, (struct sockaddr *)&a, sizeof(a)) &&
		    !listen(lfd, 8),
		"listener: %s", strerror(errno));
	memset(&seen, 0, sizeof(seen));
	server_cfg_default(&cfg);
	cfg.idle_timeout_ms = idle_ms;
	cfg.header_timeout_ms = header_ms;
	atomic_store(&nopen, 0);
	T_CHECK(loop_init(l, &fake_backend, &model_ops, &cfg, lfd, NULL, 1,
			  &nopen) == 0);
}

/* An open connection of l; *peer is the client's end. */
static struct evconn *conn(struct loop *l, int *peer)
{
	static struct evconn cs[4];
	static unsigned next;
	struct evconn *c = &cs[next++ % 4];
	int sv[2];

	T_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	evconn_init(c, sv[0], &l->ecfg);
	*peer = sv[1];
	return c;
}

static void case_clock(void)
{
	struct loop l;
	struct evconn *c;
	int peer, ms;

	start(&l, 10000, 3000);
	T_CHECK(loop_wait_ms(&l) == -1, "nothing to wait for: forever");
	c = conn(&l, &peer);
	loop_clock(&l, c);
	T_CHECK(c->tq == &l.idle, "an empty connection runs the idle clock");
	ms = loop_wait_ms(&l);
	T_CHECK(ms > 9000 && ms <= 10000, "waits %d ms for it", ms);
	T_CHECK(buf_append(&c->in, "12", 2) == 0);
	loop_clock(&l, c);
	T_CHECK(c->tq == &l.header, "half a line runs the header clock");
	ms = loop_wait_ms(&l);
	T_CHECK(ms > 2000 && ms <= 3000, "waits %d ms for it", ms);
	c->state = EVCONN_LINGER;
	loop_clock(&l, c);
	T_CHECK(c->tq == &l.linger, "a polite close runs the linger clock");
	T_CHECK(loop_wait_ms(&l) <= EVCONN_LINGER_MS);
	c->state = EVCONN_OPEN;
	evconn_tq_remove(c);
	evconn_close(c);
	close(peer);
	loop_destroy(&l);
}

static void case_expire(void)
{
	struct loop l;
	struct evconn *idle, *slow, *computing;
	int p1, p2, p3;

	start(&l, 5, 3);
	idle = conn(&l, &p1);
	slow = conn(&l, &p2);
	computing = conn(&l, &p3);
	loop_clock(&l, idle);
	T_CHECK(buf_append(&slow->in, "12", 2) == 0);
	loop_clock(&l, slow);
	loop_clock(&l, computing);
	computing->njobs = 1; /* the pool computes for it */
	poll(NULL, 0, 20);
	T_CHECK(loop_turn_end(&l) >= 0);
	T_CHECK(seen.expired == 2, "%d expired, want 2", seen.expired);
	T_CHECK(idle->state == EVCONN_DONE, "silent too long: aborted");
	T_CHECK(slow->state == EVCONN_FAILING, "a slow request: answered");
	T_CHECK(buf_used(&slow->out) == strlen(PROTO_TIMEOUT_LINE) &&
		    !memcmp(buf_head(&slow->out), PROTO_TIMEOUT_LINE,
			    strlen(PROTO_TIMEOUT_LINE)),
		"the timeout line waits to be sent");
	T_CHECK(computing->tq == &l.idle && computing->state == EVCONN_OPEN,
		"a connection waiting for the pool keeps its clock");
	T_CHECK(seen.turns == 1, "ops->turn once a turn");
	computing->njobs = 0;
	evconn_tq_remove(computing);
	evconn_close(idle);
	evconn_close(slow);
	evconn_close(computing);
	close(p1);
	close(p2);
	close(p3);
	loop_destroy(&l);
}

static void case_busy(void)
{
	struct loop l;
	char got[64] = "";
	int sv[2], ms;
	ssize_t n;

	start(&l, 0, 0);
	cfg.max_conns = 0;
	T_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	loop_admit(&l, sv[0]);
	T_CHECK(seen.accepted == 0 && seen.busy_watched == 1 && l.nbusy == 1,
		"beyond --max-conns: waits for its first bytes");
	ms = loop_wait_ms(&l);
	T_CHECK(ms >= 0 && ms <= EVACCEPT_BUSY_WAIT_MS, "wait %d ms", ms);
	poll(NULL, 0, EVACCEPT_BUSY_WAIT_MS + 10);
	loop_turn_end(&l);
	T_CHECK(seen.busy_ended == 1 && l.nbusy == 0, "its time is up");
	n = read(sv[1], got, sizeof(got) - 1);
	T_CHECK(n > 0 && strstr(got, "busy"), "told busy: %s", got);
	T_CHECK(read(sv[1], got, sizeof(got)) == 0, "then closed");
	T_CHECK(atomic_load(&nopen) == 0, "never counted");
	close(sv[1]);
	cfg.max_conns = 1;
	loop_admit(&l, socket(AF_INET, SOCK_STREAM, 0));
	T_CHECK(seen.accepted == 1 && l.nlive == 1 && atomic_load(&nopen) == 1,
		"within --max-conns: the model's, counted");
	loop_destroy(&l);
}

static void case_stop(void)
{
	struct loop l;
	struct evconn *c;
	char b;
	int peer;

	start(&l, 60000, 0);
	c = conn(&l, &peer);
	loop_clock(&l, c);
	loop_begin_stop(&l);
	T_CHECK(seen.stopped == 1 && l.stopping && l.ecfg.stopping);
	T_CHECK(l.acc.lfd == -1, "the listener is closed");
	T_CHECK(c->deadline_ms <= loop_now_ms() + LOOP_STOP_GRACE_MS,
		"the grace caps the idle deadline");
	T_CHECK(loop_wait_ms(&l) <= LOOP_STOP_GRACE_MS);
	T_CHECK(read(c->fd, &b, 1) == 0, "its read side is shut");
	T_CHECK(loop_running(&l) == false, "nothing lives: the loop ends");
	evconn_tq_remove(c);
	evconn_close(c);
	close(peer);
	loop_destroy(&l);
}

static void case_tick(void)
{
	struct loop l;

	start(&l, 0, 0);
	l.tick_ms = 10;
	T_CHECK(loop_turn_end(&l) == -1, "no tick while nothing lives");
	loop_admit(&l, socket(AF_INET, SOCK_STREAM, 0));
	T_CHECK(loop_wait_ms(&l) == 0, "something lives: the tick is due");
	loop_turn_end(&l);
	T_CHECK(seen.ticks == 1, "%d ticks", seen.ticks);
	T_CHECK(loop_wait_ms(&l) > 0 && loop_wait_ms(&l) <= 10);
	poll(NULL, 0, 15);
	loop_turn_end(&l);
	T_CHECK(seen.ticks == 2, "%d ticks", seen.ticks);
	loop_destroy(&l);
}

int main(void)
{
	T_RUN(case_clock, 30);
	T_RUN(case_expire, 30);
	T_RUN(case_busy, 30);
	T_RUN(case_stop, 30);
	T_RUN(case_tick, 30);
	return t_done("test_loop");
}
