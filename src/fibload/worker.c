/*
 * worker - one load thread. It connects its share of the connections,
 * waits for the run to give the start, then loops on epoll: replies in,
 * requests out, and between events the timers: timeouts and reconnects,
 * the --rate schedule, the end of the window and the progress second.
 */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

#define FL_READ_CHUNK (256u * 1024u) /* bytes one read() may bring */
#define FL_EVENTS     256	     /* events taken per epoll wait */

static const char *const fl_err_names[FL_ERR_KINDS] = {
    "connect", "read", "write", "timeout", "protocol", "wrong",
};

const char *fl_err_name(enum fl_err kind)
{
	return fl_err_names[kind];
}

uint64_t fl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * FL_SEC_NS + (uint64_t)ts.tv_nsec;
}

unsigned fl_claim(struct fl_shared *sh, unsigned want)
{
	long long left =
	    atomic_load_explicit(&sh->tickets, memory_order_relaxed);
	long long take;

	while (left > 0) {
		take = left < (long long)want ? left : (long long)want;
		if (atomic_compare_exchange_weak(&sh->tickets, &left,
						 left - take))
			return (unsigned)take;
	}
	return 0;
}

int fl_worker_init(struct fl_worker *w, struct fl_shared *sh, unsigned id,
		   unsigned first_conn, unsigned nconns)
{
	const struct fl_config *cfg = sh->cfg;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	memset(w, 0, sizeof(*w));
	w->epfd = -1;
	w->sh = sh;
	w->id = id;
	w->first_conn = first_conn;
	w->nconns = w->live = nconns;
	pthread_mutex_init(&w->pub_lock, NULL);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		return -errno;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, sh->stop_fd, &ev) < 0)
		return -errno;
	w->conns = calloc(nconns, sizeof(w->conns[0]));
	if (!w->conns)
		return -ENOMEM;
	for (unsigned i = 0; i < nconns; i++)
		if (fl_conn_init(&w->conns[i], w, first_conn + i))
			return -ENOMEM;
	w->rbuf_cap = FL_READ_CHUNK + sh->work->max_line + 1;
	w->rbuf = malloc(w->rbuf_cap);
	w->lat = hist_new(HIST_HOUR_NS, 3);
	if (!w->rbuf || !w->lat)
		return -ENOMEM;
	if (cfg->rate > 0 && !(w->raw = hist_new(HIST_HOUR_NS, 3)))
		return -ENOMEM;
	if (cfg->progress) {
		w->sec = hist_new(HIST_HOUR_NS, 3);
		w->pub = hist_new(HIST_HOUR_NS, 3);
		if (!w->sec || !w->pub)
			return -ENOMEM;
	}
	return 0;
}

void fl_worker_release(struct fl_worker *w)
{
	for (unsigned i = 0; w->conns && i < w->nconns; i++)
		fl_conn_release(&w->conns[i]);
	free(w->conns);
	free(w->rbuf);
	hist_free(w->lat);
	hist_free(w->raw);
	hist_free(w->sec);
	hist_free(w->pub);
	if (w->epfd >= 0)
		close(w->epfd);
	pthread_mutex_destroy(&w->pub_lock);
	w->conns = NULL;
	w->rbuf = NULL;
	w->epfd = -1;
}

/* Hands this second's progress figures to the run (under pub_lock). */
static void worker_publish(struct fl_worker *w)
{
	pthread_mutex_lock(&w->pub_lock);
	hist_merge(w->pub, w->sec);
	w->pub_requests += w->sec_requests;
	pthread_mutex_unlock(&w->pub_lock);
	hist_reset(w->sec);
	w->sec_requests = 0;
}

void fl_worker_tick(struct fl_worker *w, uint64_t now)
{
	uint64_t k;

	if (now < w->sec_end)
		return;
	worker_publish(w);
	k = (now - w->sh->t0) / FL_SEC_NS;
	w->sec_end = w->sh->t0 + (k + 1) * FL_SEC_NS;
	atomic_store(&w->pub_sec, (unsigned)k);
}

/* Waits for events until deadline (ns). Returns how many, 0 on EINTR. */
static int worker_wait(struct fl_worker *w, struct epoll_event *ev,
		       uint64_t deadline, uint64_t now)
{
	struct timespec ts = {0, 0};
	int n;

	if (deadline > now) {
		ts.tv_sec = (time_t)((deadline - now) / FL_SEC_NS);
		ts.tv_nsec = (long)((deadline - now) % FL_SEC_NS);
	}
	n = epoll_pwait2(w->epfd, ev, FL_EVENTS,
			 deadline == UINT64_MAX ? NULL : &ts, NULL);
	return n < 0 ? 0 : n;
}

