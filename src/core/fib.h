/*
 * fib - the Fibonacci numbers fibd serves.
 *
 * Two algorithms, chosen per server with --algo:
 *
 *   naive  the talk's exponential recursion on uint64. It is the CPU-bound
 *          workload, so it really recurses: no memo, no closed form, and the
 *          compiler is kept from folding it away. Exact for n <= FIB_U64_MAX_N.
 *   fast   exact for any n: iterative uint64 up to FIB_U64_MAX_N, GMP's
 *          mpz_fib_ui beyond.
 *
 * fib(0) = 0, fib(1) = fib(2) = 1.
 */
#ifndef FIBD_CORE_FIB_H
#define FIBD_CORE_FIB_H

#include <stddef.h>
#include <stdint.h>

/* The largest n whose fib fits in a uint64_t: fib(93) = 12200160415121876738.
 */
#define FIB_U64_MAX_N 93

enum fib_algo {
	FIB_NAIVE, /* exponential recursion: the CPU-bound workload */
	FIB_FAST,  /* exact, O(n) words of work, any n */
};

/*
 * Who runs the algorithm, chosen per server with --engine:
 *
 *   c       this file's C code (the default).
 *   python  the same algorithms written in Python, run by an embedded
 *           CPython under its real GIL (src/core/pyengine.h).
 */
enum fib_engine {
	FIB_ENGINE_C, /* zero: a zeroed struct proto_limits computes in C */
	FIB_ENGINE_PYTHON,
};

/* "c" or "python". */
const char *fib_engine_name(enum fib_engine engine);

/* Parses "c" or "python". Returns 0, or -EINVAL for anything else. */
int fib_engine_parse(const char *name, enum fib_engine *engine);

/* Default --max-n per algorithm: naive fib(45) is about 1.5 s of CPU here. */
#define FIB_NAIVE_DEFAULT_MAX_N 45
#define FIB_FAST_DEFAULT_MAX_N	100000
/* The same 1-2 s of CPU for naive fib in CPython 3.11 is fib(35) (1.9 s). */
#define FIB_PYTHON_NAIVE_DEFAULT_MAX_N 35
/* The hard ceiling for --max-n with --algo fast: fib(10^7) has 2.1e6 digits. */
#define FIB_FAST_LIMIT_N 10000000

/* "naive" or "fast". */
const char *fib_algo_name(enum fib_algo algo);

/* Parses "naive" or "fast". Returns 0, or -EINVAL for anything else. */
int fib_algo_parse(const char *name, enum fib_algo *algo);

/* Naive recursion. n must be <= FIB_U64_MAX_N (larger n would overflow). */
uint64_t fib_naive(unsigned n);

/* Iterative; exact. n must be <= FIB_U64_MAX_N. */
uint64_t fib_iter(unsigned n);

/*
 * Number of decimal digits fib(n) has, or an upper bound on it that is at
 * most one too large. Lets callers size a buffer before computing.
 */
size_t fib_digits_bound(uint64_t n);

/*
 * Writes fib(n) in decimal, with no terminator, into out[0..cap).
 * n <= FIB_U64_MAX_N uses the algorithm asked for; larger n needs FIB_FAST.
 * Returns the number of bytes written, -ERANGE when n is out of reach of the
 * algorithm, or -ENOBUFS when cap is too small (see fib_digits_bound()).
 */
long fib_decimal(enum fib_algo algo, uint64_t n, char *out, size_t cap);

/* Writes v in decimal into out (no terminator); out needs 20 bytes. */
size_t fib_u64_to_dec(uint64_t v, char *out);

#endif
