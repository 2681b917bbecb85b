#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "procstat.h"

#define METRICS_LINE_SIZE 64
/* Forked processes (many's children) with gauges of their own. */
#define METRICS_PROCS 256

/*
 * One thread's counters (or a few threads', past METRICS_SHARDS). Aligned
 * to a cache line, so that two shards never share one. A gauge may go up
 * on one shard and down on another (a pool worker, a coroutine that moved),
 * so only its sum over shards, read as signed, means anything.
 */
struct metrics_shard {
	_Alignas(METRICS_LINE_SIZE)
	    atomic_ullong requests[METRICS_PROTOS][METRICS_RESULTS];
	atomic_ullong codes[METRICS_CODES];
	atomic_ullong buckets[METRICS_BUCKETS + 1]; /* the last one: +Inf */
	atomic_ullong latency_ns;		    /* the histogram's sum */
	atomic_ullong in_flight; /* gauges: +1 and -1 modulo 2^64 */
	atomic_ullong conns_open;
	atomic_ullong conns_total;
	atomic_ullong conns_rejected;
};

/*
 * The gauges of one forked process. A process killed with connections open
 * never takes its +1s back; kept apart from the shards (which processes
 * share round robin), they are dropped whole when its parent reaps it
 * (metrics_process_gone()). Its counters stay in the shards: what it
 * served, it served.
 */
struct metrics_proc {
	_Alignas(METRICS_LINE_SIZE) atomic_int pid; /* 0: a free slot */
	atomic_ullong in_flight;
	atomic_ullong conns_open;
};

struct metrics_region {
	atomic_uint next; /* the next shard handed out, round robin */
	struct metrics_shard shards[METRICS_SHARDS];
	struct metrics_proc procs[METRICS_PROCS];
};

static struct metrics_region metrics_private;
static struct metrics_region *metrics = &metrics_private;
static _Thread_local struct metrics_shard *metrics_mine;
/* Set in a child forked after metrics_init(): its gauges go to a slot. */
static atomic_bool metrics_forked;
static _Atomic(struct metrics_proc *) metrics_proc_mine;
/* This thread's in-flight gauge (metrics_in_flight()), once looked up. */
static _Thread_local atomic_ullong *metrics_in_flight_mine;

/* The status codes fibd sends, in the order of the codes[] counters. */
static const int metrics_code_list[METRICS_CODES] = {
    200, 400, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505,
};

/* Upper bounds of the latency buckets: nanoseconds, and as Prometheus
 * prints them. */
static const uint64_t metrics_bound_ns[METRICS_BUCKETS] = {
    1000,	2500,	    5000,	10000,	     25000,	50000,
    100000,	250000,	    500000,	1000000,     2500000,	5000000,
    10000000,	25000000,   50000000,	100000000,   250000000, 500000000,
    1000000000, 2500000000, 5000000000, 10000000000,
};
static const char *const metrics_bound_text[METRICS_BUCKETS] = {
    "1e-06",  "2.5e-06", "5e-06",  "1e-05", "2.5e-05", "5e-05",
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025",  "0.005",
    "0.01",   "0.025",	 "0.05",   "0.1",   "0.25",    "0.5",
    "1",      "2.5",	 "5",	   "10",
};

static const char *const metrics_result_name[METRICS_RESULTS] = {
    [PROTO_OK] = "ok",
    [PROTO_EMPTY] = "empty",
    [PROTO_NOT_NUMBER] = "not_number",
    [PROTO_NEGATIVE] = "negative",
    [PROTO_TOO_LARGE] = "too_large",
    [PROTO_LINE_TOO_LONG] = "line_too_long",
    [PROTO_INTERNAL] = "internal",
    [PROTO_BUSY] = "busy",
};

static const char *const metrics_proto_name[METRICS_PROTOS] = {
    [METRICS_LINE] = "line",
    [METRICS_HTTP] = "http",
};

static void metrics_after_fork(void)
{
	atomic_store(&metrics_forked, true);
	atomic_store(&metrics_proc_mine, NULL);
	metrics_in_flight_mine = NULL; /* the child's one thread: its slot */
}

