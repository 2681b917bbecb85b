#include "tpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A singly linked FIFO of jobs. */
struct tpool_list {
	struct tpool_job *head, *tail;
};

struct tpool_cq {
	pthread_mutex_t lock;	/* guards done */
	struct tpool_list done; /* run, not yet reaped */
	int efd;		/* readable while done may be non-empty */
};

struct tpool {
	pthread_mutex_t lock;	/* guards todo and stopping */
	pthread_cond_t more;	/* signalled when todo gains a job */
	struct tpool_list todo; /* submitted, not yet run */
	bool stopping;		/* tpool_destroy() was called */

	struct tpool_cq cq; /* for jobs that name no queue */

	unsigned nthreads;
	pthread_t threads[];
};

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
 * Only the job that makes the list non-empty writes the eventfd: the reaper
 * clears the eventfd before it takes the list, so a job pushed after the
 * take finds the list empty and writes again. No completion is ever missed,
 * and a burst of completions costs one write.
 */
static void tpool_finish(struct tpool_cq *q, struct tpool_job *job)
{
	uint64_t one = 1;
	bool was_empty;

	pthread_mutex_lock(&q->lock);
	was_empty = q->done.head == NULL;
	tpool_list_push(&q->done, job);
	pthread_mutex_unlock(&q->lock);
	if (was_empty && write(q->efd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN at a counter near 2^64: it is readable anyway. */
	}
}

static void *tpool_worker(void *arg)
{
	struct tpool *p = arg;
	struct tpool_job *job;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->todo.head && !p->stopping)
			pthread_cond_wait(&p->more, &p->lock);
		job = tpool_list_pop(&p->todo);
		pthread_mutex_unlock(&p->lock);
		if (!job)
			return NULL; /* stopping, and nothing left to run */
		job->run(job);
		tpool_finish(job->cq ? job->cq : &p->cq, job);
	}
}

/* An empty queue. Returns 0 or -errno. */
static int tpool_cq_init(struct tpool_cq *q)
{
	q->done.head = q->done.tail = NULL;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return -errno;
	pthread_mutex_init(&q->lock, NULL);
	return 0;
}

static void tpool_cq_fini(struct tpool_cq *q)
{
	close(q->efd);
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

int tpool_cq_eventfd(const struct tpool_cq *q)
{
	return q->efd;
}

struct tpool_job *tpool_cq_reap(struct tpool_cq *q)
{
	struct tpool_job *jobs;
	uint64_t count;

	if (read(q->efd, &count, sizeof(count)) < 0) {
		/* EAGAIN: nothing signalled; the list may still hold jobs. */
	}
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
	err = tpool_cq_init(&p->cq);
	if (err) {
		free(p);
		errno = -err;
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	for (; p->nthreads < nthreads; p->nthreads++) {
		err = pthread_create(&p->threads[p->nthreads], NULL,
				     tpool_worker, p);
		if (err) {
			errno = err;
			goto out_destroy;
		}
	}
	return p;

out_destroy:
	err = errno;
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

int tpool_eventfd(const struct tpool *p)
{
	return tpool_cq_eventfd(&p->cq);
}

struct tpool_job *tpool_reap(struct tpool *p)
{
	return tpool_cq_reap(&p->cq);
}

void tpool_destroy(struct tpool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	tpool_cq_fini(&p->cq);
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
