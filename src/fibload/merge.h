/*
 * merge - fibload merge: several runs' histogram files (--hist-out), from
 * one machine or many, combined into one result that the usual report
 * prints.
 *
 * Runs merge when they measured the same load: the same histogram shape,
 * the same mode (closed loop, or open loop with its corrected latency), the
 * same pipeline depth and the same requests (--n/--mix, or --request and
 * --expect). Then histograms and counts add up exactly; connections,
 * threads, client CPU, the target rate and the -n target add up; the rps
 * is the sum of each run's rps (the runs ran side by side); the window and
 * wall time are the longest; host and port (and cpus) are kept when every
 * run has the same, and become "*" and 0 when not.
 */
#ifndef FIBLOAD_MERGE_H
#define FIBLOAD_MERGE_H

#include "config.h"
#include "run.h"

/*
 * Reads and merges paths[0..n) (n >= 1) into cfg (filled with
 * fl_config_default() first) and res, with res->merged = n. Returns 0, or
 * -EINVAL when a file is bad or does not match the first, another negative
 * errno when one cannot be read; each after logging why. Release cfg and
 * res in every case.
 */
int fl_merge(const char *const *paths, unsigned n, struct fl_config *cfg,
	     struct fl_result *res);

#endif
