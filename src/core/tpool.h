/*
 * tpool - a pool of worker threads for event loops.
 *
 * The loop hands a job to tpool_submit(); some worker runs job->run() and
 * puts the job on the completion queue the job names. The first job to land
 * on an empty queue writes a byte to the queue's pipe: that is how the loop
 * learns work is done, without ever blocking on the pool (the talk's
 * socketpair trick). The loop then takes every finished job at once with
 * tpool_cq_reap().
 *
 * Several loops may share one pool (the reactor's shards do): each makes a
 * completion queue of its own with tpool_cq_create() and names it in every
 * job it submits, so a job always comes back to the loop that owns it.
 *
 * Jobs are intrusive: embed struct tpool_job in your own struct and recover
 * it with container_of-style arithmetic. The pool never allocates per job.
 * The queue is a plain mutex and condition variable: a job costs one lock
 * and, when a worker sleeps, one futex wake. Jobs run in submission order.
 * A worker that finishes a job looks for the next for 200 us, yielding the
 * CPU between looks, before it sleeps: a closed-loop client's next job
 * comes within that, and then needs no wake-up at all.
 *
 * Why a pipe and not an eventfd for completions: a pipe (or socket) write
 * is a "sync" wake-up, which tells the kernel the waker is about to sleep,
 * so the woken loop is placed on the finishing worker's CPU. An eventfd
 * wake-up is not sync: the loop goes back to its previous CPU, and on 2
 * cores that is often behind the other worker's fib(30) for the rest of its
 * time slice. (Waking the workers through pipes of their own as well was
 * measured slower: the loop is not about to sleep when it submits.)
 */
#ifndef FIBD_CORE_TPOOL_H
#define FIBD_CORE_TPOOL_H

struct tpool;
struct tpool_cq;

struct tpool_job {
	struct tpool_job *next; /* owned by the pool from submit to reap */
	void (*run)(struct tpool_job *job); /* runs on a worker thread */
	struct tpool_cq *cq;		    /* where it lands when done */
};

/* Starts nthreads (>= 1) workers. Returns the pool, or NULL (errno set). */
struct tpool *tpool_create(unsigned nthreads);

/* Queues job; a worker will run it. Never fails, never blocks for long. */
void tpool_submit(struct tpool *p, struct tpool_job *job);

/* A completion queue, for one loop. Returns it, or NULL (errno set). */
struct tpool_cq *tpool_cq_create(void);

/*
 * Readable when finished jobs that name q wait for tpool_cq_reap() (a
 * pipe's read end). Never read it.
 */
int tpool_cq_fd(const struct tpool_cq *q);

/*
 * Takes every finished job of q, as a list linked by ->next in completion
 * order, or NULL. Clears the descriptor. Call from the one thread that owns
 * the loop.
 */
struct tpool_job *tpool_cq_reap(struct tpool_cq *q);

/* Frees q; no job naming it may still be in the pool. */
void tpool_cq_destroy(struct tpool_cq *q);

/*
 * Lets the workers finish every queued job, joins them and frees the pool.
 * Jobs that finished but were not reaped stay on their queues: reap first.
 */
void tpool_destroy(struct tpool *p);

#endif
