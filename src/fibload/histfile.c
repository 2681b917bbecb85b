/*
 * histfile - the --hist-out file (see histfile.h and docs/FIBLOAD.md):
 *
 *   fibload-hist 1
 *   # comment lines and blank lines are ignored
 *   KEY VALUE            one line per run field, in any order
 *   errors connect C read R write W timeout T protocol P wrong X
 *   hist latency HIGHEST SIGFIGS count N clamped C sum S min M max X
 *   LOW COUNT            one line per non-empty sub-bucket, ascending
 *   end
 *   hist latency_uncorrected ...   (--rate only: the same layout)
 *
 * Integers are decimal, seconds are printed with 17 significant digits so
 * that they read back to the same double, and strings (request, expect)
 * use fibload's own C escapes, with spaces as \x20.
 */
#include "histfile.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "hist.h"

/* --- writing ------------------------------------------------------- */

/* Writes s[0..len) with C escapes, so that it is one token. */
static void hf_put_escaped(FILE *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\')
			fputs("\\\\", f);
		else if (c > ' ' && c < 0x7f)
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
}

static void hf_put_workload(FILE *f, const struct fl_config *cfg)
{
	if (cfg->request) {
		fputs("request ", f);
		hf_put_escaped(f, cfg->request, cfg->request_len);
		fputs("\nexpect ", f);
		hf_put_escaped(f, cfg->expect, cfg->expect_len);
		fputc('\n', f);
		return;
	}
	fputs("mix ", f);
	for (unsigned i = 0; i < cfg->mix_len; i++)
		fprintf(f, "%s%" PRIu64 ":%u", i ? "," : "", cfg->mix[i].n,
			(unsigned)cfg->mix[i].weight);
	fputc('\n', f);
}

static void hf_put_hist(FILE *f, const char *name, const struct hist *h)
{
	uint64_t low, count;
	size_t pos = 0;

	fprintf(f,
		"hist %s %" PRIu64 " %d count %" PRIu64 " clamped %" PRIu64
		" sum %" PRIu64 " min %" PRIu64 " max %" PRIu64 "\n",
		name, hist_highest(h), hist_sigfigs(h), hist_count(h),
		hist_clamped(h), hist_sum(h), hist_min(h), hist_max(h));
	while (hist_bucket(h, &pos, &low, &count))
		fprintf(f, "%" PRIu64 " %" PRIu64 "\n", low, count);
	fputs("end\n", f);
}

static void hf_put_run(FILE *f, const struct fl_config *cfg,
		       const struct fl_result *res)
{
	fprintf(f, "fibload-hist %d\n", FL_HISTFILE_VERSION);
	fputs("# one fibload run; read by 'fibload merge' "
	      "(docs/FIBLOAD.md)\n",
	      f);
	char ports[FL_PORTS_TEXT_MAX];

	fl_format_ports(cfg, ports, sizeof(ports));
	fprintf(f, "host %s\nport %s\nconns %u\nthreads %u\npipeline %u\n",
		cfg->host, ports, cfg->conns, res->threads, cfg->pipeline);
	fprintf(f,
		"rate %.17g\nduration_s %.17g\ntarget_requests %" PRIu64
		"\nwarmup_s %.17g\ntimeout_ms %u\ncpus %s\nconnected %u\n",
		cfg->rate, cfg->requests ? 0 : cfg->duration_s, cfg->requests,
		cfg->warmup_s, cfg->timeout_ms, res->cpus[0] ? res->cpus : "-",
		res->connected);
	hf_put_workload(f, cfg);
	fprintf(f,
		"requests %" PRIu64 "\nelapsed_s %.17g\nwall_s %.17g\n"
		"client_cpu_s %.17g\ninterrupted %d\nerrors",
		res->requests, res->elapsed_s, res->wall_s, res->client_cpu_s,
		res->interrupted ? 1 : 0);
	for (int k = 0; k < FL_ERR_KINDS; k++)
		fprintf(f, " %s %" PRIu64, fl_err_name(k), res->errors[k]);
	fprintf(f, "\nno_reply %u\n", res->no_reply);
	hf_put_hist(f, "latency", res->lat);
	if (res->raw)
		hf_put_hist(f, "latency_uncorrected", res->raw);
}

