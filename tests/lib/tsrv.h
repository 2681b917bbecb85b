/*
 * tsrv - start a fibd under test and talk to it.
 *
 * The server runs as a child process with its stderr in a temporary file;
 * tsrv_start() waits for its "listening on" lines and records the ports.
 * Client sockets get a receive timeout, so a server that never answers
 * fails the test instead of hanging it.
 */
#ifndef FIBD_TESTS_TSRV_H
#define FIBD_TESTS_TSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TSRV_MAX_PORTS	   16
#define TSRV_RCV_TIMEOUT_S 30

struct tsrv {
	pid_t pid;
	int nports;
	uint16_t ports[TSRV_MAX_PORTS];
	char log_path[64]; /* the server's stderr */
};

/*
 * One model as fibd --list-models --json describes it (src/models/model.h
 * says what each property means). Suites decide by these, never by name.
 */
struct tsrv_model {
	char name[32];
	char concurrency[16]; /* serial, parallel, sharded */
	char talk_server[32]; /* "" when it stands for none */
	bool forks;	      /* forks children (many) */
	bool serial_shards;   /* a shard serves one client at a time */
	bool fits_10k;	      /* holds 10,000 connections cheaply */
	bool takes_ports;     /* --ports applies */
	bool takes_offload;   /* --offload applies */
	bool uses_io_uring;   /* valgrind cannot follow it */
	bool python_serial;   /* --engine python: one compute at a time */
	unsigned max_workers; /* --workers' limit; 0: --workers is an error */
};

/*
 * Fills models[0..max) from BUILD/fibd --list-models --json, keeping only
 * those named in $FIBD_MODELS (comma-separated) when it is set. Returns the
 * count, or 0 when fibd fails or its JSON does not parse.
 */
int tsrv_list_models(struct tsrv_model *models, int max);

/*
 * Parses json, the output of fibd --list-models --json, into
 * models[0..max), every model, in order. Returns the count, or -1 when it
 * is not an array of objects with every property (what is wrong goes to
 * stderr).
 */
int tsrv_parse_models(const char *json, struct tsrv_model *models, int max);

/* Runs fn as test "MODEL/NAME" in a child with a timeout (see t_run()). */
void tsrv_case(const struct tsrv_model *m, const char *name, void (*fn)(void),
	       unsigned secs);
#define TSRV_CASE(m, fn, secs) tsrv_case(m, #fn, fn, secs)

/* When set, the fibd to start instead of BUILD/fibd. */
extern const char *tsrv_fibd;

/* When > 0, servers started from now on run with RLIMIT_NOFILE this low. */
extern unsigned tsrv_nofile;

/* The build directory: $FIBD_BUILD, or "build". */
const char *tsrv_build_dir(void);

/*
 * Starts BUILD/fibd --model MODEL --listen 127.0.0.1:0 ARGS... (args is
 * NULL-terminated, may be NULL) and waits until it has announced nports
 * ports. Returns 0, or -1 (and logs why) when it did not come up.
 */
int tsrv_start(struct tsrv *s, const char *model, const char *const *args,
	       int nports);

/*
 * Runs BUILD/fibd ARGS... (args NULL-terminated; no --model or --listen
 * added) to its end, with its stdout and stderr in out[0..cap),
 * NUL-terminated. For command lines that exit at once: one still running
 * after 10 s is killed. Returns its exit status, or -1 when it did not run,
 * died by a signal or was killed.
 */
int tsrv_run(const char *const *args, char *out, size_t cap);

/*
 * Sends SIGTERM, waits, and returns the exit status; -1 if it died by a
 * signal or did not exit within timeout_s (then it is killed).
 */
int tsrv_stop(struct tsrv *s, unsigned timeout_s);

/* Connects to port index idx, with TCP_NODELAY and the receive timeout. */
int tsrv_connect(const struct tsrv *s, int idx);

/* Writes all of str. Returns 0 or -errno. */
int t_send(int fd, const char *str);

/* Writes all of p[0..len). Returns 0 or -errno. */
int t_send_bytes(int fd, const void *p, size_t len);

/*
 * Reads until nlines '\n' have arrived, EOF, an error or the timeout.
 * NUL-terminates buf. Returns the number of complete lines read.
 */
int t_read_lines(int fd, char *buf, size_t cap, int nlines);

/* Sends req, reads one reply line into buf. Returns 1 on a line, else 0. */
int t_ask(int fd, const char *req, char *buf, size_t cap);

/* True when the peer has closed (read gives 0 or ECONNRESET) within the
 * timeout. */
int t_wait_eof(int fd);

/* True when nothing is readable on fd right now (no reply has come). */
int t_nothing_pending(int fd);

/*
 * Sends p[0..len) again and again without blocking, until 200 ms pass with
 * no progress (every buffer on the way is full: the peer stopped reading)
 * or max bytes went out. Returns the bytes sent.
 */
size_t t_fill(int fd, const void *p, size_t len, size_t max);

/* Closes fd with an RST instead of a FIN (SO_LINGER 0). */
void t_reset(int fd);

/* fib(n) in decimal with '\n', exact: the reference for replies. */
void t_expect(uint64_t n, char *buf, size_t cap);

#endif
