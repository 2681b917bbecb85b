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

struct tpool {
	pthread_mutex_t lock;	/* guards todo and stopping */
	pthread_cond_t more;	/* signalled when todo gains a job */
	struct tpool_list todo; /* submitted, not yet run */
	bool stopping;		/* tpool_destroy() was called */

	pthread_mutex_t done_lock; /* guards done */
	struct tpool_list done;	   /* run, not yet reaped */
	int efd;		   /* readable while done may be non-empty */

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
static void tpool_finish(struct tpool *p, struct tpool_job *job)
{
	uint64_t one = 1;
	bool was_empty;

	pthread_mutex_lock(&p->done_lock);
	was_empty = p->done.head == NULL;
	tpool_list_push(&p->done, job);
	pthread_mutex_unlock(&p->done_lock);
	if (was_empty && write(p->efd, &one, sizeof(one)) < 0) {
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
		tpool_finish(p, job);
	}
}

struct tpool *tpool_create(unsigned nthreads)
{
	struct tpool *p = calloc(1, sizeof(*p) + nthreads * sizeof(pthread_t));
	int err;

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->done_lock, NULL);
	pthread_cond_init(&p->more, NULL);
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0)
		goto out_free;
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
out_free:
	free(p);
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
	return p->efd;
}

struct tpool_job *tpool_reap(struct tpool *p)
{
	struct tpool_job *jobs;
	uint64_t count;

	if (read(p->efd, &count, sizeof(count)) < 0) {
		/* EAGAIN: nothing signalled; the list may still hold jobs. */
	}
	pthread_mutex_lock(&p->done_lock);
	jobs = p->done.head;
	p->done.head = p->done.tail = NULL;
	pthread_mutex_unlock(&p->done_lock);
	return jobs;
}

void tpool_destroy(struct tpool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	close(p->efd);
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->done_lock);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
