/*
 * san - sanitizer hooks around every context switch.
 *
 * ASan keeps a shadow of each stack; it has to be told when we move to
 * another one (__sanitizer_start_switch_fiber before the switch,
 * __sanitizer_finish_switch_fiber on arrival), or it reports false stack
 * overflows and loses track of fake frames. A stack that is reused must
 * also be unpoisoned: the frames that never returned left their redzones.
 * TSan models each coroutine as a fiber (__tsan_switch_to_fiber), so that
 * the happens-before order follows the coroutine across threads.
 * Without sanitizers every hook compiles to nothing.
 */
#ifndef FIBD_CORO_SAN_H
#define FIBD_CORO_SAN_H

#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define CORO_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(CORO_ASAN)
#define CORO_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(CORO_TSAN)
#define CORO_TSAN 1
#endif

#ifdef CORO_ASAN
#include <sanitizer/asan_interface.h>
#define san_start_switch(save, lo, len)                                        \
	__sanitizer_start_switch_fiber((save), (lo), (len))
#define san_finish_switch(fake)                                                \
	__sanitizer_finish_switch_fiber((fake), NULL, NULL)
#define san_unpoison(p, len) __asan_unpoison_memory_region((p), (len))
#else
#define san_start_switch(save, lo, len) ((void)(save), (void)(lo), (void)(len))
#define san_finish_switch(fake)		((void)(fake))
#define san_unpoison(p, len)		((void)(p), (void)(len))
#endif

#ifdef CORO_TSAN
#include <sanitizer/tsan_interface.h>
#define tsan_current()	__tsan_get_current_fiber()
#define tsan_create()	__tsan_create_fiber(0)
#define tsan_destroy(f) __tsan_destroy_fiber(f)
#define tsan_switch(f)	__tsan_switch_to_fiber((f), 0)
#else
#define tsan_current()	NULL
#define tsan_create()	NULL
#define tsan_destroy(f) ((void)(f))
#define tsan_switch(f)	((void)(f))
#endif

#endif
