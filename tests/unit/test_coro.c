/*
 * test_coro - the coroutine runtime's scheduler: switch ordering, many
 * coroutines in bounded memory, work stealing, the guard page, the
 * blocking primitives (join, wait groups, events, sleep, offload), and
 * wake-ups when every worker is needed at once (timers included).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/tcoro.h"
#include "../t.h"
#include "coro/coro.h"
#include "coro/san.h"

#define CHECK(cond) T_CHECK(cond)

/* ---- ping-pong: yield hands the single worker over, in FIFO order ---- */

struct pp {
	char log[64];
	_Atomic int n;
};

static void pp_a(void *arg)
{
	struct pp *pp = arg;
	int i;

	for (i = 0; i < 10; i++) {
		pp->log[atomic_fetch_add(&pp->n, 1)] = 'a';
		coro_yield();
	}
}

static void pp_b(void *arg)
{
	struct pp *pp = arg;
	int i;

	for (i = 0; i < 10; i++) {
		pp->log[atomic_fetch_add(&pp->n, 1)] = 'b';
		coro_yield();
	}
}

/* Spawned from a coroutine, a and b queue up in order on its worker. */
static void pp_main(void *arg)
{
	struct coro *a = coro_spawn(coro_self_rt(), pp_a, arg);
	struct coro *b = coro_spawn(coro_self_rt(), pp_b, arg);

	coro_join(a);
	coro_join(b);
}

