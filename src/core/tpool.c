#include "tpool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/*
 * A completion is a byte on a pipe, not an eventfd (see tpool.h): perf
 * sched showed the loop, woken by an eventfd, waiting 0.9 ms behind the
 * other worker while the waker's CPU went idle.
 */

/* How long a worker that finished a job looks for the next (see below). */
#define TPOOL_LINGER_NS 200000

/* A pipe: r is what the loop polls, w what a worker writes. */
struct tpool_bell {
	int r, w;
};

/* A singly linked FIFO of jobs. */
struct tpool_list {
	struct tpool_job *head, *tail;
};

struct tpool_cq {
	pthread_mutex_t lock;	/* guards done */
	struct tpool_list done; /* run, not yet reaped */
	struct tpool_bell bell; /* readable while done may be non-empty */
};

struct tpool {
	pthread_mutex_t lock;	/* guards todo and stopping */
	pthread_cond_t more;	/* signalled when todo gains a job */
	struct tpool_list todo; /* submitted, not yet run */
	bool stopping;		/* tpool_destroy() was called */

	unsigned nthreads; /* started */
	pthread_t threads[];
};

static int tpool_bell_open(struct tpool_bell *b)
{
	int fds[2];

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC))
		return -errno;
	b->r = fds[0];
	b->w = fds[1];
	return 0;
}

static void tpool_bell_close(struct tpool_bell *b)
{
	close(b->r);
	close(b->w);
}

static void tpool_bell_ring(struct tpool_bell *b)
{
	char one = 1;

	if (write(b->w, &one, 1) < 0) {
		/* EAGAIN: 64 KiB of rings unread; it is readable anyway. */
	}
}

/* Takes every ring so far; never blocks. */
static void tpool_bell_clear(struct tpool_bell *b)
{
	char sink[64];

	while (read(b->r, sink, sizeof(sink)) == (ssize_t)sizeof(sink))
		;
}

static void tpool_list_push(struct tpool_list *l, struct tpool_job *job)
{
	job->next = NULL;
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct tpool_job *tpool_list_pop(struct tpool_list *l)
{
	struct tpool_job *job = l->head;

	if (job) {
		l->head = job->next;
		if (!l->head)
			l->tail = NULL;
	}
	return job;
}

/*
 * Only the job that makes the list non-empty rings: the reaper clears the
 * bell before it takes the list, so a job pushed after the take finds the
 * list empty and rings again. No completion is ever missed, and a burst of
 * completions costs one write.
 */
static void tpool_finish(struct tpool_cq *q, struct tpool_job *job)
{
	bool was_empty;

	pthread_mutex_lock(&q->lock);
	was_empty = q->done.head == NULL;
	tpool_list_push(&q->done, job);
	pthread_mutex_unlock(&q->lock);
	if (was_empty)
		tpool_bell_ring(&q->bell);
}

static uint64_t tpool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The next job if one comes within TPOOL_LINGER_NS, yielding the CPU
 * between looks; NULL if none did. A worker that just finished is on the
 * CPU the loop was woken onto, and the loop's next submit usually follows
 * within one client round trip: taken here, it needs no futex wake, and
 * no wake-up placement that could queue the worker behind the other
 * worker's fib(30) on the other CPU.
 */
static struct tpool_job *tpool_linger(struct tpool *p)
{
	uint64_t until = tpool_now_ns() + TPOOL_LINGER_NS;
	struct tpool_job *job;

	do {
		pthread_mutex_lock(&p->lock);
		job = tpool_list_pop(&p->todo);
		pthread_mutex_unlock(&p->lock);
		if (job)
			return job;
		sched_yield();
	} while (tpool_now_ns() < until);
	return NULL;
}

static void *tpool_worker(void *arg)
{
	struct tpool *p = arg;
	struct tpool_job *job = NULL;

	for (;;) {
		if (!job) {
			pthread_mutex_lock(&p->lock);
			while (!p->todo.head && !p->stopping)
				pthread_cond_wait(&p->more, &p->lock);
			job = tpool_list_pop(&p->todo);
			pthread_mutex_unlock(&p->lock);
		}
		if (!job)
			return NULL; /* stopping, and nothing left to run */
		job->run(job);
		tpool_finish(job->cq, job);
		job = tpool_linger(p);
	}
}

/* An empty queue. Returns 0 or -errno. */
static int tpool_cq_init(struct tpool_cq *q)
{
	int err;

	q->done.head = q->done.tail = NULL;
	err = tpool_bell_open(&q->bell);
	if (!err)
		pthread_mutex_init(&q->lock, NULL);
	return err;
}

static void tpool_cq_fini(struct tpool_cq *q)
{
	tpool_bell_close(&q->bell);
	pthread_mutex_destroy(&q->lock);
}

struct tpool_cq *tpool_cq_create(void)
{
	struct tpool_cq *q = malloc(sizeof(*q));
	int err;

	if (!q)
		return NULL;
	err = tpool_cq_init(q);
	if (err) {
		free(q);
		errno = -err;
		return NULL;
	}
	return q;
}

void tpool_cq_destroy(struct tpool_cq *q)
{
	tpool_cq_fini(q);
	free(q);
}

int tpool_cq_fd(const struct tpool_cq *q)
{
	return q->bell.r;
}

struct tpool_job *tpool_cq_reap(struct tpool_cq *q)
{
	struct tpool_job *jobs;

	tpool_bell_clear(&q->bell);
	pthread_mutex_lock(&q->lock);
	jobs = q->done.head;
	q->done.head = q->done.tail = NULL;
	pthread_mutex_unlock(&q->lock);
	return jobs;
}

struct tpool *tpool_create(unsigned nthreads)
{
	struct tpool *p = calloc(1, sizeof(*p) + nthreads * sizeof(pthread_t));
	int err;

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	for (; p->nthreads < nthreads; p->nthreads++) {
		err = pthread_create(&p->threads[p->nthreads], NULL,
				     tpool_worker, p);
		if (err)
			goto out_destroy;
	}
	return p;

out_destroy:
	tpool_destroy(p);
	errno = err;
	return NULL;
}

void tpool_submit(struct tpool *p, struct tpool_job *job)
{
	pthread_mutex_lock(&p->lock);
	tpool_list_push(&p->todo, job);
	pthread_cond_signal(&p->more);
	pthread_mutex_unlock(&p->lock);
}

void tpool_destroy(struct tpool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
