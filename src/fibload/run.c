/*
 * run - one fibload run from start to end.
 *
 *   resolve the server and pin (--cpu); start -t workers, each connecting
 *   its share of -c connections; wait at the gate until every worker has
 *   its connections up (or failed); set t0 and the measured window, open
 *   the gate. Then the main thread prints progress once a second until
 *   every worker has finished, and merges their results.
 */
#include "run.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "core/log.h"
#include "shared.h"
#include "worker.h"

/* The stop eventfd, for the signal handler. */
static int run_stop_fd = -1;
static volatile sig_atomic_t run_signalled;

static void run_on_signal(int sig)
{
	uint64_t one = 1;

	(void)sig;
	run_signalled = 1;
	if (write(run_stop_fd, &one, sizeof(one)) < 0)
		return;
}

static void run_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
}

/* The host once, then one address per --port entry. */
static int run_resolve(const struct fl_config *cfg, struct fl_shared *sh)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	int err;

	err = getaddrinfo(cfg->host, NULL, &hints, &ai);
	if (err) {
		log_msg("cannot resolve %s: %s", cfg->host, gai_strerror(err));
		return -EINVAL;
	}
	for (unsigned i = 0; i < cfg->nports; i++) {
		memcpy(&sh->addr[i], ai->ai_addr, ai->ai_addrlen);
		run_set_port(&sh->addr[i], cfg->ports[i]);
	}
	sh->addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* --cpu: pins this thread (the workers inherit it); reports the grant. */
static int run_pin(const struct fl_config *cfg, struct fl_result *res)
{
	cpu_set_t got;

	if (cfg->cpu_arg &&
	    sched_setaffinity(0, sizeof(cfg->cpus), &cfg->cpus) < 0) {
		log_err(-errno, "--cpu %s", cfg->cpu_arg);
		return -errno;
	}
	if (sched_getaffinity(0, sizeof(got), &got) < 0)
		return -errno;
	fl_format_cpus(&got, res->cpus, sizeof(res->cpus));
	return 0;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) /
		   1e6;
}

/* Everything fl_run() sets up, for its helpers. */
struct run_ctx {
	struct fl_shared sh;
	struct fl_worker *workers;
	unsigned nworkers;
	unsigned inited;  /* workers initialised */
	unsigned started; /* threads created */
	struct hist *sec; /* progress: one second, all workers */
};

/* Prints progress line k: the second ending at t0 + k s, or the last
 * span_s (< 1) seconds of the run. */
