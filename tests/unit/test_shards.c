/*
 * test_shards - what a sharded event loop promises beyond the behaviour
 * suite: a shard computing an expensive request keeps serving its other
 * connections (no head-of-line blocking), and one connection's replies stay
 * in order when its requests finish out of order in the shared pool.
 *
 * The behaviour suite's overlap check puts its two clients on two shards
 * (--ports); here both connect to shard 0, as two clients the kernel's
 * SO_REUSEPORT hash sends to the same loop.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tsrv.h"
#include "../t.h"

static const char *cur;
static char buf[4096];

static int start(struct tsrv *s)
{
	static const char *const args[] = {"--workers", "2", "--ports", NULL};

	if (tsrv_start(s, cur, args, 2)) {
		T_CHECK(0, "%s did not start", cur);
		return -1;
	}
	return 0;
}

/* Client b, on the same shard as a, is answered while a's fib(45) runs. */
static void case_same_shard_overlap(void)
{
	struct tsrv s;
	int a, b;

	if (start(&s))
		return;
	a = tsrv_connect(&s, 0);
	T_CHECK(t_ask(a, "1\n", buf, sizeof(buf)) && strcmp(buf, "1\n") == 0,
		"%s: first reply '%s'", cur, buf);
	/* fib(45): about 2 s of CPU, a wide margin on a loaded machine. */
	T_CHECK(t_send(a, "45\n") == 0);
	usleep(50000);
	b = tsrv_connect(&s, 0);
	/* fib(20) is above the inline threshold: it goes to the pool too. */
	T_CHECK(t_ask(b, "20\n", buf, sizeof(buf)) &&
		    strcmp(buf, "6765\n") == 0,
		"%s: fib(20) on the busy shard got '%s'", cur, buf);
	T_CHECK(t_ask(b, "1\n", buf, sizeof(buf)) && strcmp(buf, "1\n") == 0,
		"%s: fib(1) on the busy shard got '%s'", cur, buf);
	T_CHECK(t_nothing_pending(a),
		"%s: fib(45) finished before the other client got through",
		cur);
	T_CHECK(t_read_lines(a, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "1134903170\n") == 0,
		"%s: fib(45) got '%s'", cur, buf);
	close(a);
	close(b);
	T_CHECK(tsrv_stop(&s, 30) == 0, "%s: bad exit status", cur);
}

/* fib(35) goes to the pool, everything after it finishes first. */
static void case_order(void)
{
	struct tsrv s;
	int fd;

	if (start(&s))
		return;
	fd = tsrv_connect(&s, 1);
	T_CHECK(t_send(fd, "35\n25\n1\nabc\n19\n32\n") == 0);
	T_CHECK(t_read_lines(fd, buf, sizeof(buf), 6) == 6);
	T_CHECK(strcmp(buf, "9227465\n75025\n1\nERR not a number\n4181\n"
			    "2178309\n") == 0,
		"%s: got '%s'", cur, buf);
	close(fd);
	T_CHECK(tsrv_stop(&s, 30) == 0, "%s: bad exit status", cur);
}

/* A stop while both shards' requests are in the pool answers them all. */
static void case_stop_inflight(void)
{
	struct tsrv s;
	int a, b;

	if (start(&s))
		return;
	a = tsrv_connect(&s, 0);
	b = tsrv_connect(&s, 1);
	T_CHECK(t_ask(a, "1\n", buf, sizeof(buf)), "%s: no reply", cur);
	T_CHECK(t_ask(b, "1\n", buf, sizeof(buf)), "%s: no reply", cur);
	T_CHECK(t_send(a, "36\n") == 0 && t_send(b, "35\n") == 0);
	usleep(
	    20000); /* let the loops take them; the test does not rely on it */
	T_CHECK(tsrv_stop(&s, 30) == 0, "%s: bad exit at stop", cur);
	T_CHECK(t_read_lines(a, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "14930352\n") == 0,
		"%s: a's reply lost at stop: '%s'", cur, buf);
	T_CHECK(t_read_lines(b, buf, sizeof(buf), 1) == 1 &&
		    strcmp(buf, "9227465\n") == 0,
		"%s: b's reply lost at stop: '%s'", cur, buf);
	close(a);
	close(b);
}

#define MAX_MODELS 32

/*
 * The sharded models whose loops hand expensive requests to a pool: every
 * shard serves many clients at once (not serial_shards, as many's
 * processes).
 */
int main(void)
{
	static struct tsrv_model models[MAX_MODELS];
	int n = tsrv_list_models(models, MAX_MODELS), pooled = 0;
	char name[64];

	for (int i = 0; i < n; i++) {
		if (strcmp(models[i].concurrency, "sharded") != 0 ||
		    models[i].serial_shards)
			continue;
		cur = models[i].name;
		pooled++;
		snprintf(name, sizeof(name), "%s/same_shard_overlap", cur);
		t_run(name, case_same_shard_overlap, 120);
		snprintf(name, sizeof(name), "%s/order", cur);
		t_run(name, case_order, 60);
		snprintf(name, sizeof(name), "%s/stop_inflight", cur);
		t_run(name, case_stop_inflight, 60);
	}
	if (!pooled)
		fprintf(stderr,
			"test_shards: none of the %d models listed is "
			"sharded with pooled loops\n",
			n);
	return t_done("test_shards");
}
