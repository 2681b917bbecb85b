#include "tfibload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../t.h"
#include "tsrv.h"

/* Reads a whole temporary file into buf (NUL-terminated), removes it. */
static void slurp(int fd, const char *path, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
}

int tfibload_run(const char *const *args, char *out, size_t out_cap, char *err,
		 size_t err_cap)
{
	char path[256], opath[] = "/tmp/fibload-out-XXXXXX",
			epath[] = "/tmp/fibload-err-XXXXXX";
	const char *argv[40];
	int ofd = mkstemp(opath), efd = mkstemp(epath), status, n = 0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/fibload", tsrv_build_dir());
	argv[n++] = path;
	while (*args && n < 39)
		argv[n++] = *args++;
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(ofd, STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	slurp(ofd, opath, out, out_cap);
	slurp(efd, epath, err, err_cap);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "--- stdout:\n%s--- stderr:\n%s", out, err);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void tfibload_temp(char *path, const char *text)
{
	int fd;

	strcpy(path, "/tmp/fibload-hist-XXXXXX");
	fd = mkstemp(path);
	T_CHECK(fd >= 0 &&
		write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}