static void run_print_second(struct run_ctx *ctx, unsigned k, double span_s)
{
	struct fl_shared *sh = &ctx->sh;
	uint64_t reqs = 0, waited = 0;
	int warm;

	/* Give workers a moment to hand the second over. */
	for (unsigned i = 0; i < ctx->nworkers && waited < 200; i++) {
		struct fl_worker *w = &ctx->workers[i];

		while (atomic_load(&w->st.pub_sec) < k &&
		       !atomic_load(&w->finished) && waited++ < 200)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	hist_reset(ctx->sec);
	for (unsigned i = 0; i < ctx->nworkers; i++) {
		struct fl_worker *w = &ctx->workers[i];

		struct fl_stats *st = &w->st;

		pthread_mutex_lock(&st->pub_lock);
		hist_merge(ctx->sec, st->pub);
		reqs += st->pub_requests;
		hist_reset(st->pub);
		st->pub_requests = 0;
		pthread_mutex_unlock(&st->pub_lock);
	}
	if (!reqs && span_s < 1.0) /* the last, partial second: nothing */
		return;
	warm = sh->t0 + (uint64_t)(k - 1) * FL_SEC_NS < sh->warm_end;
	log_msg("%3us %10.0f rps  p50 %9.1f us  p99 %9.1f us%s", k,
		(double)reqs / span_s, hist_percentile(ctx->sec, 50) / 1e3,
		hist_percentile(ctx->sec, 99) / 1e3, warm ? "  (warm-up)" : "");
}

/* Waits for every worker to finish, printing progress once a second. */
static void run_wait(struct run_ctx *ctx)
{
	const struct fl_shared *sh = &ctx->sh;
	unsigned finished = 0, k = 1;
	uint64_t v, tick, now;
	int timeout;

	while (finished < ctx->nworkers) {
		struct pollfd p = {.fd = sh->done_fd, .events = POLLIN};

		timeout = -1;
		tick = sh->t0 + (uint64_t)k * FL_SEC_NS;
		now = fl_now();
		if (ctx->sec)
			timeout =
			    tick > now ? (int)((tick - now) / 1000000 + 1) : 0;
		if (poll(&p, 1, timeout) > 0 &&
		    read(sh->done_fd, &v, sizeof(v)) == sizeof(v))
			finished += (unsigned)v;
		if (ctx->sec && fl_now() >= tick && finished < ctx->nworkers)
			run_print_second(ctx, k++, 1.0);
	}
	now = fl_now();
	if (ctx->sec && now > sh->t0 + (uint64_t)(k - 1) * FL_SEC_NS + 1000000)
		run_print_second(ctx, k,
				 (double)(now - sh->t0) / 1e9 - (k - 1));
}

/* Counts the connections per port, and those that got no reply
 * (fl_conn_unanswered()). */
static void run_count_conns(struct run_ctx *ctx, struct fl_result *res)
{
	uint64_t last = 0;

	for (unsigned i = 0; i < ctx->nworkers; i++)
		for (unsigned j = 0; j < ctx->workers[i].nconns; j++)
			if (ctx->workers[i].conns[j].last_reply > last)
				last = ctx->workers[i].conns[j].last_reply;
	for (unsigned i = 0; i < ctx->nworkers; i++) {
		for (unsigned j = 0; j < ctx->workers[i].nconns; j++) {
			const struct fl_conn *c = &ctx->workers[i].conns[j];
			unsigned no = (unsigned)fl_conn_unanswered(c, last);

			res->ports.conns[c->port]++;
			res->ports.no_reply[c->port] += no;
			res->no_reply += no;
		}
	}
}

/* Adds one worker's stats to res. */
static void run_add(struct fl_result *res, const struct fl_stats *st)
{
	res->requests += st->requests;
	for (int k = 0; k < FL_ERR_KINDS; k++)
		res->errors[k] += st->errors[k];
	fl_errtexts_merge(&res->errtexts, &st->errtexts);
	hist_merge(res->lat, st->lat);
	if (res->raw)
		hist_merge(res->raw, st->raw);
}

/* Merges the workers' results into res. */
static int run_collect(struct run_ctx *ctx, struct fl_result *res)
{
	const struct fl_shared *sh = &ctx->sh;
	uint64_t stop = 0, last = 0, end;

	res->lat = hist_new(HIST_HOUR_NS, 3);
	if (!res->lat)
		return -ENOMEM;
	if (sh->cfg->rate > 0 && !(res->raw = hist_new(HIST_HOUR_NS, 3)))
		return -ENOMEM;
	for (unsigned i = 0; i < ctx->nworkers; i++) {
		struct fl_worker *w = &ctx->workers[i];

		run_add(res, &w->st);
		stop = w->stop_ns > stop ? w->stop_ns : stop;
		last = w->st.last_done > last ? w->st.last_done : last;
	}
	run_count_conns(ctx, res);
	for (int k = 0; k < FL_ERR_KINDS; k++)
		res->error_total += res->errors[k];
	/* -d: the window, cut short only by a signal or dead connections;
	 * -r: until the last measured request was settled. */
	end = sh->cfg->requests ? (last ? last : stop)
				: (stop < sh->end ? stop : sh->end);
	res->elapsed_s =
	    end > sh->warm_end ? (double)(end - sh->warm_end) / 1e9 : 0;
	res->interrupted = run_signalled;
	return 0;
}

/* Creates the workers, -c spread evenly over -t (the first c % t get one
 * more), with signals blocked so that only the main thread takes them. */
static int run_start(struct run_ctx *ctx)
{
	const struct fl_config *cfg = ctx->sh.cfg;
	unsigned n = ctx->nworkers, first = 0, share;
	sigset_t block, old;
	int err;

	ctx->workers = calloc(n, sizeof(ctx->workers[0]));
	if (!ctx->workers)
		return -ENOMEM;
	for (; ctx->inited < n; ctx->inited++) {
		share = cfg->conns / n + (ctx->inited < cfg->conns % n);
		err = fl_worker_init(&ctx->workers[ctx->inited], &ctx->sh,
				     first, share);
		if (err) {
			ctx->inited++; /* partly set up: release it too */
			return err;
		}
		first += share;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (err = 0; ctx->started < n; ctx->started++) {
		struct fl_worker *w = &ctx->workers[ctx->started];

		err = -pthread_create(&w->tid, NULL, fl_worker_main, w);
		if (err)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

/* Waits for the started workers at the gate, then opens it: with t0 and
 * the window set, or with abort set when go is 0. */
static void run_gate(struct run_ctx *ctx, int go)
{
	struct fl_shared *sh = &ctx->sh;
	const struct fl_config *cfg = sh->cfg;

	pthread_mutex_lock(&sh->gate_lock);
	while (sh->gate_ready < ctx->started)
		pthread_cond_wait(&sh->gate_cond, &sh->gate_lock);
	if (go) {
		sh->t0 = fl_now();
		sh->warm_end = sh->t0 + (uint64_t)(cfg->warmup_s * 1e9);
		sh->end = cfg->requests ? UINT64_MAX
					: sh->warm_end +
					      (uint64_t)(cfg->duration_s * 1e9);
	} else {
		atomic_store(&sh->abort, 1);
	}
	sh->gate_open = 1;
	pthread_cond_broadcast(&sh->gate_cond);
	pthread_mutex_unlock(&sh->gate_lock);
}

/* Starts the load once the connections are up, and waits for its end. */
static int run_go(struct run_ctx *ctx, struct fl_result *res)
{
	struct fl_shared *sh = &ctx->sh;
	const struct fl_config *cfg = sh->cfg;
	int err;

	pthread_mutex_lock(&sh->gate_lock);
	while (sh->gate_ready < ctx->started)
		pthread_cond_wait(&sh->gate_cond, &sh->gate_lock);
	pthread_mutex_unlock(&sh->gate_lock);
	for (unsigned i = 0; i < ctx->nworkers; i++)
		res->connected += ctx->workers[i].connected;
	if (!res->connected || run_signalled) {
		run_gate(ctx, 0);
		err = atomic_load(&sh->first_err);
		if (!run_signalled) {
			char ports[FL_PORTS_TEXT_MAX];

			fl_format_ports(cfg, ports, sizeof(ports));
			log_err(err ? err : -ECONNREFUSED,
				"cannot connect to %s:%s (%u connection%s "
				"tried)",
				cfg->host, ports, cfg->conns,
				cfg->conns == 1 ? "" : "s");
		}
		return err ? err : -ECONNREFUSED;
	}
	run_gate(ctx, 1);
	run_wait(ctx);
	return 0;
}

/* Joins the threads that were started, then frees everything. */
static void run_teardown(struct run_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->started; i++)
		pthread_join(ctx->workers[i].tid, NULL);
	for (unsigned i = 0; i < ctx->inited; i++)
		fl_worker_release(&ctx->workers[i]);
	free(ctx->workers);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	run_stop_fd = -1;
}

/* Many connections need many descriptors: raises the soft limit. */
static void run_raise_nofile(unsigned conns)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)conns + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int fl_run(const struct fl_config *cfg, const struct fl_work *work,
	   struct fl_result *res)
{
	struct run_ctx ctx = {.sh = {.cfg = cfg, .work = work}};
	struct sigaction sa = {.sa_handler = run_on_signal};
	double start_cpu = cpu_seconds();
	uint64_t start = fl_now();
	int err;

	memset(res, 0, sizeof(*res));
	ctx.nworkers = cfg->threads < cfg->conns ? cfg->threads : cfg->conns;
	res->threads = ctx.nworkers;
	err = run_resolve(cfg, &ctx.sh);
	if (!err)
		err = run_pin(cfg, res);
	if (err)
		return err;
	run_raise_nofile(cfg->conns);
	atomic_store(&ctx.sh.tickets, (long long)cfg->requests);
	ctx.sh.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctx.sh.stop_fd < 0)
		return -errno;
	ctx.sh.done_fd = eventfd(0, EFD_CLOEXEC);
	if (ctx.sh.done_fd < 0) {
		err = -errno;
		goto out_close_stop;
	}
	if (cfg->progress && !(ctx.sec = hist_new(HIST_HOUR_NS, 3))) {
		err = -ENOMEM;
		goto out_close_done;
	}
	run_signalled = 0;
	run_stop_fd = ctx.sh.stop_fd;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pthread_mutex_init(&ctx.sh.gate_lock, NULL);
	pthread_cond_init(&ctx.sh.gate_cond, NULL);
	err = run_start(&ctx);
	if (err) {
		log_err(err, "cannot start the load threads");
		run_gate(&ctx, 0);
		goto out_teardown;
	}
	err = run_go(&ctx, res);
	if (!err)
		err = run_collect(&ctx, res);
	res->wall_s = (double)(fl_now() - start) / 1e9;
	res->client_cpu_s = cpu_seconds() - start_cpu;
out_teardown:
	run_teardown(&ctx);
	pthread_cond_destroy(&ctx.sh.gate_cond);
	pthread_mutex_destroy(&ctx.sh.gate_lock);
	hist_free(ctx.sec);
out_close_done:
	close(ctx.sh.done_fd);
out_close_stop:
	close(ctx.sh.stop_fd);
	return err;
}

void fl_result_release(struct fl_result *res)
{
	hist_free(res->lat);
	hist_free(res->raw);
	res->lat = res->raw = NULL;
}
