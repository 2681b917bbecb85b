/*
 * The models as fibd --list-models --json lists them (tsrv.h): a parser for
 * exactly that JSON (an array of flat objects whose values are strings,
 * null, booleans and whole numbers), so that the suites need no JSON
 * library, and strict, so that a change of shape fails them.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsrv.h"

enum tmodels_type {
	TM_STR,
	TM_STR_OR_NULL,
	TM_BOOL,
	TM_UINT
};

struct tmodels_field {
	const char *key;
	enum tmodels_type type;
	size_t off, cap; /* in struct tsrv_model; cap 0: read, not kept */
};

#define TM_FIELD(k, t, f)                                                      \
	{                                                                      \
#k, t, offsetof(struct tsrv_model, f),                         \
		    sizeof(((struct tsrv_model *)0)->f)                        \
	}

static const struct tmodels_field tmodels_fields[] = {
    TM_FIELD(name, TM_STR, name),
    {"summary", TM_STR, 0, 0},
    TM_FIELD(concurrency, TM_STR, concurrency),
    TM_FIELD(forks, TM_BOOL, forks),
    TM_FIELD(talk_server, TM_STR_OR_NULL, talk_server),
    TM_FIELD(serial_shards, TM_BOOL, serial_shards),
    TM_FIELD(fits_10k, TM_BOOL, fits_10k),
    TM_FIELD(takes_ports, TM_BOOL, takes_ports),
    TM_FIELD(takes_offload, TM_BOOL, takes_offload),
    TM_FIELD(uses_io_uring, TM_BOOL, uses_io_uring),
    TM_FIELD(python_serial, TM_BOOL, python_serial),
    TM_FIELD(max_workers, TM_UINT, max_workers),
};
#define TM_NFIELDS (sizeof(tmodels_fields) / sizeof(tmodels_fields[0]))

static void tmodels_ws(const char **p)
{
	while (isspace((unsigned char)**p))
		(*p)++;
}

/* Skips lit at *p. Returns 0, or -1 when *p does not start with it. */
static int tmodels_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	tmodels_ws(p);
	if (strncmp(*p, lit, n) != 0)
		return -1;
	*p += n;
	return 0;
}

/* A string into out[0..cap) (cap 0: dropped). Returns 0 or -1. */
static int tmodels_str(const char **p, char *out, size_t cap)
{
	size_t n = 0;

	if (tmodels_lit(p, "\""))
		return -1;
	for (; **p && **p != '"'; (*p)++, n++) {
		if (**p == '\\' && !*++*p)
			return -1;
		if (cap && n + 1 >= cap)
			return -1; /* longer than the field */
		if (cap)
			out[n] = **p;
	}
	if (cap)
		out[n] = '\0';
	return **p == '"' ? ((*p)++, 0) : -1;
}

static int tmodels_value(const char **p, const struct tmodels_field *f,
			 struct tsrv_model *m)
{
	char *at = (char *)m + f->off;
	unsigned long v;
	char *end;

	tmodels_ws(p);
	switch (f->type) {
	case TM_STR_OR_NULL:
		if (tmodels_lit(p, "null") == 0) {
			at[0] = '\0';
			return 0;
		}
		/* fall through */
	case TM_STR:
		return tmodels_str(p, f->cap ? at : NULL, f->cap);
	case TM_BOOL:
		if (tmodels_lit(p, "true") == 0)
			return *(bool *)at = true, 0;
		return tmodels_lit(p, "false") == 0 ? (*(bool *)at = false, 0)
						    : -1;
	case TM_UINT:
	default:
		if (!isdigit((unsigned char)**p))
			return -1;
		v = strtoul(*p, &end, 10);
		*p = end;
		*(unsigned *)at = (unsigned)v;
		return v <= UINT32_MAX ? 0 : -1;
	}
}

/* One object: every field of tmodels_fields, each once, nothing else. */
static int tmodels_object(const char **p, struct tsrv_model *m)
{
	unsigned seen = 0, i;
	char key[32];

	memset(m, 0, sizeof(*m));
	if (tmodels_lit(p, "{"))
		return -1;
	do {
		tmodels_ws(p);
		if (tmodels_str(p, key, sizeof(key)) || tmodels_lit(p, ":"))
			return -1;
		for (i = 0; i < TM_NFIELDS; i++)
			if (strcmp(key, tmodels_fields[i].key) == 0)
				break;
		if (i == TM_NFIELDS || (seen & 1u << i)) {
			fprintf(stderr, "--list-models --json: key '%s' %s\n",
				key, i == TM_NFIELDS ? "unknown" : "twice");
			return -1;
		}
		seen |= 1u << i;
		if (tmodels_value(p, &tmodels_fields[i], m))
			return -1;
	} while (tmodels_lit(p, ",") == 0);
	if (seen != (1u << TM_NFIELDS) - 1) {
		fprintf(stderr, "--list-models --json: %s lacks a property\n",
			m->name);
		return -1;
	}
	return tmodels_lit(p, "}");
}

int tsrv_parse_models(const char *json, struct tsrv_model *models, int max)
{
	const char *p = json;
	int n = 0;

	if (tmodels_lit(&p, "["))
		goto out_bad;
	do {
		if (n == max || tmodels_object(&p, &models[n]))
			goto out_bad;
		n++;
	} while (tmodels_lit(&p, ",") == 0);
	if (tmodels_lit(&p, "]"))
		goto out_bad;
	tmodels_ws(&p);
	if (*p)
		goto out_bad;
	return n;

out_bad:
	fprintf(stderr, "--list-models --json: not as expected at '%.40s'\n",
		p);
	return -1;
}
