#include "../t.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int t_passed, t_failed;

/* A child's counts travel back to the parent through shared memory. */
static int *t_shared;

void t_check(int ok, const char *file, int line, const char *expr,
	     const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		t_passed++;
		return;
	}
	t_failed++;
	fprintf(stderr, "FAIL %s:%d: %s", file, line, expr);
	/* fmt starts with a space that T_CHECK adds to keep it non-empty. */
	if (fmt[0] && fmt[1]) {
		fputc(':', stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
}

static void t_share(void)
{
	if (t_shared)
		return;
	t_shared = mmap(NULL, 2 * sizeof(int), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t_shared == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
}

unsigned t_slow(void)
{
	static unsigned slow;

	if (!slow) {
		const char *e = getenv("T_SLOW");
		long v = e ? strtol(e, NULL, 10) : 1;

		slow = v < 1 ? 1 : v > 100 ? 100 : (unsigned)v;
	}
	return slow;
}

void t_run(const char *name, void (*fn)(void), unsigned secs)
{
	int status;
	pid_t pid;

	t_share();
	t_shared[0] = t_shared[1] = 0;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		alarm(secs * t_slow());
		t_passed = t_failed = 0;
		fn();
		t_shared[0] = t_passed;
		t_shared[1] = t_failed;
		fflush(NULL);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		;
	t_passed += t_shared[0];
	t_failed += t_shared[1];
	if (t_shared[1])
		fprintf(stderr, "FAIL %s: %d check(s) failed above\n", name,
			t_shared[1]);
	if (WIFSIGNALED(status)) {
		t_failed++;
		fprintf(stderr, "FAIL %s: killed by signal %d%s\n", name,
			WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	} else if (WEXITSTATUS(status) != 0) {
		t_failed++;
		fprintf(stderr, "FAIL %s: exit status %d\n", name,
			WEXITSTATUS(status));
	}
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "ran %s\n", name);
}

int t_done(const char *suite)
{
	printf("%s: %d passed, %d failed\n", suite, t_passed, t_failed);
	fflush(stdout);
	return t_failed ? 1 : 0;
}
