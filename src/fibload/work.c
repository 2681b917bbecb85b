/*
 * work - the request table: each request fibload sends, with the exact
 * reply it must get back, computed once before the run by the core's own
 * proto_compute() with the exact algorithm (GMP beyond uint64).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/proto.h"

/* Replies may be this much longer than the longest expected one before
 * they count as malformed (room for "ERR ..." lines). */
#define FL_LINE_SLACK 1024

/* Strips the line end: '\n', then one '\r'. */
static size_t strip_eol(const char *s, size_t len)
{
	if (len && s[len - 1] == '\n')
		len--;
	if (len && s[len - 1] == '\r')
		len--;
	return len;
}

/* Fills item with "N\n" and fib(N). Returns 0 or -ENOMEM. */
static int work_fib_item(struct fl_item *it, uint64_t n)
{
	struct proto_limits lim = {
	    .algo = FIB_FAST,
	    .max_n = FIB_FAST_LIMIT_N,
	    .max_line = PROTO_DEFAULT_MAX_LINE,
	};
	struct reply r = {0};
	char req[32];
	int len = snprintf(req, sizeof(req), "%llu\n", (unsigned long long)n);

	it->req = strdup(req);
	if (!it->req)
		return -ENOMEM;
	it->req_len = (size_t)len;
	proto_compute(&lim, n, &r);
	if (r.len && r.text[0] == 'E') { /* PROTO_INTERNAL: out of memory */
		reply_release(&r);
		return -ENOMEM;
	}
	it->exp_len = strip_eol(r.text, r.len);
	it->exp = malloc(it->exp_len + 1);
	if (it->exp) {
		memcpy(it->exp, r.text, it->exp_len);
		it->exp[it->exp_len] = '\0';
	}
	reply_release(&r);
	return it->exp ? 0 : -ENOMEM;
}

/* Fills item with the --request / --expect pair. */
static int work_line_item(struct fl_item *it, const struct fl_config *cfg)
{
	it->req = malloc(cfg->request_len + 1);
	it->exp = malloc(cfg->expect_len + 1);
	if (!it->req || !it->exp)
		return -ENOMEM;
	memcpy(it->req, cfg->request, cfg->request_len + 1);
	it->req_len = cfg->request_len;
	memcpy(it->exp, cfg->expect, cfg->expect_len + 1);
	it->exp_len = strip_eol(it->exp, cfg->expect_len);
	return 0;
}

struct fl_work *fl_work_new(const struct fl_config *cfg)
{
	struct fl_work *work = calloc(1, sizeof(*work));
	unsigned count = cfg->request ? 1 : cfg->mix_len;
	size_t longest = 0;

	if (!work)
		return NULL;
	work->items = calloc(count, sizeof(work->items[0]));
	if (!work->items)
		goto out_free_work;
	work->nitems = count;
	work->fib = !cfg->request;
	for (unsigned i = 0; i < count; i++) {
		struct fl_item *it = &work->items[i];

		if (work->fib ? work_fib_item(it, cfg->mix[i].n)
			      : work_line_item(it, cfg))
			goto out_free_work;
		work->total_weight += work->fib ? cfg->mix[i].weight : 1;
		it->cum_weight = work->total_weight;
		if (it->req_len > work->max_req)
			work->max_req = it->req_len;
		if (it->exp_len > longest)
			longest = it->exp_len;
	}
	work->max_line = longest + FL_LINE_SLACK;
	return work;

out_free_work:
	fl_work_free(work);
	return NULL;
}

void fl_work_free(struct fl_work *work)
{
	if (!work)
		return;
	for (unsigned i = 0; work->items && i < work->nitems; i++) {
		free(work->items[i].req);
		free(work->items[i].exp);
	}
	free(work->items);
	free(work);
}

unsigned fl_work_pick(const struct fl_work *work, uint64_t r)
{
	uint64_t x;
	unsigned i = 0;

	if (work->nitems == 1)
		return 0;
	x = r % work->total_weight;
	while (x >= work->items[i].cum_weight)
		i++;
	return i;
}

/* A fib/1 reply that is not the true value: digits, or "ERR ...". */
static int fib_well_formed(const char *s, size_t len)
{
	if (len >= 4 && memcmp(s, "ERR ", 4) == 0)
		return 1;
	if (!len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

enum fl_verdict fl_work_check(const struct fl_work *work, unsigned item,
			      const char *line, size_t len)
{
	const struct fl_item *it = &work->items[item];

	if (len && line[len - 1] == '\r')
		len--;
	if (len == it->exp_len && memcmp(line, it->exp, len) == 0)
		return FL_REPLY_OK;
	if (!work->fib || fib_well_formed(line, len))
		return FL_REPLY_WRONG;
	return FL_REPLY_MALFORMED;
}
