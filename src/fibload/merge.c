/* merge - fibload merge: histogram files into one result (see merge.h). */
#include "merge.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "histfile.h"
#include "report.h"

/* The same requests: the same mix, or the same request/expect pair. */
static int merge_same_work(const struct fl_config *a, const struct fl_config *b)
{
	if (!a->request != !b->request)
		return 0;
	if (a->request)
		return a->request_len == b->request_len &&
		       a->expect_len == b->expect_len &&
		       !memcmp(a->request, b->request, a->request_len) &&
		       !memcmp(a->expect, b->expect, a->expect_len);
	if (a->mix_len != b->mix_len)
		return 0;
	for (unsigned i = 0; i < a->mix_len; i++)
		if (a->mix[i].n != b->mix[i].n ||
		    a->mix[i].weight != b->mix[i].weight)
			return 0;
	return 1;
}

/* Why run b cannot join run a, or NULL when it can. */
static const char *merge_mismatch(const struct fl_config *a,
				  const struct fl_result *ra,
				  const struct fl_config *b,
				  const struct fl_result *rb)
{
	if (hist_highest(ra->lat) != hist_highest(rb->lat) ||
	    hist_sigfigs(ra->lat) != hist_sigfigs(rb->lat))
		return "its histogram has another shape (highest, sigfigs)";
	if (!(a->rate > 0) != !(b->rate > 0))
		return "one run is closed loop, the other open loop (--rate)";
	if (a->pipeline != b->pipeline)
		return "another pipeline depth (-P)";
	if (!merge_same_work(a, b))
		return "other requests (--n, --mix or --request/--expect)";
	return NULL;
}

static double merge_max(double x, double y)
{
	return x > y ? x : y;
}

/* Adds run b (compatible) into a. */
static void merge_add(struct fl_config *a, struct fl_result *ra,
		      const struct fl_config *b, const struct fl_result *rb)
{
	if (strcmp(a->host, b->host) || a->nports != b->nports ||
	    memcmp(a->ports, b->ports, a->nports * sizeof(a->ports[0]))) {
		strcpy(a->host, "*");
		a->ports[0] = 0;
		a->nports = 1;
	}
	if (strcmp(ra->cpus, rb->cpus))
		strcpy(ra->cpus, "*");
	a->conns += b->conns;
	a->rate += b->rate;
	a->requests += b->requests;
	a->duration_s = merge_max(a->duration_s, b->duration_s);
	a->warmup_s = merge_max(a->warmup_s, b->warmup_s);
	ra->threads += rb->threads;
	ra->connected += rb->connected;
	ra->no_reply += rb->no_reply;
	ra->requests += rb->requests;
	for (int k = 0; k < FL_ERR_KINDS; k++)
		ra->errors[k] += rb->errors[k];
	ra->error_total += rb->error_total;
	hist_merge(ra->lat, rb->lat);
	if (ra->raw)
		hist_merge(ra->raw, rb->raw);
	ra->merged_rps += fl_rps(rb);
	ra->elapsed_s = merge_max(ra->elapsed_s, rb->elapsed_s);
	ra->wall_s = merge_max(ra->wall_s, rb->wall_s);
	ra->client_cpu_s += rb->client_cpu_s;
	ra->interrupted |= rb->interrupted;
}

/* Reads paths[i] and adds it into cfg and res. */
static int merge_one(const char *path, const char *first, struct fl_config *cfg,
		     struct fl_result *res)
{
	struct fl_config ocfg;
	struct fl_result ores;
	const char *why;
	int err;

	fl_config_default(&ocfg);
	err = fl_histfile_read(path, &ocfg, &ores);
	if (!err && (why = merge_mismatch(cfg, res, &ocfg, &ores))) {
		log_msg("merge: %s does not match %s: %s", path, first, why);
		err = -EINVAL;
	}
	if (!err)
		merge_add(cfg, res, &ocfg, &ores);
	fl_result_release(&ores);
	fl_config_release(&ocfg);
	return err;
}

int fl_merge(const char *const *paths, unsigned n, struct fl_config *cfg,
	     struct fl_result *res)
{
	int err = fl_histfile_read(paths[0], cfg, res);

	if (err)
		return err;
	/* The rate of a run is its own requests over its own window. */
	res->merged_rps = fl_rps(res);
	res->merged = n;
	for (unsigned i = 1; i < n && !err; i++)
		err = merge_one(paths[i], paths[0], cfg, res);
	return err;
}
