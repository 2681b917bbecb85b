/*
 * tfibload - the load generator under test: BUILD/fibload run as a
 * subprocess, with what it prints captured.
 */
#ifndef FIBD_TESTS_TFIBLOAD_H
#define FIBD_TESTS_TFIBLOAD_H

#include <stddef.h>

/*
 * Runs BUILD/fibload ARGS... (args NULL-terminated, 39 at most): its
 * stdout into out[0..out_cap), its stderr into err[0..err_cap), both
 * NUL-terminated, through temporary files so that neither can fill up;
 * $T_VERBOSE echoes both. Returns the exit status, or -1 when it died by a
 * signal.
 */
int tfibload_run(const char *const *args, char *out, size_t out_cap, char *err,
		 size_t err_cap);

/* Writes text to a new temporary file; its name goes into path[0..64). */
void tfibload_temp(char *path, const char *text);

#endif
