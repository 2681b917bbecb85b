#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Reads path whole into buf (NUL-terminated). Returns 0 or -errno. */
static int procstat_slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n ? 0 : -EIO;
}

/* The boot time, seconds since the epoch: /proc/stat's btime line. */
static int procstat_btime(unsigned long long *btime)
{
	char line[256];
	FILE *f = fopen("/proc/stat", "re");
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (err && fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", btime) == 1)
			err = 0;
	fclose(f);
	return err;
}

/*
 * /proc/self/stat: fields 14 and 15 (utime, stime) and 22 (starttime) are
 * clock ticks, 23 (vsize) bytes. Field 2, the name, may hold spaces and
 * parentheses: the fields after it start after its last ')'.
 */
static int procstat_stat(struct procstat *ps)
{
	unsigned long long utime, stime, start, vsize, btime;
	long tck = sysconf(_SC_CLK_TCK);
	char buf[1024], *p;
	int err = procstat_slurp("/proc/self/stat", buf, sizeof(buf));

	if (err)
		return err;
	p = strrchr(buf, ')');
	if (!p || tck <= 0 ||
	    sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
		   " %*d %*d %*d %*d %*d %*d %llu %llu",
		   &utime, &stime, &start, &vsize) != 4)
		return -EPROTO;
	err = procstat_btime(&btime);
	if (err)
		return err;
	ps->cpu_seconds = (double)(utime + stime) / (double)tck;
	ps->start_time = (double)btime + (double)start / (double)tck;
	ps->virtual_bytes = vsize;
	return 0;
}

/* /proc/self/statm: size and resident, in pages. */
static int procstat_statm(struct procstat *ps)
{
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	char buf[256];
	int err = procstat_slurp("/proc/self/statm", buf, sizeof(buf));

	if (err)
		return err;
	if (page <= 0 || sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return -EPROTO;
	ps->resident_bytes = resident * (unsigned long long)page;
	return 0;
}

/* The entries of /proc/self/fd, less the one opendir() holds. */
static int procstat_fds(struct procstat *ps)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	struct rlimit rl;
	uint64_t n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	ps->open_fds = n ? n - 1 : 0;
	ps->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 0;
	return 0;
}

int procstat_read(struct procstat *ps)
{
	int err;

	memset(ps, 0, sizeof(*ps));
	err = procstat_stat(ps);
	if (!err)
		err = procstat_statm(ps);
	if (!err)
		err = procstat_fds(ps);
	return err;
}
