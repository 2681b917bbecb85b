/*
 * evaccept - accept() for a non-blocking event loop, out of descriptors
 * included.
 *
 * When a process runs out of descriptors (EMFILE, ENFILE), accept() fails
 * but the connection stays in the backlog, so a level-triggered listener
 * stays readable and a naive loop spins at 100% CPU. server_accept() solves
 * that for blocking loops by sleeping; an event loop must not sleep. Here we
 * keep one descriptor in reserve: when out of descriptors, give it up,
 * accept the pending connection, tell it "ERR server busy", close it and
 * take the reserve back. The backlog shrinks, nobody spins, nobody hangs
 * waiting. Only if even that fails does the loop have to stop watching the
 * listener for EVACCEPT_BACKOFF_MS.
 */
#ifndef FIBD_CORE_EVACCEPT_H
#define FIBD_CORE_EVACCEPT_H

#include "server.h"

#define EVACCEPT_BACKOFF_MS 100

/*
 * Busy. A connection turned away (--max-conns, or no descriptor for it) is
 * answered in its own protocol: 503 for HTTP, "ERR server busy" for
 * fib/1. Its protocol is in its first bytes, which a client sends right
 * after connect() returns, so usually a few microseconds after the server
 * could accept it: a look at once would often find nothing yet. So the
 * server gives the first bytes up to EVACCEPT_BUSY_WAIT_MS to come, then
 * answers what it sees (nothing: the line). The wait is bounded both
 * ways: a blocking accept loop waits at most that long per refusal (it is
 * at its limit: it would accept nobody else meanwhile anyway), and an
 * event loop never waits at all, but keeps at most EVACCEPT_BUSY_MAX
 * refused connections waiting in its set (beyond them it answers at once)
 * and answers each when its bytes come or its time is up. Out of
 * descriptors, an event loop answers the one connection accepted in the
 * reserve's place at once (evaccept_next()); coro, whose accept loop may
 * park, holds it in the reserve's place for the wait (evaccept_shed()).
 * Answered at once, a client whose request comes in just after the close
 * gets RST, which can destroy the answer before the client reads it.
 */
#define EVACCEPT_BUSY_WAIT_MS 20
#define EVACCEPT_BUSY_MAX     32

struct evaccept {
	int lfd;     /* the non-blocking listener */
	int reserve; /* a spare descriptor (/dev/null), or -1 */
	int lent;    /* the connection the reserve is lent to, or -1 */
};

/* Wraps a non-blocking listener and takes the reserve descriptor. */
void evaccept_init(struct evaccept *a, int lfd);

/*
 * Accepts one connection: non-blocking, close-on-exec, TCP_NODELAY.
 * Returns its fd, or:
 *   -EAGAIN  nothing is pending;
 *   -EBUSY   out of descriptors: one pending connection was told
 *            "ERR server busy" (503 for HTTP) at once and closed (call
 *            again);
 *   -EMFILE  out of descriptors and nothing could be shed: stop watching
 *            the listener for EVACCEPT_BACKOFF_MS;
 *   another negative errno from accept4() for anything else.
 */
int evaccept_next(struct evaccept *a, const struct server_cfg *cfg);

/*
 * Out of descriptors: give the reserve up and accept one pending
 * connection in its place. Returns -EBUSY with it in a->lent, or -EMFILE
 * when the reserve is out already or nothing could be accepted (back off).
 * Answering it after the wait for its first bytes, not at once, matters:
 * a client whose request arrives after the answer and the close gets RST,
 * which can destroy the answer before the client reads it.
 */
int evaccept_shed(struct evaccept *a);

/* The lent connection is closed: take the reserve back. */
void evaccept_shed_done(struct evaccept *a);

/*
 * Answers a connection turned away now, without waiting: reads what it has
 * sent so far (so that closing sends FIN, not RST with the answer lost),
 * sends http_busy_reply() for it, and counts it in
 * fibd_connections_rejected_total. Does not close fd: the caller does,
 * its own way (coro_close() on a coroutine's descriptor).
 */
void evaccept_tell_busy(int fd, const struct server_cfg *cfg);

/* Closes the listener and the reserve. */
void evaccept_close(struct evaccept *a);

#endif
