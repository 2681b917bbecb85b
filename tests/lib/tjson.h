/*
 * tjson - a minimal JSON check for the tests that read JSON reports
 * (fibload --json): the syntax, then keys found by path. Keys are found
 * by text, not by a parse: enough for reports whose keys are unique.
 */
#ifndef FIBD_TESTS_TJSON_H
#define FIBD_TESTS_TJSON_H

#include <stddef.h>

/* 1 when s is one JSON value and nothing else but blanks, else 0. */
int tjson_valid(const char *s);

/* The text after "key": inside the object "obj" (NULL: anywhere), or NULL. */
const char *tjson_find(const char *s, const char *obj, const char *key);

/* The number after "key": (see tjson_find()), or -1 when there is none. */
double tjson_num(const char *s, const char *obj, const char *key);

/* The text of json's "key":{...} object, copied into buf ("" if none). */
void tjson_object(const char *json, const char *key, char *buf, size_t cap);

#endif
