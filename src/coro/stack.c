/*
 * stack - coroutine stacks: mmap'd, a PROT_NONE guard page at the low end,
 * and a bounded pool so a busy server does not mmap and munmap per
 * connection.
 *
 * A stack that overflows runs into the guard page and the process dies with
 * SIGSEGV instead of silently writing over a neighbour. The pool is one
 * mutex-protected freelist threaded through the idle stacks themselves; it
 * keeps at most `max` of them, so memory stays bounded after a burst.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "san.h"

int coro__stacks_init(struct coro__stacks *s, size_t len, unsigned max)
{
	s->page = (size_t)sysconf(_SC_PAGESIZE);
	s->len = (len + s->page - 1) & ~(s->page - 1);
	s->max = max;
	s->free = NULL;
	s->nfree = 0;
	atomic_init(&s->mapped, 0);
	return -pthread_mutex_init(&s->lock, NULL);
}

static void stack_unmap(struct coro__stacks *s, void *stack)
{
	munmap((char *)stack - s->page, s->len + s->page);
}

void coro__stacks_destroy(struct coro__stacks *s)
{
	while (s->free) {
		void *stack = s->free;

		s->free = *(void **)stack;
		stack_unmap(s, stack);
	}
	pthread_mutex_destroy(&s->lock);
}

static void *stack_map(struct coro__stacks *s)
{
	char *p;

	/* MAP_NORESERVE: only the pages a coroutine touches cost memory. */
	p = mmap(NULL, s->len + s->page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
		 0);
	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p, s->page, PROT_NONE) < 0)
		goto out_unmap;
	atomic_fetch_add_explicit(&s->mapped, 1, memory_order_relaxed);
	return p + s->page;

out_unmap:
	munmap(p, s->len + s->page);
	return NULL;
}

/* Returns the lowest usable byte of a stack of s->len bytes, or NULL. */
void *coro__stack_get(struct coro__stacks *s)
{
	void *stack;

	pthread_mutex_lock(&s->lock);
	stack = s->free;
	if (stack) {
		s->free = *(void **)stack;
		s->nfree--;
	}
	pthread_mutex_unlock(&s->lock);
	if (!stack)
		stack = stack_map(s);
	if (!stack)
		errno = ENOMEM;
	return stack;
}

void coro__stack_put(struct coro__stacks *s, void *stack)
{
	/* Frames that never returned (the entry's) left ASan redzones. */
	san_unpoison(stack, s->len);
	pthread_mutex_lock(&s->lock);
	if (s->nfree < s->max) {
		*(void **)stack = s->free;
		s->free = stack;
		s->nfree++;
		stack = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (stack)
		stack_unmap(s, stack);
}
