/*
 * The model registry: the one place that lists every model. Adding a model
 * is a new file in src/models/ plus one line here; fibd --list-models, the
 * behaviour suite and make bench all pick it up from this table.
 */
#include <string.h>

#include "../core/log.h"
#include "model.h"

extern const struct model model_single;
extern const struct model model_thread;
extern const struct model model_procpool;
extern const struct model model_async;
extern const struct model model_many;
extern const struct model model_isolate;
extern const struct model model_coro;
extern const struct model model_reactor;
extern const struct model model_uring;

/* One model per line, the way --list-models shows them. */
/* clang-format off */
const struct model *const model_registry[] = {
	&model_single,
	&model_thread,
	&model_procpool,
	&model_async,
	&model_many,
	&model_isolate,
	&model_coro,
	&model_reactor,
	&model_uring,
	NULL,
};
/* clang-format on */

const struct model *model_find(const char *name)
{
	for (const struct model *const *m = model_registry; *m; m++)
		if (strcmp((*m)->name, name) == 0)
			return *m;
	return NULL;
}

int model_child_main(int argc, char **argv)
{
	const struct model *m = argc > 0 ? model_find(argv[0]) : NULL;

	if (!m || !m->child) {
		log_msg("%s: no such helper process", MODEL_CHILD_ARG);
		return 2;
	}
	return m->child(argc, argv);
}

const char *model_concurrency_name(enum model_concurrency c)
{
	switch (c) {
	case MODEL_SERIAL:
		return "serial";
	case MODEL_SHARDED:
		return "sharded";
	case MODEL_PARALLEL:
	default:
		return "parallel";
	}
}
