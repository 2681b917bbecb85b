/*
 * histfile - one run's result in a portable text file (--hist-out), and
 * reading it back (fibload merge).
 *
 * The file holds what the report needs and nothing that depends on the
 * machine: the options that shape the load, the counts, the run's window,
 * and each latency histogram exactly (its parameters, then one line per
 * non-empty sub-bucket with its lowest value and its count, then the exact
 * sum, min and max). Reading it back and reporting gives the report the
 * run printed; merging files adds the counts, so the merged percentiles are
 * those of one histogram that recorded every value. The format, version
 * FL_HISTFILE_VERSION, is described in docs/FIBLOAD.md ("Histogram files").
 *
 * Both functions log "fibload: PATH[:LINE]: why" on failure.
 */
#ifndef FIBLOAD_HISTFILE_H
#define FIBLOAD_HISTFILE_H

#include "config.h"
#include "run.h"

/* The version written on the first line, "fibload-hist 1". */
#define FL_HISTFILE_VERSION 1

/* Writes cfg and res to path (replacing it). Returns 0 or a negative errno. */
int fl_histfile_write(const char *path, const struct fl_config *cfg,
		      const struct fl_result *res);

/*
 * Reads path into cfg (filled with fl_config_default() first) and res.
 * Returns 0; -EINVAL when the file is not a valid histogram file of this
 * version (wrong magic or version, a missing, repeated, unknown or bad
 * field, counts that contradict each other); another negative errno when
 * it cannot be read. Release cfg and res in every case.
 */
int fl_histfile_read(const char *path, struct fl_config *cfg,
		     struct fl_result *res);

#endif
