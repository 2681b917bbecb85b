/* report - the human report and the JSON object (see report.h). */
#include "report.h"

#include <inttypes.h>
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

static void text_latency(FILE *out, const char *title, const struct hist *h)
{
	fprintf(out,
		"%s (us): mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f  "
		"p99.9 %.1f  max %.1f\n",
		title, hist_mean(h) / 1e3, us(hist_percentile(h, 50)),
		us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
		us(hist_percentile(h, 99.9)), us(hist_max(h)));
}

void fl_report_text(FILE *out, const struct fl_config *cfg,
		    const struct fl_result *res)
{
	fprintf(out, "fibload %s:%u", cfg->host, (unsigned)cfg->port);
	if (res->merged)
		fprintf(out, " (%u runs merged)", res->merged);
	fprintf(out, ": %u conns, %u threads, pipeline %u, %s", cfg->conns,
		res->threads, cfg->pipeline, mode(cfg));
	if (cfg->rate > 0)
		fprintf(out, " at %.0f rps", cfg->rate);
	fprintf(out, ", cpus %s%s\n", res->cpus,
		res->interrupted ? " (interrupted)" : "");
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
	fprintf(out,
		"\nclient cpu: %.2f s in %.2f s wall (%.0f%% of one core)\n",
		res->client_cpu_s, res->wall_s,
		res->wall_s > 0 ? 100 * res->client_cpu_s / res->wall_s : 0);
}

void fl_json_string(FILE *out, const char *s, size_t len)
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
	fprintf(out,
		"\"%s\":{\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
		"\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
		key, hist_mean(h) / 1e3, us(hist_percentile(h, 50)),
		us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
		us(hist_percentile(h, 99.9)), us(hist_max(h)));
}

static void json_config(FILE *out, const struct fl_config *cfg,
			const struct fl_result *res)
{
	fputs("\"config\":{\"host\":", out);
	fl_json_string(out, cfg->host, strlen(cfg->host));
	fprintf(out,
		",\"port\":%u,\"conns\":%u,\"threads\":%u,\"duration_s\":%g,"
		"\"requests\":%" PRIu64 ",\"warmup_s\":%g,\"pipeline\":%u,"
		"\"mode\":\"%s\",\"rate\":%g,\"timeout_ms\":%u,\"cpus\":",
		(unsigned)cfg->port, cfg->conns, res->threads,
		cfg->requests ? 0 : cfg->duration_s, cfg->requests,
		cfg->warmup_s, cfg->pipeline, cfg->rate > 0 ? "open" : "closed",
		cfg->rate, cfg->timeout_ms);
	fl_json_string(out, res->cpus, strlen(res->cpus));
	if (cfg->request) {
		fputs(",\"request\":", out);
		fl_json_string(out, cfg->request, cfg->request_len);
		fputs(",\"expect\":", out);
		fl_json_string(out, cfg->expect, cfg->expect_len);
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
	json_latency(out, "latency_us", res->lat);
	if (res->raw) {
		fputc(',', out);
		json_latency(out, "latency_uncorrected_us", res->raw);
	}
	fputs(",\"errors\":{", out);
	for (int k = 0; k < FL_ERR_KINDS; k++)
		fprintf(out, "\"%s\":%" PRIu64 ",", fl_err_name(k),
			res->errors[k]);
	fprintf(out, "\"total\":%" PRIu64 "},\"client_cpu_s\":%.3f,",
		res->error_total, res->client_cpu_s);
	fprintf(out, "\"wall_s\":%.3f,\"interrupted\":%s,", res->wall_s,
		res->interrupted ? "true" : "false");
	if (res->merged)
		fprintf(out, "\"merged\":%u,", res->merged);
	json_config(out, cfg, res);
	fputs("}\n", out);
}
