/*
 * ctx - a bare stackful coroutine: a stack and a context switch, no
 * scheduler.
 *
 * This is the raw material of the coroutine runtime (coro.h), for code that
 * schedules its coroutines itself on one thread (the async model): the
 * runtime's hand-written switch (switch.S, ~20 instructions, no system
 * call) and its stack pool (mmap'd, a guard page below, pages touched only
 * as deep as the coroutine goes). Who runs when is entirely the caller's
 * business: coro_ctx_switch() goes exactly where it is told.
 *
 * A thread's own stack is a context too (coro_ctx_thread()), the one its
 * coroutines switch back to. A coroutine made with coro_ctx_make() runs
 * fn(arg) the first time it is switched to; when fn returns, the context
 * is finished and switches to ret for good; ret then frees it with
 * coro_ctx_free(). Under ASan and TSan every switch is annotated (san.h).
 * Contexts belong to the thread that made them: never switch into one from
 * another thread.
 *
 * Constructors return NULL and set errno; the rest return 0 or -errno.
 */
#ifndef FIBD_CORO_CTX_H
#define FIBD_CORO_CTX_H

#include <stdbool.h>
#include <stddef.h>

struct coro_ctx_stacks;

struct coro_ctx {
	void *sp;	  /* the saved stack pointer while switched out */
	void *stack;	  /* lowest usable byte of its stack */
	size_t stack_len; /* usable bytes */
	bool finished;	  /* fn returned: free it */
	void (*fn)(void *);
	void *arg;
	struct coro_ctx *ret; /* where it goes when fn returns */
	void *asan_fake;
	void *tsan_fiber;
};

/*
 * A pool of stacks of len usable bytes (rounded up to pages), keeping at
 * most cache idle ones for reuse. Returns it, or NULL (errno set).
 */
struct coro_ctx_stacks *coro_ctx_stacks_new(size_t len, unsigned cache);

/* Unmaps the idle stacks and frees s; every context of s is freed first. */
void coro_ctx_stacks_free(struct coro_ctx_stacks *s);

/* Describes the calling thread's own stack as ctx, to switch back to. */
void coro_ctx_thread(struct coro_ctx *ctx);

/*
 * Gives ctx a stack from s, set to call fn(arg) when first switched to and
 * to switch to ret when fn returns. Returns 0 or -ENOMEM.
 */
int coro_ctx_make(struct coro_ctx *ctx, struct coro_ctx_stacks *s,
		  void (*fn)(void *), void *arg, struct coro_ctx *ret);

/* Saves the running context in from and resumes to. */
void coro_ctx_switch(struct coro_ctx *from, struct coro_ctx *to);

/* Gives a finished (or never started) ctx's stack back to s. */
void coro_ctx_free(struct coro_ctx *ctx, struct coro_ctx_stacks *s);

#endif
