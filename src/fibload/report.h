/*
 * report - the final report: a human one, or one JSON object.
 *
 * JSON keys: rps, requests, elapsed_s, latency_us {mean, p50, p90, p99,
 * p999, max}, errors {connect, read, write, timeout, protocol, wrong,
 * total}, client_cpu_s, config {...the options...}; with --rate also
 * latency_uncorrected_us (the same keys, measured from the actual send);
 * for a merge (res->merged > 0) also merged, the number of runs.
 */
#ifndef FIBLOAD_REPORT_H
#define FIBLOAD_REPORT_H

#include <stdio.h>

#include "config.h"
#include "run.h"

/* Requests per second over the measured window (0 when it is empty). */
double fl_rps(const struct fl_result *res);

void fl_report_text(FILE *out, const struct fl_config *cfg,
		    const struct fl_result *res);
void fl_report_json(FILE *out, const struct fl_config *cfg,
		    const struct fl_result *res);

/* Writes s[0..len) as a JSON string, quotes included. */
void fl_json_string(FILE *out, const char *s, size_t len);

#endif
