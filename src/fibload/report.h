/*
 * report - the final report: a human one, or one JSON object.
 *
 * JSON keys: rps, requests, elapsed_s, asked (what was asked for, as the
 * text report's "asked for" line), latency_us {mean, p50, p90, p99, p999,
 * max, stddev}, errors {connect, read, write, timeout, protocol, wrong, total},
 * resent (--resend: requests sent again after a clean close),
 * server_errors [{text, count}] (the first FL_ERRTEXTS distinct "ERR ..."
 * replies) and server_errors_other, no_reply (connections that got no
 * reply), ports [{port, conns, no_reply}] (empty for a merge),
 * client_cpu_s, wall_s, interrupted, config {...the options...}; with --rate
 * also latency_uncorrected_us (the same keys, measured from the actual send);
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

#endif
