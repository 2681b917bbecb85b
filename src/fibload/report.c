/* report - the human report and the JSON object (see report.h). */
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

double fl_rps(const struct fl_result *res)
{
	if (res->merged)
		return res->merged_rps;
	return res->elapsed_s > 0 ? (double)res->requests / res->elapsed_s : 0;
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static const char *mode(const struct fl_config *cfg)
{
	return cfg->rate > 0 ? "open loop" : "closed loop";
}

/* What both reports say of a latency histogram, in microseconds. */
struct latency_us {
	double mean, p50, p90, p99, p999, max;
	double stddev; /* the JSON report's alone */
};

static struct latency_us latency_us(const struct hist *h)
{
	return (struct latency_us){
	    .mean = hist_mean(h) / 1e3,
	    .p50 = us(hist_percentile(h, 50)),
	    .p90 = us(hist_percentile(h, 90)),
	    .p99 = us(hist_percentile(h, 99)),
	    .p999 = us(hist_percentile(h, 99.9)),
	    .max = us(hist_max(h)),
	    .stddev = hist_stddev(h) / 1e3,
	};
}

static void text_latency(FILE *out, const char *title, const struct hist *h)
{
	struct latency_us l = latency_us(h);

	fprintf(out,
		"%s (us): mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f  "
		"p99.9 %.1f  max %.1f\n",
		title, l.mean, l.p50, l.p90, l.p99, l.p999, l.max);
}

/* Writes s[0..len) with C escapes for what is not printable. */
static void text_escaped(FILE *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", out);
		else if (c == '\r')
			fputs("\\r", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c == '\\' || c == '\'')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
}

/* Writes what was asked for: "fib(30)", "mix of fib(1) 75%, fib(20) 25%"
 * or "'PING\r\n', expecting '+PONG'". */
static void describe_requests(FILE *out, const struct fl_config *cfg)
{
	uint64_t total = 0;

	if (cfg->request) {
		fputs("'", out);
		text_escaped(out, cfg->request, cfg->request_len);
		fputs("', expecting '", out);
		text_escaped(out, cfg->expect, cfg->expect_len);
		fputs("'", out);
		return;
	}
	if (cfg->mix_len == 1) {
		fprintf(out, "fib(%" PRIu64 ")", cfg->mix[0].n);
		return;
	}
	for (unsigned i = 0; i < cfg->mix_len; i++)
		total += cfg->mix[i].weight;
	fputs("mix of ", out);
	for (unsigned i = 0; i < cfg->mix_len; i++)
		fprintf(out, "%sfib(%" PRIu64 ") %.3g%%", i ? ", " : "",
			cfg->mix[i].n, 100.0 * cfg->mix[i].weight / total);
}

/* "server errors: 27467 x 'ERR n too large (max 45)', ..." */
static void text_errtexts(FILE *out, const struct fl_errtexts *t)
{
	if (!t->n)
		return;
	fputs("server errors:", out);
	for (unsigned i = 0; i < t->n; i++) {
		fprintf(out, "%s %" PRIu64 " x '", i ? "," : "", t->e[i].count);
		text_escaped(out, t->e[i].text, t->e[i].len);
		fputc('\'', out);
	}
	if (t->other)
		fprintf(out, ", %" PRIu64 " with other texts", t->other);
	fputc('\n', out);
}

/* "1 of 2 connections got no reply", then the ports when there are several
 * ("port 25000: 2 connections (1 got no reply)"). */
static void text_conns(FILE *out, const struct fl_config *cfg,
		       const struct fl_result *res)
{
	if (res->no_reply)
		fprintf(out, "%u of %u connection%s got no reply%s\n",
			res->no_reply, cfg->conns, cfg->conns == 1 ? "" : "s",
			cfg->allow_no_reply ? " (allowed: --allow-no-reply)"
					    : "");
	if (cfg->nports < 2 || res->merged)
		return;
	fputs("ports:", out);
	for (unsigned p = 0; p < cfg->nports; p++) {
		fprintf(out, "%s %u: %u conn%s", p ? "," : "",
			(unsigned)cfg->ports[p], res->ports.conns[p],
			res->ports.conns[p] == 1 ? "" : "s");
		if (res->ports.no_reply[p])
			fprintf(out, " (%u got no reply)",
				res->ports.no_reply[p]);
	}
	fputc('\n', out);
}

static void text_header(FILE *out, const struct fl_config *cfg,
			const struct fl_result *res)
{
	char ports[FL_PORTS_TEXT_MAX];

	fl_format_ports(cfg, ports, sizeof(ports));
	fprintf(out, "fibload %s:%s", cfg->host, ports);
	if (res->merged)
		fprintf(out, " (%u runs merged)", res->merged);
	fprintf(out, ": %u conns, %u threads, pipeline %u, %s", cfg->conns,
		res->threads, cfg->pipeline, mode(cfg));
	if (cfg->rate > 0)
		fprintf(out, " at %.0f rps, %s arrivals", cfg->rate,
			fl_arrivals_name(cfg->arrivals));
	if (cfg->rate > 0 && cfg->arrivals == FL_ARRIVALS_POISSON)
		fprintf(out, " (seed %" PRIu64 ")", cfg->seed);
	if (cfg->busy_poll)
		fputs(", busy-poll", out);
	fprintf(out, ", cpus %s%s\n", res->cpus,
		res->interrupted ? " (interrupted)" : "");
	fputs("asked for: ", out);
	describe_requests(out, cfg);
	fputc('\n', out);
}

void fl_report_text(FILE *out, const struct fl_config *cfg,
		    const struct fl_result *res)
{
	text_header(out, cfg, res);
	if (res->merged)
		fprintf(out,
			"requests: %" PRIu64 " in %.3f s (the longest "
			"window) = %.0f rps (the runs' rps summed)\n",
			res->requests, res->elapsed_s, fl_rps(res));
	else
		fprintf(out, "requests: %" PRIu64 " in %.3f s = %.0f rps\n",
			res->requests, res->elapsed_s, fl_rps(res));
	text_latency(out, cfg->rate > 0 ? "latency (corrected)" : "latency",
		     res->lat);
	if (res->raw)
		text_latency(out, "latency (uncorrected)", res->raw);
	fprintf(out, "errors: %" PRIu64, res->error_total);
	for (int k = 0; k < FL_ERR_KINDS; k++)
		fprintf(out, "  %s %" PRIu64, fl_err_name(k), res->errors[k]);
	fputc('\n', out);
	if (cfg->resend || res->resent)
		fprintf(out, "resent: %" PRIu64 "\n", res->resent);
	text_errtexts(out, &res->errtexts);
	text_conns(out, cfg, res);
	fprintf(out, "client cpu: %.2f s in %.2f s wall (%.0f%% of one core)\n",
		res->client_cpu_s, res->wall_s,
		res->wall_s > 0 ? 100 * res->client_cpu_s / res->wall_s : 0);
}

/* Writes s[0..len) as a JSON string, quotes included. */
static void json_string(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\r')
			fputs("\\r", out);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void json_latency(FILE *out, const char *key, const struct hist *h)
{
	struct latency_us l = latency_us(h);

	fprintf(out,
		"\"%s\":{\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
		"\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"stddev\":%.1f}",
		key, l.mean, l.p50, l.p90, l.p99, l.p999, l.max, l.stddev);
}

/* "asked": the description of the requests, as a string. */
static void json_asked(FILE *out, const struct fl_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	if (!mem)
		return;
	describe_requests(mem, cfg);
	fclose(mem);
	fputs("\"asked\":", out);
	json_string(out, buf, len);
	fputc(',', out);
	free(buf);
}

static void json_errtexts(FILE *out, const struct fl_errtexts *t)
{
	fputs("\"server_errors\":[", out);
	for (unsigned i = 0; i < t->n; i++) {
		fprintf(out, "%s{\"text\":", i ? "," : "");
		json_string(out, t->e[i].text, t->e[i].len);
		fprintf(out, ",\"count\":%" PRIu64 "}", t->e[i].count);
	}
	fprintf(out, "],\"server_errors_other\":%" PRIu64 ",", t->other);
}

static void json_conns(FILE *out, const struct fl_config *cfg,
		       const struct fl_result *res)
{
	fprintf(out, "\"no_reply\":%u,\"ports\":[", res->no_reply);
	for (unsigned p = 0; p < cfg->nports && !res->merged; p++)
		fprintf(out, "%s{\"port\":%u,\"conns\":%u,\"no_reply\":%u}",
			p ? "," : "", (unsigned)cfg->ports[p],
			res->ports.conns[p], res->ports.no_reply[p]);
	fputs("],", out);
}

static void json_config(FILE *out, const struct fl_config *cfg,
			const struct fl_result *res)
{
	fputs("\"config\":{\"host\":", out);
	json_string(out, cfg->host, strlen(cfg->host));
	fprintf(out,
		",\"port\":%u,\"conns\":%u,\"threads\":%u,\"duration_s\":%g,"
		"\"requests\":%" PRIu64 ",\"warmup_s\":%g,\"pipeline\":%u,"
		"\"mode\":\"%s\",\"rate\":%g,\"arrivals\":\"%s\","
		"\"seed\":%" PRIu64 ",\"timeout_ms\":%u,"
		"\"allow_no_reply\":%s,\"resend\":%s,\"busy_poll\":%s,"
		"\"cpus\":",
		(unsigned)cfg->ports[0], cfg->conns, res->threads,
		cfg->requests ? 0 : cfg->duration_s, cfg->requests,
		cfg->warmup_s, cfg->pipeline, cfg->rate > 0 ? "open" : "closed",
		cfg->rate, fl_arrivals_name(cfg->arrivals), cfg->seed,
		cfg->timeout_ms, cfg->allow_no_reply ? "true" : "false",
		cfg->resend ? "true" : "false",
		cfg->busy_poll ? "true" : "false");
	json_string(out, res->cpus, strlen(res->cpus));
	fputs(",\"port_list\":[", out);
	for (unsigned p = 0; p < cfg->nports; p++)
		fprintf(out, "%s%u", p ? "," : "", (unsigned)cfg->ports[p]);
	fputc(']', out);
	if (cfg->request) {
		fputs(",\"request\":", out);
		json_string(out, cfg->request, cfg->request_len);
		fputs(",\"expect\":", out);
		json_string(out, cfg->expect, cfg->expect_len);
	} else {
		fputs(",\"mix\":[", out);
		for (unsigned i = 0; i < cfg->mix_len; i++)
			fprintf(out, "%s{\"n\":%" PRIu64 ",\"weight\":%u}",
				i ? "," : "", cfg->mix[i].n,
				(unsigned)cfg->mix[i].weight);
		fputc(']', out);
	}
	fprintf(out, ",\"connected\":%u}", res->connected);
}

void fl_report_json(FILE *out, const struct fl_config *cfg,
		    const struct fl_result *res)
{
	fprintf(out,
		"{\"rps\":%.1f,\"requests\":%" PRIu64 ",\"elapsed_s\":%.6f,",
		fl_rps(res), res->requests, res->elapsed_s);
	json_asked(out, cfg);
	json_latency(out, "latency_us", res->lat);
	if (res->raw) {
		fputc(',', out);
		json_latency(out, "latency_uncorrected_us", res->raw);
	}
	fputs(",\"errors\":{", out);
	for (int k = 0; k < FL_ERR_KINDS; k++)
		fprintf(out, "\"%s\":%" PRIu64 ",", fl_err_name(k),
			res->errors[k]);
	fprintf(out, "\"total\":%" PRIu64 "},\"resent\":%" PRIu64 ",",
		res->error_total, res->resent);
	json_errtexts(out, &res->errtexts);
	json_conns(out, cfg, res);
	fprintf(out, "\"client_cpu_s\":%.3f,", res->client_cpu_s);
	fprintf(out, "\"wall_s\":%.3f,\"interrupted\":%s,", res->wall_s,
		res->interrupted ? "true" : "false");
	if (res->merged)
		fprintf(out, "\"merged\":%u,", res->merged);
	json_config(out, cfg, res);
	fputs("}\n", out);
}
