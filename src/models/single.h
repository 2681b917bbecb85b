/*
 * single - the talk's one_server loop, for single and for each process of
 * many (the talk's many_server is "one_server, N times").
 */
#ifndef FIBD_MODELS_SINGLE_H
#define FIBD_MODELS_SINGLE_H

#include "../core/server.h"

/*
 * A serial server sheds a client that stalls this long while others wait
 * in its listen backlog: a write that makes no progress (the client does
 * not read its replies), or a request left unfinished (a line without its
 * newline, an HTTP head without its blank line) however it trickles in.
 */
#define SINGLE_STALL_MS 1000

/*
 * The one_server loop on the non-blocking listener lfd: accept a client,
 * serve it to the end, accept the next, until a stop; then the clients
 * already in the accept queue are served too (serve_accept()). Returns 0.
 *
 * A well-behaved client keeps the server as long as it likes; the others
 * wait. But while it serves, the loop also watches the listener, and once
 * someone waits there it sheds the client being served if that client
 * stalls for SINGLE_STALL_MS, or, when idle_shed_ms is not 0, sits idle
 * between requests for idle_shed_ms. A client shed mid-request hears so
 * (serve.h), then the next one is accepted. So with N stalling clients
 * ahead of it, a normal one waits about N * SINGLE_STALL_MS. Without anyone
 * waiting only --idle-timeout and --header-timeout apply.
 */
int single_serve(int lfd, const struct server_cfg *cfg, unsigned idle_shed_ms);

#endif