/*
 * A forked process's gauge slot, claimed the first time it moves a gauge;
 * NULL in the process that called metrics_init() (its gauges stay in the
 * shards, where its threads do not contend) or when every slot is taken.
 */
static struct metrics_proc *metrics_proc(void)
{
	struct metrics_proc *p = atomic_load(&metrics_proc_mine);
	int free_pid;

	if (p || !atomic_load_explicit(&metrics_forked, memory_order_relaxed))
		return p;
	for (unsigned i = 0; i < METRICS_PROCS; i++) {
		free_pid = 0;
		p = &metrics->procs[i];
		if (atomic_compare_exchange_strong(&p->pid, &free_pid,
						   (int)getpid())) {
			atomic_store(&metrics_proc_mine, p);
			return p;
		}
	}
	return NULL;
}

int metrics_init(void)
{
	struct metrics_region *r;

	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return -errno;
	/* Fresh anonymous pages are zero: every counter starts at 0. */
	metrics = r;
	return -pthread_atfork(NULL, NULL, metrics_after_fork);
}

void metrics_process_gone(pid_t pid)
{
	struct metrics_proc *p;

	for (unsigned i = 0; i < METRICS_PROCS && pid > 0; i++) {
		p = &metrics->procs[i];
		if (atomic_load(&p->pid) != pid)
			continue;
		atomic_store(&p->in_flight, 0);
		atomic_store(&p->conns_open, 0);
		atomic_store(&p->pid, 0);
	}
}

uint64_t metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* This thread's shard, taken round robin the first time it counts. */
static struct metrics_shard *metrics_shard(void)
{
	unsigned i;

	if (!metrics_mine) {
		i = atomic_fetch_add_explicit(&metrics->next, 1,
					      memory_order_relaxed);
		metrics_mine = &metrics->shards[i % METRICS_SHARDS];
	}
	return metrics_mine;
}

static void metrics_add(atomic_ullong *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static void metrics_gauge(atomic_ullong *g, int delta)
{
	if (delta > 0)
		atomic_fetch_add_explicit(g, 1, memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(g, 1, memory_order_relaxed);
}

static unsigned metrics_bucket(uint64_t ns)
{
	unsigned i = 0;

	while (i < METRICS_BUCKETS && ns > metrics_bound_ns[i])
		i++;
	return i;
}

static unsigned metrics_code_index(int code)
{
	for (unsigned i = 0; i < METRICS_CODES; i++)
		if (metrics_code_list[i] == code)
			return i;
	return metrics_code_index(500); /* fibd never sends the others */
}

void metrics_batch_code(struct metrics_batch *b, int code)
{
	b->codes[metrics_code_index(code)]++;
	b->any_code = true;
}

/* Adds a batch's per-request counters (not its latency) to shard s. */
static void metrics_flush_counts(struct metrics_shard *s,
				 const struct metrics_batch *b)
{
	for (uint32_t t = b->touched; t; t &= t - 1) {
		unsigned bit = (unsigned)__builtin_ctz(t);
		unsigned p = bit / METRICS_RESULTS, i = bit % METRICS_RESULTS;

		metrics_add(&s->requests[p][i], b->results[p][i]);
	}
	if (!b->any_code)
		return;
	for (unsigned i = 0; i < METRICS_CODES; i++)
		if (b->codes[i])
			metrics_add(&s->codes[i], b->codes[i]);
}

void metrics_batch_flush(struct metrics_batch *b)
{
	struct metrics_shard *s;
	uint64_t d;

	if (!b->n && !b->any_code)
		return;
	s = metrics_shard();
	metrics_flush_counts(s, b);
	if (b->n) {
		d = metrics_now_ns() - b->t0;
		metrics_add(&s->buckets[metrics_bucket(d)], b->n);
		metrics_add(&s->latency_ns, d * b->n);
	}
	*b = (struct metrics_batch)METRICS_BATCH_INIT;
}

/*
 * The in-flight and open-connections gauges: this process's slot or shard.
 * The in-flight one moves twice per computed request, so each thread looks
 * it up once.
 */
static atomic_ullong *metrics_in_flight(void)
{
	struct metrics_proc *p;

	if (metrics_in_flight_mine)
		return metrics_in_flight_mine;
	p = metrics_proc();
	metrics_in_flight_mine =
	    p ? &p->in_flight : &metrics_shard()->in_flight;
	return metrics_in_flight_mine;
}

static atomic_ullong *metrics_conns_open(void)
{
	struct metrics_proc *p = metrics_proc();

	return p ? &p->conns_open : &metrics_shard()->conns_open;
}

uint64_t metrics_job_begin(void)
{
	metrics_gauge(metrics_in_flight(), 1);
	return metrics_now_ns();
}

void metrics_job_end(enum metrics_proto p, enum proto_status result,
		     uint64_t t0)
{
	struct metrics_shard *s = metrics_shard();
	uint64_t d = metrics_now_ns() - t0;

	metrics_gauge(metrics_in_flight(), -1);
	metrics_add(&s->requests[p][result], 1);
	metrics_add(&s->buckets[metrics_bucket(d)], 1);
	metrics_add(&s->latency_ns, d);
}

void metrics_compute_begin(void)
{
	metrics_gauge(metrics_in_flight(), 1);
}

void metrics_compute_end(void)
{
	metrics_gauge(metrics_in_flight(), -1);
}

void metrics_conn_open(void)
{
	metrics_gauge(metrics_conns_open(), 1);
	metrics_add(&metrics_shard()->conns_total, 1);
}

void metrics_conn_close(void)
{
	metrics_gauge(metrics_conns_open(), -1);
}

void metrics_conn_rejected(void)
{
	metrics_add(&metrics_shard()->conns_rejected, 1);
}

/* The sum over shards of the counter at byte offset off in a shard. */
static uint64_t metrics_sum(size_t off)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < METRICS_SHARDS; i++) {
		char *s = (char *)&metrics->shards[i];
		v += atomic_load_explicit((atomic_ullong *)(s + off),
					  memory_order_relaxed);
	}
	return v;
}

