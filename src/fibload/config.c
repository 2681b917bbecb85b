/* config - option defaults and the parsers for --mix, --cpu and escapes. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void fl_config_default(struct fl_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->host, "127.0.0.1");
	cfg->ports[0] = FL_DEFAULT_PORT;
	cfg->nports = 1;
	cfg->seed = FL_DEFAULT_SEED;
	cfg->conns = 1;
	cfg->threads = 1;
	cfg->duration_s = FL_DEFAULT_DURATION_S;
	cfg->pipeline = 1;
	cfg->mix[0].n = 1;
	cfg->mix[0].weight = 1;
	cfg->mix_len = 1;
	cfg->timeout_ms = FL_DEFAULT_TIMEOUT_MS;
}

void fl_config_release(struct fl_config *cfg)
{
	free(cfg->request);
	free(cfg->expect);
	cfg->request = cfg->expect = NULL;
}

/* Parses an unsigned decimal at *s, advancing *s. -EINVAL when none. */
static int parse_num(const char **s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (**s < '0' || **s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(*s, &end, 10);
	if (errno || v > max)
		return -EINVAL;
	*s = end;
	*out = v;
	return 0;
}

int fl_parse_mix(const char *arg, struct fl_config *cfg)
{
	const char *s = arg;
	uint64_t n, w;

	cfg->mix_len = 0;
	for (;;) {
		if (cfg->mix_len == FL_MIX_MAX) {
			log_msg("--mix: more than %d entries", FL_MIX_MAX);
			return -EINVAL;
		}
		if (parse_num(&s, FL_MAX_N, &n))
			goto out_bad;
		w = 1;
		if (*s == ':' && (s++, parse_num(&s, UINT32_MAX, &w) || !w))
			goto out_bad;
		cfg->mix[cfg->mix_len].n = n;
		cfg->mix[cfg->mix_len].weight = (uint32_t)w;
		cfg->mix_len++;
		if (*s == '\0')
			return 0;
		if (*s++ != ',')
			goto out_bad;
	}

out_bad:
	log_msg("--mix: '%s' is not N:W,N:W... (0 <= N <= %d, W >= 1)", arg,
		FL_MAX_N);
	return -EINVAL;
}

int fl_parse_ports(const char *arg, struct fl_config *cfg)
{
	const char *s = arg;
	uint64_t lo, hi;

	cfg->nports = 0;
	for (;;) {
		if (parse_num(&s, 65535, &lo) || !lo)
			goto out_bad;
		hi = lo;
		if (*s == '-' && (s++, parse_num(&s, 65535, &hi)))
			goto out_bad;
		if (hi < lo)
			goto out_bad;
		if (hi - lo >= FL_MAX_PORTS - cfg->nports) {
			log_msg("-p: more than %d ports", FL_MAX_PORTS);
			return -EINVAL;
		}
		for (uint64_t p = lo; p <= hi; p++)
			cfg->ports[cfg->nports++] = (uint16_t)p;
		if (*s == '\0')
			return 0;
		if (*s++ != ',')
			goto out_bad;
	}

out_bad:
	log_msg("-p: '%s' is not a port list such as 25000, 25000,25001 or "
		"25000-25003 (ports 1..65535)",
		arg);
	return -EINVAL;
}

void fl_format_ports(const struct fl_config *cfg, char *buf, size_t cap)
{
	size_t used = 0;
	unsigned i = 0, j;

	buf[0] = '\0';
	while (i < cfg->nports && used < cap) {
		for (j = i; j + 1 < cfg->nports &&
			    cfg->ports[j + 1] == cfg->ports[j] + 1;
		     j++)
			;
		used += (size_t)snprintf(buf + used, cap - used,
					 j > i ? "%s%u-%u" : "%s%u",
					 i ? "," : "", (unsigned)cfg->ports[i],
					 (unsigned)cfg->ports[j]);
		i = j + 1;
	}
}

int fl_parse_cpus(const char *arg, cpu_set_t *set)
{
	const char *s = arg;
	uint64_t lo, hi;

	CPU_ZERO(set);
	for (;;) {
		if (parse_num(&s, CPU_SETSIZE - 1, &lo))
			goto out_bad;
		hi = lo;
		if (*s == '-' && (s++, parse_num(&s, CPU_SETSIZE - 1, &hi)))
			goto out_bad;
		if (hi < lo)
			goto out_bad;
		for (uint64_t c = lo; c <= hi; c++)
			CPU_SET(c, set);
		if (*s == '\0')
			return 0;
		if (*s++ != ',')
			goto out_bad;
	}

out_bad:
	log_msg("--cpu: '%s' is not a CPU list such as 1, 0,1 or 0-3", arg);
	return -EINVAL;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the escape after a backslash at *s; advances *s. -1 if bad. */
static int unescape_one(const char **s)
{
	char c = *(*s)++;
	int hi, lo;

	switch (c) {
	case 'r':
		return '\r';
	case 'n':
		return '\n';
	case 't':
		return '\t';
	case '0':
		return '\0';
	case '\\':
	case '"':
	case '\'':
		return c;
	case 'x':
		hi = hex_digit((*s)[0]);
		lo = hi < 0 ? -1 : hex_digit((*s)[1]);
		if (lo < 0)
			return -1;
		*s += 2;
		return hi * 16 + lo;
	default:
		return -1;
	}
}

int fl_unescape(const char *opt, const char *s, char **out, size_t *len)
{
	char *buf = malloc(strlen(s) + 1);
	size_t n = 0;
	int c;

	if (!buf)
		return -ENOMEM;
	while (*s) {
		if (*s != '\\') {
			buf[n++] = *s++;
			continue;
		}
		s++;
		c = unescape_one(&s);
		if (c < 0) {
			log_msg("%s: bad escape (use \\r \\n \\t \\\\ \\xHH)",
				opt);
			free(buf);
			return -EINVAL;
		}
		buf[n++] = (char)c;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

void fl_format_cpus(const cpu_set_t *set, char *buf, size_t cap)
{
	size_t used = 0;
	int lo, hi;

	buf[0] = '\0';
	for (lo = 0; lo < CPU_SETSIZE; lo = hi + 1) {
		hi = lo;
		if (!CPU_ISSET(lo, set))
			continue;
		while (hi + 1 < CPU_SETSIZE && CPU_ISSET(hi + 1, set))
			hi++;
		used += (size_t)snprintf(buf + used, cap - used,
					 hi > lo ? "%s%d-%d" : "%s%d",
					 used ? "," : "", lo, hi);
		if (used >= cap)
			return;
	}
}
