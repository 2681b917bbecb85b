/* worker - one load thread's epoll loop (see worker.h). */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define FL_READ_CHUNK (256u * 1024u) /* bytes one read() may bring */
#define FL_EVENTS     256	     /* events taken per epoll wait */

int fl_worker_init(struct fl_worker *w, struct fl_shared *sh,
		   unsigned first_conn, unsigned nconns)
{
	const struct fl_config *cfg = sh->cfg;
	struct fl_conn_ctx *x = &w->ctx;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int err;

	memset(w, 0, sizeof(*w));
	x->sh = sh;
	x->st = &w->st;
	x->live = w->nconns = nconns;
	x->epfd = -1;
	err = fl_stats_init(&w->st, cfg->rate > 0, cfg->progress);
	if (err)
		return err;
	x->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (x->epfd < 0)
		return -errno;
	if (epoll_ctl(x->epfd, EPOLL_CTL_ADD, sh->stop_fd, &ev) < 0)
		return -errno;
	w->conns = calloc(nconns, sizeof(w->conns[0]));
	if (!w->conns)
		return -ENOMEM;
	for (unsigned i = 0; i < nconns; i++)
		if (fl_conn_init(&w->conns[i], sh, first_conn + i))
			return -ENOMEM;
	x->rbuf_cap = FL_READ_CHUNK + sh->work->max_line + 1;
	x->rbuf = malloc(x->rbuf_cap);
	return x->rbuf ? 0 : -ENOMEM;
}

void fl_worker_release(struct fl_worker *w)
{
	for (unsigned i = 0; w->conns && i < w->nconns; i++)
		fl_conn_release(&w->conns[i]);
	free(w->conns);
	free(w->ctx.rbuf);
	fl_stats_release(&w->st);
	if (w->ctx.epfd >= 0)
		close(w->ctx.epfd);
	w->conns = NULL;
	w->ctx.rbuf = NULL;
	w->ctx.epfd = -1;
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
	n = epoll_pwait2(w->ctx.epfd, ev, FL_EVENTS,
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
			fl_conn_event(&w->ctx, ev[i].data.ptr, ev[i].events);
	}
}

/* Starts every connection and waits until each is up or has failed. */
static void worker_connect_all(struct fl_worker *w)
{
	struct epoll_event ev[FL_EVENTS];
	uint64_t now = fl_now(), deadline, d;
	unsigned pending;

	for (unsigned i = 0; i < w->nconns; i++)
		fl_conn_connect(&w->ctx, &w->conns[i], now);
	while (!w->stopping) {
		now = fl_now();
		deadline = UINT64_MAX;
		pending = 0;
		for (unsigned i = 0; i < w->nconns; i++) {
			struct fl_conn *c = &w->conns[i];

			if (c->state != CONN_CONNECTING)
				continue;
			d = fl_conn_scan(&w->ctx, c, now);
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
	uint64_t next = now + (uint64_t)w->ctx.sh->cfg->timeout_ms * FL_MS_NS;
	uint64_t d;

	for (unsigned i = 0; i < w->nconns; i++) {
		d = fl_conn_scan(&w->ctx, &w->conns[i], now);
		next = d < next ? d : next;
	}
	w->ctx.next_scan = next;
}

/* --rate: sends what is due; fl_conn_fill() lowers next_due. */
static void worker_pace(struct fl_worker *w, uint64_t now)
{
	w->ctx.next_due = UINT64_MAX;
	for (unsigned i = 0; i < w->nconns; i++)
		fl_conn_fill(&w->ctx, &w->conns[i], now);
}

static int worker_done(struct fl_worker *w, uint64_t now)
{
	const struct fl_shared *sh = w->ctx.sh;

	if (!w->ctx.live || w->stopping)
		return 1;
	if (sh->cfg->requests)
		return w->st.ticketed == 0 && atomic_load(&sh->tickets) == 0;
	return now >= sh->end;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void worker_loop(struct fl_worker *w)
{
	const struct fl_config *cfg = w->ctx.sh->cfg;
	struct epoll_event ev[FL_EVENTS];
	uint64_t now, deadline;

	for (;;) {
		now = fl_now();
		if (worker_done(w, now))
			break;
		if (now >= w->ctx.next_scan)
			worker_scan(w, now);
		if (cfg->rate > 0)
			worker_pace(w, now);
		fl_stats_tick(&w->st, now);
		deadline = min_u64(w->ctx.next_scan, w->ctx.sh->end);
		if (cfg->rate > 0)
			deadline = min_u64(deadline, w->ctx.next_due);
		if (w->st.sec)
			deadline = min_u64(deadline, w->st.sec_end);
		if (cfg->busy_poll)
			deadline = now; /* look, and come straight back */
		worker_dispatch(w, ev, worker_wait(w, ev, deadline, now));
	}
	w->stop_ns = fl_now();
	for (unsigned i = 0; i < w->nconns; i++)
		fl_conn_finish(&w->ctx, &w->conns[i], w->stop_ns);
}

/* The load starts: the first requests go out on every connection. */
static void worker_start(struct fl_worker *w)
{
	uint64_t now = fl_now();

	w->ctx.running = 1;
	w->ctx.next_scan = now;
	w->ctx.next_due = UINT64_MAX;
	w->st.t0 = w->ctx.sh->t0;
	w->st.sec_end = w->st.t0 + FL_SEC_NS;
	for (unsigned i = 0; i < w->nconns; i++)
		fl_conn_start(&w->ctx, &w->conns[i], now);
}

/* Checks in at the run's gate once connected; waits for it to open. */
static void worker_gate(struct fl_shared *sh)
{
	pthread_mutex_lock(&sh->gate_lock);
	sh->gate_ready++;
	pthread_cond_broadcast(&sh->gate_cond);
	while (!sh->gate_open)
		pthread_cond_wait(&sh->gate_cond, &sh->gate_lock);
	pthread_mutex_unlock(&sh->gate_lock);
}

void *fl_worker_main(void *arg)
{
	struct fl_worker *w = arg;
	struct fl_shared *sh = w->ctx.sh;
	uint64_t one = 1;

	/* --rate wakes up on time: no 50 us of timer slack. */
	if (sh->cfg->rate > 0)
		prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	worker_connect_all(w);
	worker_gate(sh);
	if (!atomic_load(&sh->abort)) {
		worker_start(w);
		worker_loop(w);
		if (w->st.sec)
			fl_stats_publish(&w->st);
	}
	atomic_store(&w->finished, 1);
	if (write(sh->done_fd, &one, sizeof(one)) < 0)
		return NULL;
	return NULL;
}
