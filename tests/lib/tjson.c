#include "tjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *tjson_value(const char *p);

static const char *tjson_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *tjson_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++)
		if (*p == '\\' && !*++p)
			return NULL;
	return *p == '"' ? p + 1 : NULL;
}

static const char *tjson_list(const char *p, char close, int keyed)
{
	p = tjson_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keyed) {
			p = tjson_string(tjson_ws(p));
			if (!p || *(p = tjson_ws(p)) != ':')
				return NULL;
			p++;
		}
		p = tjson_value(p);
		if (!p)
			return NULL;
		p = tjson_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *tjson_value(const char *p)
{
	char *end;

	p = tjson_ws(p);
	if (*p == '{')
		return tjson_list(p, '}', 1);
	if (*p == '[')
		return tjson_list(p, ']', 0);
	if (*p == '"')
		return tjson_string(p);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	strtod(p, &end);
	return end == p ? NULL : end;
}

int tjson_valid(const char *s)
{
	const char *end = tjson_value(s);

	return end && *tjson_ws(end) == '\0';
}

const char *tjson_find(const char *s, const char *obj, const char *key)
{
	char pat[64];

	if (obj) {
		snprintf(pat, sizeof(pat), "\"%s\":{", obj);
		s = strstr(s, pat);
		if (!s)
			return NULL;
	}
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	s = strstr(s, pat);
	return s ? s + strlen(pat) : NULL;
}

double tjson_num(const char *s, const char *obj, const char *key)
{
	const char *v = tjson_find(s, obj, key);

	return v ? strtod(v, NULL) : -1;
}

void tjson_object(const char *json, const char *key, char *buf, size_t cap)
{
	const char *v = tjson_find(json, NULL, key), *end;

	buf[0] = '\0';
	end = v ? strchr(v, '}') : NULL;
	if (end && (size_t)(end - v) < cap) {
		memcpy(buf, v, (size_t)(end - v));
		buf[end - v] = '\0';
	}
}