/* The sum over the process slots of the gauge at byte offset off in one. */
static uint64_t metrics_sum_procs(size_t off)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < METRICS_PROCS; i++) {
		char *p = (char *)&metrics->procs[i];
		v += atomic_load_explicit((atomic_ullong *)(p + off),
					  memory_order_relaxed);
	}
	return v;
}

/*
 * A gauge's sum over the shards (at shard_off) and the process slots (at
 * proc_off); a stale per-shard view never shows below zero.
 */
static uint64_t metrics_sum_gauge(size_t shard_off, size_t proc_off)
{
	int64_t v =
	    (int64_t)(metrics_sum(shard_off) + metrics_sum_procs(proc_off));

	return v < 0 ? 0 : (uint64_t)v;
}

#define METRICS_OFF(field)	offsetof(struct metrics_shard, field)
#define METRICS_PROC_OFF(field) offsetof(struct metrics_proc, field)

uint64_t metrics_requests(enum metrics_proto p, enum proto_status result)
{
	return metrics_sum(METRICS_OFF(requests[p][result]));
}

/* A bounded appender: out of room, it remembers and writes no more. */
struct metrics_out {
	char *buf;
	size_t cap, len;
	bool full;
};

__attribute__((format(printf, 2, 3))) static void
metrics_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

static void metrics_family(struct metrics_out *o, const char *name,
			   const char *type, const char *help)
{
	metrics_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		       type);
}

static void metrics_render_requests(struct metrics_out *o)
{
	metrics_family(o, "fibd_requests_total", "counter",
		       "fib requests answered, by protocol and result.");
	for (unsigned p = 0; p < METRICS_PROTOS; p++)
		for (unsigned i = 0; i < METRICS_RESULTS; i++)
			metrics_printf(
			    o,
			    "fibd_requests_total{proto=\"%s\",result=\"%s\"} "
			    "%llu\n",
			    metrics_proto_name[p], metrics_result_name[i],
			    (unsigned long long)metrics_requests(p, i));
	metrics_family(o, "fibd_http_responses_total", "counter",
		       "HTTP responses sent, by status code.");
	for (unsigned i = 0; i < METRICS_CODES; i++)
		metrics_printf(
		    o, "fibd_http_responses_total{code=\"%d\"} %llu\n",
		    metrics_code_list[i],
		    (unsigned long long)metrics_sum(METRICS_OFF(codes[i])));
}

