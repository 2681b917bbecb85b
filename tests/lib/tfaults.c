#include "tfaults.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../t.h"

#define TFAULTS_MAX_MODELS 32

int tfaults_main(const char *suite, const struct tsrv_model **cur,
		 const struct tfaults_case *cases, size_t n)
{
	static struct tsrv_model models[TFAULTS_MAX_MODELS];
	int nmodels = tsrv_list_models(models, TFAULTS_MAX_MODELS);
	const char *only = getenv("FIBD_FAULTS");

	signal(SIGPIPE, SIG_IGN);
	T_CHECK(nmodels > 0, "no models listed");
	for (int i = 0; i < nmodels; i++) {
		*cur = &models[i];
		fprintf(stderr, "model %s (%s)\n", models[i].name,
			models[i].concurrency);
		for (size_t k = 0; k < n; k++)
			if (!only || strstr(cases[k].name, only))
				tsrv_case(&models[i], cases[k].name,
					  cases[k].fn, cases[k].secs);
	}
	return t_done(suite);
}

void tfaults_serves_then_stops(const struct tsrv_model *m, struct tsrv *s)
{
	char buf[64];
	int fd = tsrv_connect(s, 0);

	T_CHECK(fd >= 0, "%s: cannot connect after the fault", m->name);
	T_CHECK(t_ask(fd, "20\n", buf, sizeof(buf)) &&
		    strcmp(buf, "6765\n") == 0,
		"%s: wrong answer after the fault: '%s'", m->name, buf);
	close(fd);
	T_CHECK(tsrv_stop(s, 30) == 0, "%s: bad exit after the fault", m->name);
}