int fl_histfile_write(const char *path, const struct fl_config *cfg,
		      const struct fl_result *res)
{
	FILE *f = fopen(path, "w");
	int err = 0;

	if (!f) {
		err = -errno;
		log_err(err, "--hist-out %s", path);
		return err;
	}
	hf_put_run(f, cfg, res);
	if (ferror(f))
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	if (err)
		log_err(err, "--hist-out %s", path);
	return err;
}

/* --- reading ------------------------------------------------------- */

/* The fields, each allowed once. */
enum hf_key {
	HF_HOST,
	HF_PORT,
	HF_CONNS,
	HF_THREADS,
	HF_PIPELINE,
	HF_RATE,
	HF_DURATION,
	HF_TARGET,
	HF_WARMUP,
	HF_TIMEOUT,
	HF_CPUS,
	HF_CONNECTED,
	HF_MIX,
	HF_REQUEST,
	HF_EXPECT,
	HF_REQUESTS,
	HF_ELAPSED,
	HF_WALL,
	HF_CPU,
	HF_INTERRUPTED,
	HF_ERRORS,
	HF_NO_REPLY,
	HF_LAT,
	HF_RAW,
	HF_KEYS
};

static const char *const hf_names[HF_KEYS] = {
    [HF_HOST] = "host",
    [HF_PORT] = "port",
    [HF_CONNS] = "conns",
    [HF_THREADS] = "threads",
    [HF_PIPELINE] = "pipeline",
    [HF_RATE] = "rate",
    [HF_DURATION] = "duration_s",
    [HF_TARGET] = "target_requests",
    [HF_WARMUP] = "warmup_s",
    [HF_TIMEOUT] = "timeout_ms",
    [HF_CPUS] = "cpus",
    [HF_CONNECTED] = "connected",
    [HF_MIX] = "mix",
    [HF_REQUEST] = "request",
    [HF_EXPECT] = "expect",
    [HF_REQUESTS] = "requests",
    [HF_ELAPSED] = "elapsed_s",
    [HF_WALL] = "wall_s",
    [HF_CPU] = "client_cpu_s",
    [HF_INTERRUPTED] = "interrupted",
    [HF_ERRORS] = "errors",
    [HF_NO_REPLY] = "no_reply",
    [HF_LAT] = "hist latency",
    [HF_RAW] = "hist latency_uncorrected",
};

/* Every field but the workload's (mix, or request and expect), the
 * uncorrected histogram (--rate only) and no_reply (0 when left out) must
 * be there. */
#define HF_REQUIRED                                                            \
	(((1u << HF_KEYS) - 1) &                                               \
	 ~((1u << HF_MIX) | (1u << HF_REQUEST) | (1u << HF_EXPECT) |           \
	   (1u << HF_RAW) | (1u << HF_NO_REPLY)))

#define HF_MAX_TOKENS 16

struct hf_reader {
	FILE *f;
	const char *path;
	unsigned line;
	char *buf;
	size_t cap;
	char *tok[HF_MAX_TOKENS];
	int ntok;
	unsigned seen; /* 1 << enum hf_key for each field read */
};

static int hf_bad(const struct hf_reader *r, const char *why)
{
	log_msg("%s:%u: %s", r->path, r->line, why);
	return -EINVAL;
}

/* Reads the next line that is not blank or a comment, split into tokens.
 * Returns 1, 0 at the end of the file, or -EINVAL (too many tokens). */