/* Cumulative buckets; count is their total, so the two always agree. */
static void metrics_render_latency(struct metrics_out *o)
{
	const char *name = "fibd_request_duration_seconds";
	uint64_t cum = 0, sum = metrics_sum(METRICS_OFF(latency_ns));

	metrics_family(o, name, "histogram",
		       "Time from reading a fib request to queueing its "
		       "reply.");
	for (unsigned i = 0; i <= METRICS_BUCKETS; i++) {
		cum += metrics_sum(METRICS_OFF(buckets[i]));
		metrics_printf(o, "%s_bucket{le=\"%s\"} %llu\n", name,
			       i < METRICS_BUCKETS ? metrics_bound_text[i]
						   : "+Inf",
			       (unsigned long long)cum);
	}
	metrics_printf(o, "%s_sum %llu.%09llu\n%s_count %llu\n", name,
		       (unsigned long long)(sum / 1000000000u),
		       (unsigned long long)(sum % 1000000000u), name,
		       (unsigned long long)cum);
}

static void metrics_render_one(struct metrics_out *o, const char *name,
			       const char *type, const char *help, uint64_t v)
{
	metrics_family(o, name, type, help);
	metrics_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/*
 * The standard process metrics of the Prometheus clients, for the process
 * that answers the scrape (with many: one child). Left out without /proc.
 */
static void metrics_render_process(struct metrics_out *o)
{
	struct procstat ps;

	if (procstat_read(&ps) < 0)
		return;
	metrics_family(o, "process_cpu_seconds_total", "counter",
		       "Total user and system CPU time spent in seconds.");
	metrics_printf(o, "process_cpu_seconds_total %.2f\n", ps.cpu_seconds);
	metrics_render_one(o, "process_resident_memory_bytes", "gauge",
			   "Resident memory size in bytes.", ps.resident_bytes);
	metrics_render_one(o, "process_virtual_memory_bytes", "gauge",
			   "Virtual memory size in bytes.", ps.virtual_bytes);
	metrics_render_one(o, "process_open_fds", "gauge",
			   "Number of open file descriptors.", ps.open_fds);
	metrics_render_one(o, "process_max_fds", "gauge",
			   "Maximum number of open file descriptors.",
			   ps.max_fds);
	metrics_family(o, "process_start_time_seconds", "gauge",
		       "Start time of the process since unix epoch in "
		       "seconds.");
	metrics_printf(o, "process_start_time_seconds %.2f\n", ps.start_time);
}

int metrics_render(char *buf, size_t cap)
{
	struct metrics_out o = {.buf = buf, .cap = cap};

	metrics_render_requests(&o);
	metrics_render_one(&o, "fibd_requests_in_flight", "gauge",
			   "fib requests being computed or queued for a "
			   "worker.",
			   metrics_sum_gauge(METRICS_OFF(in_flight),
					     METRICS_PROC_OFF(in_flight)));
	metrics_render_one(&o, "fibd_connections_open", "gauge",
			   "Client connections being served.",
			   metrics_sum_gauge(METRICS_OFF(conns_open),
					     METRICS_PROC_OFF(conns_open)));
	metrics_render_one(&o, "fibd_connections_total", "counter",
			   "Client connections served since the start.",
			   metrics_sum(METRICS_OFF(conns_total)));
	metrics_render_one(&o, "fibd_connections_rejected_total", "counter",
			   "Connections turned away: --max-conns, or no "
			   "memory.",
			   metrics_sum(METRICS_OFF(conns_rejected)));
	metrics_render_latency(&o);
	metrics_render_process(&o);
	return o.full ? -ENOSPC : (int)o.len;
}
