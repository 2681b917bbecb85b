/*
 * procstat - this process's own figures from /proc, as the Prometheus
 * clients export them (process_cpu_seconds_total and the rest): what
 * GET /metrics reports about the process that answered the scrape.
 */
#ifndef FIBD_CORE_PROCSTAT_H
#define FIBD_CORE_PROCSTAT_H

#include <stdint.h>

struct procstat {
	double cpu_seconds;	 /* user + system time of every thread */
	double start_time;	 /* when it started, seconds since the epoch */
	uint64_t resident_bytes; /* resident set */
	uint64_t virtual_bytes;	 /* address space */
	uint64_t open_fds;	 /* descriptors open now */
	uint64_t max_fds;	 /* RLIMIT_NOFILE's soft limit */
};

/*
 * Reads /proc/self/stat, /proc/self/statm, /proc/self/fd and /proc/stat's
 * btime. Returns 0, or -errno when one could not be read (no /proc).
 */
int procstat_read(struct procstat *ps);

#endif