static int hf_next(struct hf_reader *r)
{
	char *save, *t;

	for (;;) {
		if (getline(&r->buf, &r->cap, r->f) < 0)
			return 0;
		r->line++;
		r->ntok = 0;
		for (t = strtok_r(r->buf, " \t\r\n", &save); t;
		     t = strtok_r(NULL, " \t\r\n", &save)) {
			if (r->ntok == HF_MAX_TOKENS)
				return hf_bad(r, "too many fields on a line");
			r->tok[r->ntok++] = t;
		}
		if (r->ntok && r->tok[0][0] != '#')
			return 1;
	}
}

/* A decimal integer in [0, max], the whole token. */
static int hf_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A finite number of seconds >= 0, the whole token. */
static int hf_secs(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* An integer field into a narrower variable, range-checked. */
static int hf_set_uint(const char *s, uint64_t min, uint64_t max, unsigned *out)
{
	uint64_t v;

	if (hf_uint(s, max, &v) || v < min)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int hf_set_string(const char *opt, const char *s, char **out,
			 size_t *len)
{
	free(*out);
	*out = NULL;
	return fl_unescape(opt, s, out, len);
}

/* The run's options. */
static int hf_config_field(enum hf_key k, const char *v, struct fl_config *cfg,
			   struct fl_result *res)
{
	switch (k) {
	case HF_HOST:
		if (strlen(v) >= sizeof(cfg->host))
			return -EINVAL;
		strcpy(cfg->host, v);
		return 0;
	case HF_PORT: /* 0: merged runs that used other ports */
		if (strcmp(v, "0"))
			return fl_parse_ports(v, cfg);
		cfg->ports[0] = 0;
		cfg->nports = 1;
		return 0;
	case HF_CONNS:
		return hf_set_uint(v, 1, UINT32_MAX, &cfg->conns);
	case HF_THREADS:
		return hf_set_uint(v, 1, UINT32_MAX, &res->threads);
	case HF_PIPELINE:
		return hf_set_uint(v, 1, FL_MAX_PIPELINE, &cfg->pipeline);
	case HF_RATE:
		return hf_secs(v, &cfg->rate);
	case HF_DURATION:
		return hf_secs(v, &cfg->duration_s);
	case HF_TARGET:
		return hf_uint(v, UINT64_MAX, &cfg->requests);
	case HF_WARMUP:
		return hf_secs(v, &cfg->warmup_s);
	case HF_TIMEOUT:
		return hf_set_uint(v, 1, UINT32_MAX, &cfg->timeout_ms);
	case HF_CPUS:
		if (strlen(v) >= sizeof(res->cpus))
			return -EINVAL;
		strcpy(res->cpus, v);
		return 0;
	case HF_CONNECTED:
		return hf_set_uint(v, 0, UINT32_MAX, &res->connected);
	case HF_MIX:
		return fl_parse_mix(v, cfg);
	case HF_REQUEST:
		return hf_set_string("request", v, &cfg->request,
				     &cfg->request_len);
	case HF_EXPECT:
		return hf_set_string("expect", v, &cfg->expect,
				     &cfg->expect_len);
	default:
		return -EINVAL;
	}
}

/* The run's counts and times, or else an option. */
static int hf_field(enum hf_key k, const char *v, struct fl_config *cfg,
		    struct fl_result *res)
{
	uint64_t u;

	switch (k) {
	case HF_REQUESTS:
		return hf_uint(v, UINT64_MAX, &res->requests);
	case HF_ELAPSED:
		return hf_secs(v, &res->elapsed_s);
	case HF_WALL:
		return hf_secs(v, &res->wall_s);
	case HF_NO_REPLY:
		return hf_set_uint(v, 0, UINT32_MAX, &res->no_reply);
	case HF_CPU:
		return hf_secs(v, &res->client_cpu_s);
	case HF_INTERRUPTED:
		if (hf_uint(v, 1, &u))
			return -EINVAL;
		res->interrupted = (int)u;
		return 0;
	default:
		return hf_config_field(k, v, cfg, res);
	}
}

/* "errors connect C read R ...": every kind, in order. */
static int hf_errors(struct hf_reader *r, struct fl_result *res)
{
	if (r->ntok != 1 + 2 * FL_ERR_KINDS)
		return hf_bad(r, "errors: want every kind with its count");
	res->error_total = 0;
	for (int k = 0; k < FL_ERR_KINDS; k++) {
		if (strcmp(r->tok[1 + 2 * k], fl_err_name(k)) ||
		    hf_uint(r->tok[2 + 2 * k], UINT64_MAX, &res->errors[k]) ||
		    res->errors[k] > UINT64_MAX - res->error_total)
			return hf_bad(r, "errors: bad kind or count");
		res->error_total += res->errors[k];
	}
	return 0;
}

/* The header's numbers: "hist NAME HIGHEST SIGFIGS count N clamped C sum S
 * min M max X". */
struct hf_hist_head {
	uint64_t highest, sigfigs, count, clamped, sum, min, max;
};

static int hf_hist_head(struct hf_reader *r, struct hf_hist_head *hh)
{
	static const char *const names[] = {"count", "clamped", "sum", "min",
					    "max"};
	uint64_t *vals[] = {&hh->count, &hh->clamped, &hh->sum, &hh->min,
			    &hh->max};

	if (r->ntok != 14 || hf_uint(r->tok[2], UINT64_MAX, &hh->highest) ||
	    hf_uint(r->tok[3], 5, &hh->sigfigs))
		return hf_bad(r, "hist: want NAME HIGHEST SIGFIGS count N "
				 "clamped C sum S min M max X");
	for (int i = 0; i < 5; i++)
		if (strcmp(r->tok[4 + 2 * i], names[i]) ||
		    hf_uint(r->tok[5 + 2 * i], UINT64_MAX, vals[i]))
			return hf_bad(r, "hist: bad count, clamped, sum, min "
					 "or max");
	return 0;
}

/* A histogram: its header line is r's current line; reads up to "end". */
static int hf_hist(struct hf_reader *r, struct hist **out)
{
	struct hf_hist_head hh;
	uint64_t low, count, prev = 0;
	struct hist *h;
	int got, first = 1;

	if (hf_hist_head(r, &hh))
		return -EINVAL;
	h = hist_new(hh.highest, (int)hh.sigfigs);
	if (!h)
		return hf_bad(r, "hist: HIGHEST and SIGFIGS make no histogram");
	*out = h;
	while ((got = hf_next(r)) == 1 && strcmp(r->tok[0], "end")) {
		if (r->ntok != 2 || hf_uint(r->tok[0], UINT64_MAX, &low) ||
		    hf_uint(r->tok[1], UINT64_MAX, &count) || !count)
			return hf_bad(r, "hist: want a line 'LOW COUNT'");
		if ((!first && low <= prev) || hist_add_bucket(h, low, count))
			return hf_bad(r, "hist: LOW is not the next "
					 "sub-bucket of this histogram");
		prev = low;
		first = 0;
	}
	if (got < 0)
		return got;
	if (!got)
		return hf_bad(r, "hist: no 'end' line");
	if (hist_count(h) != hh.count)
		return hf_bad(r, "hist: the buckets do not add up to count");
	if (hist_restore(h, hh.clamped, hh.sum, hh.min, hh.max))
		return hf_bad(r, "hist: clamped, sum, min or max contradict "
				 "the buckets");
	return 0;
}

static int hf_key_of(const struct hf_reader *r)
{
	char name[64];

	if (r->ntok >= 2 && !strcmp(r->tok[0], "hist")) {
		snprintf(name, sizeof(name), "hist %s", r->tok[1]);
	} else {
		snprintf(name, sizeof(name), "%s", r->tok[0]);
	}
	for (int k = 0; k < HF_KEYS; k++)
		if (!strcmp(name, hf_names[k]))
			return k;
	return -1;
}

/* One field line (the current one). */
static int hf_line(struct hf_reader *r, struct fl_config *cfg,
		   struct fl_result *res)
{
	int k = hf_key_of(r);

	if (k < 0)
		return hf_bad(r, "unknown field");
	if (r->seen & (1u << k))
		return hf_bad(r, "field given twice");
	r->seen |= 1u << k;
	if (k == HF_ERRORS)
		return hf_errors(r, res);
	if (k == HF_LAT)
		return hf_hist(r, &res->lat);
	if (k == HF_RAW)
		return hf_hist(r, &res->raw);
	if (r->ntok != 2 || hf_field(k, r->tok[1], cfg, res))
		return hf_bad(r, "bad value");
	return 0;
}

/* "fibload-hist VERSION" must come first. */
static int hf_magic(struct hf_reader *r)
{
	uint64_t v;

	if (hf_next(r) != 1 || r->ntok != 2 ||
	    strcmp(r->tok[0], "fibload-hist"))
		return hf_bad(r, "not a fibload histogram file (no "
				 "'fibload-hist VERSION' line)");
	if (hf_uint(r->tok[1], UINT32_MAX, &v) || v != FL_HISTFILE_VERSION) {
		log_msg("%s:%u: format version %s, but this fibload reads "
			"version %d",
			r->path, r->line, r->tok[1], FL_HISTFILE_VERSION);
		return -EINVAL;
	}
	return 0;
}

/* The name of a required field the file lacked, or NULL. */
static const char *hf_missing(const struct hf_reader *r)
{
	for (int k = 0; k < HF_KEYS; k++)
		if ((HF_REQUIRED & (1u << k)) && !(r->seen & (1u << k)))
			return hf_names[k];
	return NULL;
}

/* After the last line: what is inconsistent, or NULL. */
static const char *hf_check(const struct hf_reader *r,
			    const struct fl_config *cfg,
			    const struct fl_result *res)
{
	unsigned workload =
	    r->seen & ((1u << HF_MIX) | (1u << HF_REQUEST) | (1u << HF_EXPECT));

	if (workload != (1u << HF_MIX) &&
	    workload != ((1u << HF_REQUEST) | (1u << HF_EXPECT)))
		return "want either mix, or request and expect";
	if (!(r->seen & (1u << HF_RAW)) != !(cfg->rate > 0))
		return "latency_uncorrected goes with rate > 0, and only then";
	if (hist_count(res->lat) != res->requests ||
	    (res->raw && hist_count(res->raw) != res->requests))
		return "a histogram's count is not the requests";
	if (res->connected > cfg->conns || res->threads > cfg->conns ||
	    res->no_reply > cfg->conns)
		return "more threads, connected or no_reply than conns";
	if (!cfg->requests == !(cfg->duration_s > 0))
		return "want duration_s or target_requests, not both";
	return NULL;
}

int fl_histfile_read(const char *path, struct fl_config *cfg,
		     struct fl_result *res)
{
	struct hf_reader r = {.path = path};
	const char *why;
	int err, got;

	memset(res, 0, sizeof(*res));
	r.f = fopen(path, "r");
	if (!r.f) {
		err = -errno;
		log_err(err, "%s", path);
		return err;
	}
	err = hf_magic(&r);
	while (!err && (got = hf_next(&r)) == 1)
		err = hf_line(&r, cfg, res);
	if (!err && got < 0)
		err = got;
	if (!err && ferror(r.f)) {
		err = -EIO;
		log_err(err, "%s", path);
	}
	if (!err && (why = hf_missing(&r))) {
		log_msg("%s: no '%s' line", path, why);
		err = -EINVAL;
	} else if (!err && (why = hf_check(&r, cfg, res))) {
		log_msg("%s: %s", path, why);
		err = -EINVAL;
	}
	free(r.buf);
	fclose(r.f);
	return err;
}
