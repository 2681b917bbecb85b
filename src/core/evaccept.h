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

struct evaccept {
	int lfd;     /* the non-blocking listener */
	int reserve; /* a spare descriptor (/dev/null), or -1 */
};

/* Wraps a non-blocking listener and takes the reserve descriptor. */
void evaccept_init(struct evaccept *a, int lfd);

/*
 * Accepts one connection: non-blocking, close-on-exec, TCP_NODELAY.
 * Returns its fd, or:
 *   -EAGAIN  nothing is pending;
 *   -EBUSY   out of descriptors: one pending connection was told
 *            "ERR server busy" and closed (call again);
 *   -EMFILE  out of descriptors and nothing could be shed: stop watching
 *            the listener for EVACCEPT_BACKOFF_MS;
 *   another negative errno from accept4() for anything else.
 */
int evaccept_next(struct evaccept *a, const struct server_cfg *cfg);

/* Closes the listener and the reserve. */
void evaccept_close(struct evaccept *a);

#endif