/* Dispatches events; a NULL pointer is the run's stop eventfd. */
static void worker_dispatch(struct fl_worker *w, struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		if (!ev[i].data.ptr)
			w->stopping = 1;
		else
			fl_conn_event(w, ev[i].data.ptr, ev[i].events);
	}
}

/* Starts every connection and waits until each is up or has failed. */
static void worker_connect_all(struct fl_worker *w)
{
	struct epoll_event ev[FL_EVENTS];
	uint64_t now = fl_now(), deadline, d;
	unsigned pending;

	for (unsigned i = 0; i < w->nconns; i++)
		fl_conn_connect(w, &w->conns[i], now);
	while (!w->stopping) {
		now = fl_now();
		deadline = UINT64_MAX;
		pending = 0;
		for (unsigned i = 0; i < w->nconns; i++) {
			struct fl_conn *c = &w->conns[i];

			if (c->state != CONN_CONNECTING)
				continue;
			d = fl_conn_scan(w, c, now);
			if (c->state == CONN_CONNECTING) {
				pending++;
				deadline = d < deadline ? d : deadline;
			}
		}
		if (!pending)
			break;
		worker_dispatch(w, ev, worker_wait(w, ev, deadline, now));
	}
	for (unsigned i = 0; i < w->nconns; i++)
		w->connected += w->conns[i].state == CONN_READY;
}

/* Timeouts and reconnects for every connection. */
static void worker_scan(struct fl_worker *w, uint64_t now)
{
	uint64_t next = now + (uint64_t)w->sh->cfg->timeout_ms * 1000000ull;
	uint64_t d;

	for (unsigned i = 0; i < w->nconns; i++) {
		d = fl_conn_scan(w, &w->conns[i], now);
		next = d < next ? d : next;
	}
	w->next_scan = next;
}

/* --rate: sends what is due; fl_conn_fill() lowers next_due. */
static void worker_pace(struct fl_worker *w, uint64_t now)
{
	w->next_due = UINT64_MAX;
	for (unsigned i = 0; i < w->nconns; i++)
		fl_conn_fill(w, &w->conns[i], now);
}

static int worker_done(struct fl_worker *w, uint64_t now)
{
	const struct fl_shared *sh = w->sh;

	if (!w->live || w->stopping)
		return 1;
	if (sh->cfg->requests)
		return w->ticketed == 0 && atomic_load(&sh->tickets) == 0;
	return now >= sh->end;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void worker_loop(struct fl_worker *w)
{
	const struct fl_shared *sh = w->sh;
	struct epoll_event ev[FL_EVENTS];
	uint64_t now, deadline;

	for (;;) {
		now = fl_now();
		if (worker_done(w, now))
			break;
		if (now >= w->next_scan)
			worker_scan(w, now);
		if (sh->cfg->rate > 0)
			worker_pace(w, now);
		if (w->sec)
			fl_worker_tick(w, now);
		deadline = min_u64(w->next_scan, sh->end);
		if (sh->cfg->rate > 0)
			deadline = min_u64(deadline, w->next_due);
		if (w->sec)
			deadline = min_u64(deadline, w->sec_end);
		worker_dispatch(w, ev, worker_wait(w, ev, deadline, now));
	}
	w->stop_ns = fl_now();
	for (unsigned i = 0; i < w->nconns; i++)
		fl_conn_finish(w, &w->conns[i], w->stop_ns);
}

/* The load starts: the first requests go out on every connection. */
static void worker_start(struct fl_worker *w)
{
	const struct fl_shared *sh = w->sh;
	uint64_t now = fl_now();

	w->running = 1;
	w->next_scan = now;
	w->next_due = UINT64_MAX;
	w->sec_end = sh->t0 + FL_SEC_NS;
	for (unsigned i = 0; i < w->nconns; i++) {
		struct fl_conn *c = &w->conns[i];

		c->due = sh->t0 + (uint64_t)((double)c->idx * sh->period_ns);
		fl_conn_fill(w, c, now);
	}
}

void *fl_worker_main(void *arg)
{
	struct fl_worker *w = arg;
	struct fl_shared *sh = w->sh;
	uint64_t one = 1;

	/* --rate wakes up on time: no 50 us of timer slack. */
	if (sh->cfg->rate > 0)
		prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	worker_connect_all(w);
	pthread_mutex_lock(&sh->gate_lock);
	sh->gate_ready++;
	pthread_cond_broadcast(&sh->gate_cond);
	while (!sh->gate_open)
		pthread_cond_wait(&sh->gate_cond, &sh->gate_lock);
	pthread_mutex_unlock(&sh->gate_lock);
	if (!atomic_load(&sh->abort)) {
		worker_start(w);
		worker_loop(w);
		if (w->sec)
			worker_publish(w);
	}
	atomic_store(&w->finished, 1);
	if (write(sh->done_fd, &one, sizeof(one)) < 0)
		return NULL;
	return NULL;
}
