#include "fib.h"

#include <errno.h>
#include <gmp.h>
#include <string.h>

const char *fib_algo_name(enum fib_algo algo)
{
	return algo == FIB_FAST ? "fast" : "naive";
}

int fib_algo_parse(const char *name, enum fib_algo *algo)
{
	if (strcmp(name, "naive") == 0)
		*algo = FIB_NAIVE;
	else if (strcmp(name, "fast") == 0)
		*algo = FIB_FAST;
	else
		return -EINVAL;
	return 0;
}

const char *fib_engine_name(enum fib_engine engine)
{
	return engine == FIB_ENGINE_PYTHON ? "python" : "c";
}

int fib_engine_parse(const char *name, enum fib_engine *engine)
{
	if (strcmp(name, "c") == 0)
		*engine = FIB_ENGINE_C;
	else if (strcmp(name, "python") == 0)
		*engine = FIB_ENGINE_PYTHON;
	else
		return -EINVAL;
	return 0;
}

/*
 * The talk's fib. The empty asm makes n opaque to the optimiser at every
 * level, so the compiler can neither memoise the recursion nor turn it into
 * a loop: naive fib(30) really makes 1.6 million calls.
 *
 * Left out of TSan's instrumentation: it touches no memory but its own
 * stack, so there is nothing to check, and TSan's hooks on each call's
 * entry and exit made fib(30) take 3.6 ms instead of 0.9.
 */
__attribute__((no_sanitize("thread"))) uint64_t fib_naive(unsigned n)
{
	__asm__ volatile("" : "+r"(n));
	if (n < 2)
		return n;
	return fib_naive(n - 1) + fib_naive(n - 2);
}

uint64_t fib_iter(unsigned n)
{
	uint64_t a = 0, b = 1;

	while (n--) {
		uint64_t t = a + b;
		a = b;
		b = t;
	}
	return a;
}

/* fib(n) ~ phi^n / sqrt(5): digits = floor(n*log10(phi) - log10(sqrt 5)) + 1 */
size_t fib_digits_bound(uint64_t n)
{
	if (n <= FIB_U64_MAX_N)
		return 20;
	return (size_t)((double)n * 0.20898764024997873) + 2;
}

size_t fib_u64_to_dec(uint64_t v, char *out)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static long fib_gmp_decimal(uint64_t n, char *out, size_t cap)
{
	mpz_t f;
	long len = -ENOBUFS;

	mpz_init(f);
	mpz_fib_ui(f, (unsigned long)n);
	/* mpz_get_str writes up to sizeinbase digits and a NUL. */
	if (mpz_sizeinbase(f, 10) + 1 <= cap) {
		mpz_get_str(out, 10, f);
		len = (long)strlen(out);
	}
	mpz_clear(f);
	return len;
}

long fib_decimal(enum fib_algo algo, uint64_t n, char *out, size_t cap)
{
	uint64_t v;

	if (n > FIB_U64_MAX_N) {
		if (algo != FIB_FAST || n > FIB_FAST_LIMIT_N)
			return -ERANGE;
		return fib_gmp_decimal(n, out, cap);
	}
	if (cap < 20)
		return -ENOBUFS;
	v = algo == FIB_NAIVE ? fib_naive((unsigned)n) : fib_iter((unsigned)n);
	return (long)fib_u64_to_dec(v, out);
}