static void test_pingpong_order(void)
{
	struct coro_rt *rt = tcoro_rt_new(1);
	struct pp pp = {.n = 0};

	coro_join(coro_spawn(rt, pp_main, &pp));
	CHECK(pp.n == 20);
	T_CHECK(!strcmp(pp.log, "abababababababababab"), "%s", pp.log);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* Events across workers: strict alternation, whoever runs where. */
struct ev_pp {
	struct coro_event ping, pong;
	int turn; /* 0: ping's turn to run, 1: pong's */
	int bad, rounds;
};

static void ev_ping(void *arg)
{
	struct ev_pp *p = arg;
	int i;

	for (i = 0; i < p->rounds; i++) {
		p->bad += p->turn != 0;
		p->turn = 1;
		coro_event_signal(&p->pong);
		coro_event_wait(&p->ping);
	}
}

static void ev_pong(void *arg)
{
	struct ev_pp *p = arg;
	int i;

	for (i = 0; i < p->rounds; i++) {
		coro_event_wait(&p->pong);
		p->bad += p->turn != 1;
		p->turn = 0;
		coro_event_signal(&p->ping);
	}
}

static void test_event_pingpong(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct ev_pp p = {.rounds = 20000};
	struct coro *a = coro_spawn(rt, ev_pong, &p);
	struct coro *b = coro_spawn(rt, ev_ping, &p);

	coro_join(a);
	coro_join(b);
	T_CHECK(p.bad == 0, "%d out of turn", p.bad);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- 100,000 coroutines, memory bounded by stack reuse ---------------- */

static long vm_rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

static void count_fn(void *arg)
{
	atomic_fetch_add((_Atomic long *)arg, 1);
}

#ifdef CORO_TSAN
/* TSan zeroes a ~800 KB thread state per fiber: about 1 ms apiece. */
#define MANY 5000
#else
#define MANY 100000
#endif
#define BATCH 1000

static void test_many(void)
{
	static struct coro *cos[BATCH];
	struct coro_rt_opts o = {.stack_cache = BATCH};
	struct coro_rt *rt = coro_rt_new(&o);
	struct coro_rt_stats st;
	_Atomic long ran = 0;
	long rss0 = vm_rss_kb(), rss1;
	int i, j, spawned = 0;

	CHECK(rt != NULL);
	for (i = 0; i < MANY / BATCH; i++) {
		for (j = 0; j < BATCH; j++) {
			cos[j] = coro_spawn(rt, count_fn, (void *)&ran);
			spawned += cos[j] != NULL;
		}
		for (j = 0; j < BATCH; j++)
			if (cos[j])
				coro_join(cos[j]);
	}
	/* One check for all of them: 100,000 checks would swamp the count. */
	T_CHECK(spawned == MANY, "%d of %d spawned", spawned, MANY);
	rss1 = vm_rss_kb();
	coro_rt_stats(rt, &st);
	T_CHECK(ran == MANY, "%ld ran", (long)ran);
	CHECK(st.live == 0);
	/* At most BATCH are alive at once, and the pool keeps them all. */
	T_CHECK(st.stacks_mapped <= BATCH, "%lu mapped",
		(unsigned long)st.stacks_mapped);
	T_CHECK(rss1 - rss0 < 64 * 1024, "RSS grew %ld KiB", rss1 - rss0);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- stealing: all work starts on one worker -------------------------- */

static void busy_fn(void *arg)
{
	volatile unsigned long x = 0;

	(void)arg;
	while (x < 200000) /* ~100 µs: long enough for a thief to wake */
		x++;
}

static void spawner(void *arg)
{
	struct coro_rt *rt = coro_self_rt();
	struct coro_wg *wg = arg;
	int i;

	/* From a coroutine, spawn fills this worker's own queue. */
	for (i = 0; i < 400; i++) {
		coro_wg_add(wg, 1);
		CO_CHECK(coro_go(rt, busy_fn, NULL) == 0);
		coro_wg_done(wg);
	}
}

static void test_steal(void)
{
	struct coro_rt *rt = tcoro_rt_new(2);
	struct coro_worker_stats ws[2];
	struct coro_wg wg = CORO_WG_INIT;

	coro_wg_add(&wg, 1);
	CHECK(coro_go(rt, spawner, &wg) == 0);
	coro_wg_done(&wg);
	coro_wg_wait(&wg);
	coro_rt_wait(rt);
	coro_worker_stats(rt, 0, &ws[0]);
	coro_worker_stats(rt, 1, &ws[1]);
	T_CHECK(ws[0].runs > 0 && ws[1].runs > 0, "runs %lu %lu",
		(unsigned long)ws[0].runs, (unsigned long)ws[1].runs);
	CHECK(ws[0].stolen + ws[1].stolen > 0);
	CHECK(ws[0].runs + ws[1].runs >= 401);
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- the guard page ---------------------------------------------------- */

static int recurse(int depth)
{
	volatile char pad[256];

	pad[0] = (char)depth;
	return depth > 1000000 ? pad[0] : recurse(depth + 1) + pad[0];
}

static void overflow_fn(void *arg)
{
	*(int *)arg = recurse(0);
}

/*
 * The overflow runs in a grandchild. Plain build: it dies of SIGSEGV on the
 * guard page. ASan catches the fault itself ("stack-overflow" report, then
 * exit 1): either way memory was not silently corrupted.
 */
static void test_guard_page(void)
{
	struct coro_rt_opts o = {.workers = 1, .stack_size = 16 * 1024};
	int status, sink = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct coro_rt *rt = coro_rt_new(&o);

		close(2); /* keep the sanitizer's report out of the log */
		coro_join(coro_spawn(rt, overflow_fn, &sink));
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
#if defined(CORO_ASAN) || defined(CORO_TSAN)
	T_CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) != 0),
		"status %#x", status);
#else
	T_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		"status %#x", status);
#endif
}

/* ---- blocking primitives ------------------------------------------------ */

static void sleeper(void *arg)
{
	CO_CHECK(coro_sleep(30) == 0);
	atomic_fetch_add((_Atomic long *)arg, 1);
}

static void slow_square(void *arg)
{
	long *v = arg;

	usleep(20000); /* blocks an offload thread, not a worker */
	*v *= *v;
}

static void offloader(void *arg)
{
	long v = 12;

	CO_CHECK(coro_offload(slow_square, &v) == 0);
	CO_CHECK(v == 144);
	atomic_fetch_add((_Atomic long *)arg, 1);
}

static void wg_child(void *arg)
{
	coro_sleep(5);
	coro_wg_done(arg);
}

static void wg_parent(void *arg)
{
	struct coro_rt *rt = coro_self_rt();
	struct coro_wg wg = CORO_WG_INIT;
	int i;

	coro_wg_add(&wg, 50);
	for (i = 0; i < 50; i++)
		coro_go(rt, wg_child, &wg);
	coro_wg_wait(&wg); /* from a coroutine */
	atomic_fetch_add((_Atomic long *)arg, 1);
}

