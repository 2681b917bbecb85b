#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_prog = "fibd";

void log_set_prog(const char *prog)
{
	log_prog = prog;
}

static void log_vwrite(int err, const char *fmt, va_list ap)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s: ", log_prog);

	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n > (int)sizeof(line) - 64)
		n = (int)sizeof(line) - 64;
	if (err)
		n += snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
			      strerror(-err));
	line[n++] = '\n';
	/* One write: lines from threads and children never interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(0, fmt, ap);
	va_end(ap);
}

void log_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(err, fmt, ap);
	va_end(ap);
}
