/* Unit tests for src/core/fib: values against independent references. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/fib.h"
#include "../t.h"

/*
 * Reference: fib(n) by schoolbook decimal addition, digits stored least
 * significant first. Slow and obviously right; shares no code with fib.c.
 */
static char *ref_fib(unsigned n)
{
	size_t cap = n / 4 + 4, len = 1;
	char *a = calloc(cap, 1), *b = calloc(cap, 1), *out;

	b[0] = 1; /* a = fib(0) = 0, b = fib(1) = 1 */
	for (unsigned i = 0; i < n; i++) {
		int carry = 0;
		for (size_t d = 0; d < len || carry; d++) {
			int s = a[d] + b[d] + carry;
			a[d] = b[d];
			b[d] = (char)(s % 10);
			carry = s / 10;
			if (d + 1 > len)
				len = d + 1;
		}
	}
	/* a now holds fib(n). */
	while (len > 1 && a[len - 1] == 0)
		len--;
	out = malloc(len + 1);
	for (size_t d = 0; d < len; d++)
		out[d] = (char)('0' + a[len - 1 - d]);
	out[len] = '\0';
	free(a);
	free(b);
	return out;
}

static char *fast_decimal(uint64_t n)
{
	size_t cap = fib_digits_bound(n) + 1;
	char *out = malloc(cap);
	long len = fib_decimal(FIB_FAST, n, out, cap);

	T_CHECK(len > 0, "fib_decimal(%llu) = %ld", (unsigned long long)n, len);
	out[len > 0 ? len : 0] = '\0';
	return out;
}

static void test_u64_range(void)
{
	uint64_t a = 0, b = 1;
	char dec[32];

	for (unsigned n = 0; n <= FIB_U64_MAX_N; n++) {
		T_CHECK(fib_iter(n) == a, "fib_iter(%u)", n);
		if (n <= 32)
			T_CHECK(fib_naive(n) == a, "fib_naive(%u)", n);
		long len = fib_decimal(FIB_FAST, n, dec, sizeof(dec));
		dec[len > 0 ? len : 0] = '\0';
		char *ref = ref_fib(n);
		T_CHECK(strcmp(dec, ref) == 0, "fib(%u): %s != %s", n, dec,
			ref);
		free(ref);
		uint64_t t = a + b;
		a = b;
		b = t;
	}
	T_CHECK(fib_iter(93) == 12200160415121876738ull);
}

static void check_big(unsigned n, size_t digits, const char *head,
		      const char *tail)
{
	char *got = fast_decimal(n), *ref = ref_fib(n);
	size_t len = strlen(got);

	T_CHECK(len == digits, "fib(%u) has %zu digits, want %zu", n, len,
		digits);
	T_CHECK(strncmp(got, head, strlen(head)) == 0, "fib(%u) head", n);
	T_CHECK(len >= strlen(tail) &&
		    strcmp(got + len - strlen(tail), tail) == 0,
		"fib(%u) tail", n);
	T_CHECK(strcmp(got, ref) == 0, "fib(%u) differs from the reference", n);
	T_CHECK(fib_digits_bound(n) >= len, "digit bound for %u", n);
	free(got);
	free(ref);
}

static void test_big(void)
{
	check_big(100, 21, "354224848179261915075", "075");
	check_big(1000, 209, "4346655768693745643", "849228875");
	check_big(10000, 2090, "3364476487643178326", "875");
}

static void test_errors(void)
{
	char small[8], dec[32];

	T_CHECK(fib_decimal(FIB_NAIVE, 94, dec, sizeof(dec)) == -ERANGE);
	T_CHECK(fib_decimal(FIB_FAST, 200, small, sizeof(small)) < 0);
	T_CHECK(fib_decimal(FIB_FAST, FIB_FAST_LIMIT_N + 1, dec, sizeof(dec)) <
		0);
}

static void test_algo_names(void)
{
	enum fib_algo a;

	T_CHECK(fib_algo_parse("naive", &a) == 0 && a == FIB_NAIVE);
	T_CHECK(fib_algo_parse("fast", &a) == 0 && a == FIB_FAST);
	T_CHECK(fib_algo_parse("slow", &a) < 0);
	T_CHECK(strcmp(fib_algo_name(FIB_FAST), "fast") == 0);
}

static void test_engine_names(void)
{
	enum fib_engine e;

	T_CHECK(fib_engine_parse("c", &e) == 0 && e == FIB_ENGINE_C);
	T_CHECK(fib_engine_parse("python", &e) == 0 && e == FIB_ENGINE_PYTHON);
	T_CHECK(fib_engine_parse("Python", &e) < 0);
	T_CHECK(strcmp(fib_engine_name(FIB_ENGINE_PYTHON), "python") == 0);
	T_CHECK(strcmp(fib_engine_name(FIB_ENGINE_C), "c") == 0);
}

int main(void)
{
	T_RUN(test_u64_range, 60);
	T_RUN(test_big, 60);
	T_RUN(test_errors, 10);
	T_RUN(test_algo_names, 10);
	T_RUN(test_engine_names, 10);
	return t_done("test_fib");
}
