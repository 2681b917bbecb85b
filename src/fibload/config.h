/*
 * config - what one fibload run does: the options, checked, and the table
 * of requests it sends with the exact reply each must get.
 *
 * Functions return 0 or a negative errno; on -EINVAL they have already
 * logged "fibload: --option: why". Pointer constructors return NULL.
 */
#ifndef FIBLOAD_CONFIG_H
#define FIBLOAD_CONFIG_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "core/net.h"
#include "sched.h"

#define FL_DEFAULT_PORT	      25000
#define FL_DEFAULT_DURATION_S 10.0
#define FL_DEFAULT_TIMEOUT_MS 5000
#define FL_MIX_MAX	      64 /* entries in --mix */
#define FL_MAX_CONNS	      100000
#define FL_MAX_PIPELINE	      4096
#define FL_MAX_N	      100000 /* the largest --n (fibd's default max with fast) */
#define FL_MAX_PORTS	      256 /* entries in --port's list */
#define FL_DEFAULT_SEED	      1

/* One --mix entry: ask for fib(n) with relative weight `weight`. */
struct fl_mix {
	uint64_t n;
	uint32_t weight;
};

/* The options of one run, as parsed from the command line. */
struct fl_config {
	char host[NET_HOST_MAX];      /* -H: server address or name */
	uint16_t ports[FL_MAX_PORTS]; /* -p: connection i goes to i % nports */
	unsigned nports;
	unsigned conns;	   /* -c: connections in total */
	unsigned threads;  /* -t: event-loop threads (<= conns) */
	double duration_s; /* -d: measured seconds; 0 with -r */
	uint64_t requests; /* -r: measured requests; 0 with -d */
	double warmup_s;   /* --warmup: seconds not counted, before */
	unsigned pipeline; /* -P: requests in flight per connection */
	struct fl_mix mix[FL_MIX_MAX]; /* --n / --mix */
	unsigned mix_len;
	double rate; /* --rate: total requests/s; 0 = closed loop */
	enum fl_arrivals arrivals; /* --arrivals: the open loop's gaps */
	uint64_t seed;	      /* --seed: the PRNG behind poisson arrivals */
	unsigned timeout_ms;  /* --timeout: a request older than this fails */
	int allow_no_reply;   /* --allow-no-reply: exit 0 all the same */
	int resend;	      /* --resend: unanswered requests again */
	int busy_poll;	      /* --busy-poll: wait for nothing, spin */
	const char *cpu_arg;  /* --cpu as given, or NULL */
	cpu_set_t cpus;	      /* --cpu parsed */
	int progress;	      /* --progress: a line per second on stderr */
	int json;	      /* --json: one JSON object on stdout */
	const char *hist_out; /* --hist-out: write the result here, or NULL */
	char *request;	      /* --request, escapes resolved (malloc'd) */
	size_t request_len;
	char *expect; /* --expect, escapes resolved (malloc'd) */
	size_t expect_len;
};

/* Fills in every default (127.0.0.1:25000, -c 1 -t 1 -d 10 -P 1 --n 1,
 * uniform arrivals, seed 1). */
void fl_config_default(struct fl_config *cfg);

/* Frees what the parsers allocated. */
void fl_config_release(struct fl_config *cfg);

/* Parses --mix "N:W,N:W,..." (weight defaults to 1 when ":W" is left out). */
int fl_parse_mix(const char *arg, struct fl_config *cfg);

/* Parses -p "25000", "25000,25002", "25000-25003,26000" (in that order,
 * repeats allowed) into cfg->ports and cfg->nports. */
int fl_parse_ports(const char *arg, struct fl_config *cfg);

/* Writes "25000", "25000-25003" or "25000,26000" for cfg's ports into buf
 * (FL_PORTS_TEXT_MAX bytes hold any list). */
#define FL_PORTS_TEXT_MAX (FL_MAX_PORTS * 6 + 1)
void fl_format_ports(const struct fl_config *cfg, char *buf, size_t cap);

/* Parses --cpu "1", "0,1", "0-3,6" into a CPU set. */
int fl_parse_cpus(const char *arg, cpu_set_t *set);

/*
 * Resolves C escapes (\r \n \t \\ \" \0 \xHH) in s into a malloc'd buffer
 * (*out, *len; NUL-terminated for convenience). -EINVAL on a bad escape.
 */
int fl_unescape(const char *opt, const char *s, char **out, size_t *len);

/* Writes "0-1,3" for set into buf (always terminated). */
void fl_format_cpus(const cpu_set_t *set, char *buf, size_t cap);

/*
 * The request table: every distinct request with the reply it must get.
 */
struct fl_item {
	char *req; /* request bytes, '\n' included */
	size_t req_len;
	char *exp; /* expected reply line without "\r\n" */
	size_t exp_len;
	uint64_t cum_weight; /* running total of weights up to this item */
};

struct fl_work {
	struct fl_item *items;
	unsigned nitems;
	uint64_t total_weight;
	int fib; /* 1: fib/1 replies (digits or "ERR ..." is well formed) */
	size_t max_req;	 /* longest request */
	size_t max_line; /* replies longer than this are protocol errors */
};

/* Builds the table from cfg: fib(n) for each mix entry, or the
 * --request/--expect pair. Returns NULL when out of memory. */
struct fl_work *fl_work_new(const struct fl_config *cfg);
void fl_work_free(struct fl_work *work);

/* Picks an item by weight; r is a uniform random 64-bit number. */
unsigned fl_work_pick(const struct fl_work *work, uint64_t r);

/* What a reply line says about the request it answers. */
enum fl_verdict {
	FL_REPLY_OK,	   /* equal to the expected line */
	FL_REPLY_WRONG,	   /* a well-formed reply, but not the true value */
	FL_REPLY_MALFORMED /* not a reply of the protocol at all */
};

/* Checks one reply line (line[0..len), its '\n' excluded) against item. */
enum fl_verdict fl_work_check(const struct fl_work *work, unsigned item,
			      const char *line, size_t len);

#endif
