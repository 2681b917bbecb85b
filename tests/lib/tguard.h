/*
 * tguard - test input that ends at a PROT_NONE guard page (picohttpparser's
 * trick): a parser that reads one byte too far crashes the test instead of
 * passing silently.
 */
#ifndef FIBD_TESTS_TGUARD_H
#define FIBD_TESTS_TGUARD_H

#include <stddef.h>

#define TGUARD_MAX 65536 /* the longest input */

/*
 * Copies s[0..len) so that its last byte sits just before a guard page and
 * returns the copy, valid until the next call. len <= TGUARD_MAX.
 */
const char *t_guarded(const char *s, size_t len);

#endif