static void test_blocking(void)
{
	struct coro_rt *rt =
	    tcoro_rt_new(1); /* one worker: blocking would show */
	_Atomic long done = 0;
	struct coro *s[8];
	long t0;
	int i;

	for (i = 0; i < 8; i++)
		s[i] =
		    coro_spawn(rt, i < 4 ? sleeper : offloader, (void *)&done);
	CHECK(coro_go(rt, wg_parent, (void *)&done) == 0);
	for (i = 0; i < 8; i++)
		coro_join(s[i]); /* from a plain thread */
	coro_rt_wait(rt);
	T_CHECK(done == 9, "%ld", (long)done);
	CHECK(coro_sleep(1) == -EPERM);
	t0 = 0;
	CHECK(coro_offload(slow_square, &t0) == 0); /* inline outside */
	coro_rt_free(rt);
	tcoro_check_clean();
}

/* ---- wake-ups: every worker can be needed at once ----------------------- */

/*
 * Rounds of coroutines that hold their workers (no preemption) until the
 * round is over, spawned from this thread: each lands on some worker's
 * queue and rings the doorbell, and the round ends only if every one of
 * them gets a worker of its own. Rings made while a ring is still pending
 * are absorbed into it, so whoever drains the doorbell must look for all
 * of them. A lost wake-up hangs a round, and T_RUN's timeout fails the test.
 */
struct hold_round {
	_Atomic unsigned arrived, slept;
	unsigned n;
};

/* Spins until all n of the round run at once. */
static void hold_all(void *arg)
{
	struct hold_round *h = arg;

	atomic_fetch_add(&h->arrived, 1);
	while (atomic_load(&h->arrived) < h->n)
		__builtin_ia32_pause();
}

/* Spins until the round's sleeper has woken. */
static void hold_until_slept(void *arg)
{
	struct hold_round *h = arg;

	while (!atomic_load(&h->slept))
		__builtin_ia32_pause();
}

static void sleep_then_release(void *arg)
{
	struct hold_round *h = arg;

	CO_CHECK(coro_sleep(1) == 0);
	atomic_store(&h->slept, 1);
}

/*
 * With timed: one sleeper and workers-1 holders per round, so only one
 * worker is free for the timer, which may have been added on a worker that
 * went on to hold, or counted on a sleeper that then woke for a holder.
 */
static void hold_rounds(unsigned workers, int rounds, bool timed)
{
	struct coro_rt *rt = tcoro_rt_new(workers);
	struct coro *cos[8];
	struct hold_round h;
	void (*fn)(void *);
	unsigned i, at, spawned = 0;
	int r;

	for (r = 0; r < rounds; r++) {
		atomic_init(&h.arrived, 0);
		atomic_init(&h.slept, 0);
		h.n = workers;
		at = (unsigned)r % workers; /* where the sleeper is spawned */
		for (i = 0; i < workers; i++) {
			fn = !timed    ? hold_all
			     : i == at ? sleep_then_release
				       : hold_until_slept;
			cos[i] = coro_spawn(rt, fn, &h);
			spawned += cos[i] != NULL;
			if (r % 3)
				usleep(200 * (unsigned)(r % 3));
		}
		for (i = 0; i < workers; i++)
			if (cos[i])
				coro_join(cos[i]);
	}
	T_CHECK(spawned == (unsigned)rounds * workers, "%u spawned", spawned);
	coro_rt_free(rt);
}

static void test_wake_all(void)
{
	hold_rounds(2, 60, false);
	hold_rounds(3, 60, false);
	hold_rounds(4, 30, false);
	tcoro_check_clean();
}

static void test_timer_busy(void)
{
	hold_rounds(2, 60, true);
	hold_rounds(3, 60, true);
	hold_rounds(4, 30, true);
	tcoro_check_clean();
}

int main(void)
{
	T_RUN(test_pingpong_order, 10);
	T_RUN(test_event_pingpong, 20);
	T_RUN(test_many, 60);
	T_RUN(test_steal, 20);
	T_RUN(test_guard_page, 20);
	T_RUN(test_blocking, 10);
	T_RUN(test_wake_all, 30);
	T_RUN(test_timer_busy, 30);
	return t_done("test_coro");
}
