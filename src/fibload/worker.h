/*
 * worker - one load thread: an epoll loop over its share of the
 * connections, and the state every worker shares with the run.
 *
 * A worker records into its own histograms and counters; the run merges
 * them after joining the threads. The only state written by several
 * threads is in struct fl_shared and is atomic (or under pub_lock).
 */
#ifndef FIBLOAD_WORKER_H
#define FIBLOAD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "hist.h"

/* Error kinds, counted separately. */
enum fl_err {
	FL_ERR_CONNECT,	 /* connect() failed or took longer than --timeout */
	FL_ERR_READ,	 /* read failed, or the server closed the connection */
	FL_ERR_WRITE,	 /* write failed */
	FL_ERR_TIMEOUT,	 /* a request got no reply within --timeout */
	FL_ERR_PROTOCOL, /* a reply that is not a reply (or none was asked) */
	FL_ERR_WRONG,	 /* a reply that is not the true value */
	FL_ERR_KINDS
};

/* "connect", "read", ... */
const char *fl_err_name(enum fl_err kind);

/* Pause before reconnecting after a failed connect. */
#define FL_RECONNECT_NS (100ull * 1000000ull)
#define FL_SEC_NS	1000000000ull

/* Set up once by the run, read by every worker. */
struct fl_shared {
	const struct fl_config *cfg;
	const struct fl_work *work;
	struct sockaddr_storage addr; /* the server, resolved */
	socklen_t addr_len;
	uint64_t t0;	      /* CLOCK_MONOTONIC ns when the load starts */
	uint64_t warm_end;    /* t0 + warm-up: the measured window opens */
	uint64_t end;	      /* -d: the window closes; UINT64_MAX with -n */
	double period_ns;     /* --rate: ns between two requests in total */
	atomic_llong tickets; /* -n: measured requests still to be sent */
	atomic_int abort;     /* nothing connected: workers leave at once */
	atomic_int first_err; /* first connect errno (negative), for messages */
	int stop_fd; /* eventfd: readable once a signal stops the run */
	int done_fd; /* eventfd: each worker adds 1 when it leaves */
	/* The start gate: workers check in once connected, then wait. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	unsigned gate_ready; /* workers checked in */
	int gate_open;	     /* t0 is set (or abort): go */
};

struct fl_conn;

struct fl_worker {
	struct fl_shared *sh;
	unsigned id;
	pthread_t tid;
	int epfd;
	struct fl_conn *conns; /* this worker's connections */
	unsigned nconns;
	unsigned first_conn; /* global index of conns[0] (open-loop phase) */
	unsigned live;	     /* connections not given up */
	unsigned connected;  /* connections up when the load started */
	int running;	     /* the load has started: requests may go out */
	int stopping;	     /* a signal asked the run to stop */
	char *rbuf;	     /* read buffer shared by this worker's conns */
	size_t rbuf_cap;
	uint64_t next_scan; /* when timeouts and reconnects are due */
	uint64_t next_due;  /* --rate: when the next request is due */
	uint64_t ticketed;  /* -n: measured requests in flight */
	uint64_t stop_ns;   /* when the loop ended */
	uint64_t last_done; /* -n: when the last measured request ended */

	/* Results, merged by the run. */
	uint64_t requests;	       /* measured correct replies */
	uint64_t errors[FL_ERR_KINDS]; /* every error, warm-up included */
	struct hist *lat;	       /* latency (from intended send) */
	struct hist *raw;	       /* --rate: latency from actual send */

	/* --progress: this second's figures, handed over once a second. */
	struct hist *sec;
	uint64_t sec_requests;
	uint64_t sec_end;	  /* when the current second ends */
	pthread_mutex_t pub_lock; /* guards pub and pub_requests */
	struct hist *pub;	  /* seconds handed over, not yet printed */
	uint64_t pub_requests;
	atomic_uint pub_sec; /* seconds handed over so far */
	atomic_int finished; /* the loop has ended */
};

/* Allocates w's connections and buffers. Returns 0 or -ENOMEM. */
int fl_worker_init(struct fl_worker *w, struct fl_shared *sh, unsigned id,
		   unsigned first_conn, unsigned nconns);
void fl_worker_release(struct fl_worker *w);

/* The thread body (pthread_create's start routine; arg is the worker). */
void *fl_worker_main(void *arg);

/* Counts n errors of a kind. */
static inline void fl_count(struct fl_worker *w, enum fl_err kind, uint64_t n)
{
	w->errors[kind] += n;
}

/* Records one finished request (done at now) into the progress figures,
 * handing the last second over first when now is past it. */
void fl_worker_tick(struct fl_worker *w, uint64_t now);

/* -n: takes up to want send tickets. Returns how many were granted. */
unsigned fl_claim(struct fl_shared *sh, unsigned want);

/* CLOCK_MONOTONIC in ns (vDSO: no system call). */
uint64_t fl_now(void);

#endif
