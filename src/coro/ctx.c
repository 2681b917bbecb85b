#include "ctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"
#include "san.h"

struct coro_ctx_stacks {
	struct coro__stacks pool;
};

struct coro_ctx_stacks *coro_ctx_stacks_new(size_t len, unsigned cache)
{
	struct coro_ctx_stacks *s = malloc(sizeof(*s));
	int err;

	if (!s)
		return NULL;
	err = coro__stacks_init(&s->pool, len, cache);
	if (err) {
		free(s);
		errno = -err;
		return NULL;
	}
	return s;
}

void coro_ctx_stacks_free(struct coro_ctx_stacks *s)
{
	coro__stacks_destroy(&s->pool);
	free(s);
}

void coro_ctx_thread(struct coro_ctx *ctx)
{
	pthread_attr_t attr;

	*ctx = (struct coro_ctx){.tsan_fiber = tsan_current()};
	if (!pthread_getattr_np(pthread_self(), &attr)) {
		pthread_attr_getstack(&attr, &ctx->stack, &ctx->stack_len);
		pthread_attr_destroy(&attr);
	}
}

void coro_ctx_switch(struct coro_ctx *from, struct coro_ctx *to)
{
	tsan_switch(to->tsan_fiber);
	/* NULL: ASan may drop a finished stack's fake frames for good. */
	san_start_switch(from->finished ? NULL : &from->asan_fake, to->stack,
			 to->stack_len);
	coro__switch(&from->sp, to->sp);
	san_finish_switch(from->asan_fake);
}

/* Where coro__trampoline lands: the first instructions of a context. */
static void ctx_main(void *arg)
{
	struct coro_ctx *ctx = arg;

	san_finish_switch(NULL);
	ctx->fn(ctx->arg);
	ctx->finished = true;
	coro_ctx_switch(ctx, ctx->ret);
	__builtin_unreachable();
}

int coro_ctx_make(struct coro_ctx *ctx, struct coro_ctx_stacks *s,
		  void (*fn)(void *), void *arg, struct coro_ctx *ret)
{
	*ctx = (struct coro_ctx){.fn = fn, .arg = arg, .ret = ret};
	ctx->stack = coro__stack_get(&s->pool);
	if (!ctx->stack)
		return -ENOMEM;
	ctx->stack_len = s->pool.len;
	ctx->tsan_fiber = tsan_create();
	ctx->sp = coro__first_frame(ctx->stack, ctx->stack_len, ctx_main, ctx);
	return 0;
}

void coro_ctx_free(struct coro_ctx *ctx, struct coro_ctx_stacks *s)
{
	tsan_destroy(ctx->tsan_fiber);
	coro__stack_put(&s->pool, ctx->stack);
	ctx->stack = NULL;
}
