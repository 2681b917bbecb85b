/*
 * md1_server - a server whose service time is deterministic, for bench/md1.
 *
 * bench/md1 checks fibload's open loop against the M/D/1 queue, and that
 * needs a server that serves every request in the same time S. fibd's
 * serial model does when the CPU's speed holds still: it computes the same
 * fib(N) for each request. On a shared VM it does not hold still; the same
 * fib(27) took 233 us in one hour and 440 us in the next. This server
 * takes the CPU's speed out of the check: it serves one request at a time,
 * in arrival order, and each request's service lasts exactly S of wall-clock
 * time, spent spinning on the clock.
 *
 * The queue it models:
 *   - a request arrives when its line is complete in the server's buffer;
 *     the server notices within a few microseconds, because it polls the
 *     socket while it spins;
 *   - its service starts when it has arrived and the one before it has
 *     ended, and ends S later, when its reply is written;
 *   - the write and the parsing are done inside the next service's spin, so
 *     back to back the server serves exactly one request per S.
 *
 * It speaks fibd's line protocol for N <= 93 (the replies fibload checks),
 * one connection at a time, and exits 0 on SIGTERM or SIGINT.
 *
 * Usage: build/bench/md1_server SERVICE_US [PORT]
 * Prints "md1_server: listening on 127.0.0.1:PORT" on stderr when ready.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../src/core/fib.h"
#include "../src/core/net.h"

#define QUEUE_MAX      8192 /* requests read and not yet served */
#define LINE_MAX_BYTES 32   /* "93\r\n" and then some */
#define FIB_U64_MAX_N  93   /* fib(93) is the last that fits 64 bits */

struct request {
	uint64_t arrival_ns;
	int n; /* -1: not a number this server answers */
};

struct md1_conn {
	int fd;
	int eof;
	char line[LINE_MAX_BYTES];
	size_t line_len;
	struct request queue[QUEUE_MAX];
	size_t head, count;
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int parse_n(const char *s, size_t len)
{
	int n = 0;

	if (len && s[len - 1] == '\r')
		len--;
	if (!len || len > 2)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (s[i] - '0');
	}
	return n <= FIB_U64_MAX_N ? n : -1;
}

/* Splits bytes into requests, each stamped with the time it became whole. */
static void take_bytes(struct md1_conn *c, const char *p, size_t len,
		       uint64_t now)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '\n') {
			if (c->line_len < sizeof(c->line))
				c->line[c->line_len] = p[i];
			c->line_len++;
			continue;
		}
		if (c->count == QUEUE_MAX) {
			fprintf(stderr,
				"md1_server: more than %d requests "
				"queued; dropping the connection\n",
				QUEUE_MAX);
			c->eof = 1;
			return;
		}
		c->queue[(c->head + c->count++) % QUEUE_MAX] = (struct request){
		    .arrival_ns = now,
		    .n = c->line_len <= sizeof(c->line)
			     ? parse_n(c->line, c->line_len)
			     : -1,
		};
		c->line_len = 0;
	}
}

/* Reads what has come, without waiting. */
static void poll_socket(struct md1_conn *c)
{
	char buf[4096];
	ssize_t got;

	for (;;) {
		got = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (got > 0) {
			take_bytes(c, buf, (size_t)got, now_ns());
			continue;
		}
		if (got == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = 1;
		return;
	}
}

static void reply(struct md1_conn *c, int n)
{
	char out[32];
	size_t len;

	if (n < 0) {
		len = (size_t)snprintf(out, sizeof(out),
				       "ERR md1_server "
				       "answers 0..%d\n",
				       FIB_U64_MAX_N);
	} else {
		len = fib_u64_to_dec(fib_iter((unsigned)n), out);
		out[len++] = '\n';
	}
	if (net_write_all(c->fd, out, len) < 0)
		c->eof = 1;
}

/*
 * Serves one connection: each request for exactly service_ns, in order.
 * It never sleeps, idle or not: on a VM a wake-up from idle costs 50 to
 * 150 us, more the idler the CPU, and that would be counted as waiting.
 * On close it prints what the queue was: "md1_server: closed: REQUESTS
 * requests, mean wait WAIT us" (from arrival to the start of service).
 */
static void serve(int fd, uint64_t service_ns)
{
	static struct md1_conn c;
	uint64_t free_at = 0, start, end, served = 0, waited_ns = 0;
	struct request r;

	c = (struct md1_conn){.fd = fd};
	while (!stopping && !c.eof) {
		poll_socket(&c);
		if (!c.count)
			continue;
		r = c.queue[c.head];
		c.head = (c.head + 1) % QUEUE_MAX;
		c.count--;
		start = r.arrival_ns > free_at ? r.arrival_ns : free_at;
		end = start + service_ns;
		while (now_ns() < end)
			poll_socket(&c);
		reply(&c, r.n);
		free_at = end;
		served++;
		waited_ns += start - r.arrival_ns;
	}
	close(fd);
	fprintf(stderr,
		"md1_server: closed: %llu requests, mean wait %.1f "
		"us\n",
		(unsigned long long)served,
		served ? (double)waited_ns / (double)served / 1e3 : 0.0);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_stop};
	long service_us = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
	long port = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
	int lfd, fd;

	if (argc < 2 || argc > 3 || service_us < 1 || service_us > 1000000 ||
	    port < 0 || port > 65535) {
		fprintf(stderr,
			"usage: md1_server SERVICE_US [PORT]\n"
			"  serves fibd's line protocol (N <= %d), one request "
			"at a time,\n  each in exactly SERVICE_US (1..1000000) "
			"of wall-clock time\n",
			FIB_U64_MAX_N);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: accept() returns */
	sigaction(SIGINT, &sa, NULL);
	net_ignore_sigpipe();
	lfd = net_listen("127.0.0.1", (uint16_t)port, 0, 16);
	if (lfd < 0) {
		fprintf(stderr, "md1_server: listen: %s\n", strerror(-lfd));
		return 1;
	}
	fprintf(stderr,
		"md1_server: listening on 127.0.0.1:%d (service %ld "
		"us)\n",
		net_local_port(lfd), service_us);
	while (!stopping) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		net_nodelay(fd);
		serve(fd, (uint64_t)service_us * 1000u);
	}
	close(lfd);
	return 0;
}
