/*
 * The model registry: the one place that lists every model. Adding a model
 * is a new file in src/models/ plus one line here; fibd --list-models, the
 * behaviour suite and make bench all pick it up from this table.
 */
#include <string.h>

#include "model.h"

extern const struct model model_single;
extern const struct model model_thread;
extern const struct model model_many;

const struct model *const model_registry[] = {
	&model_single,
	&model_thread,
	&model_many,
	NULL,
};

const struct model *model_find(const char *name)
{
	for (const struct model *const *m = model_registry; *m; m++)
		if (strcmp((*m)->name, name) == 0)
			return *m;
	return NULL;
}

const char *model_concurrency_name(enum model_concurrency c)
{
	switch (c) {
	case MODEL_SERIAL:
		return "serial";
	case MODEL_PER_PROCESS:
		return "per-process";
	case MODEL_PARALLEL:
	default:
		return "parallel";
	}
}
