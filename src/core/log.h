/*
 * log - one-line diagnostics on stderr, prefixed with the program's name.
 *
 * Lines are written with a single write(2), so lines from different threads
 * and processes never interleave mid-line.
 */
#ifndef FIBD_CORE_LOG_H
#define FIBD_CORE_LOG_H

/* Sets the prefix ("fibd", "fibload", ...). Default "fibd". */
void log_set_prog(const char *prog);

/* "<prog>: <message>\n" on stderr. */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* log_msg() plus ": <strerror(-err)>". err is a negative errno. */
void log_err(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
