/*
 * Replays every file in fuzz/corpus and fuzz/regressions through the fuzz
 * harness's checks (tests/lib/proto_check.c). A crash the fuzzer once found
 * is kept in fuzz/regressions and so can never come back unnoticed.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/proto_check.h"
#include "../t.h"

static int replay_dir(const char *dir)
{
	char path[512];
	static uint8_t data[1 << 21];
	struct dirent *e;
	int files = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		FILE *f;
		size_t n;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		n = fread(data, 1, sizeof(data), f);
		fclose(f);
		T_CHECK(proto_check_input(data, n) == 0, "%s", path);
		files++;
	}
	closedir(d);
	return files;
}

static void test_corpus(void)
{
	T_CHECK(replay_dir("fuzz/corpus") > 0, "no seed corpus found");
	replay_dir("fuzz/regressions");
}

int main(void)
{
	T_RUN(test_corpus, 120);
	return t_done("test_fuzz_corpus");
}
