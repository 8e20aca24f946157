/* The backends of each step of the data flow (layout source, page selector,
 * dirty tracker, page reader, sink), what each needs from the kernel, and
 * which one `auto` picks. Later steps add their operations to these tables. */
#ifndef FERRY_PROC_BACKEND_H
#define FERRY_PROC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "common/kerndat.h"

#define BACKEND_MAX_NEEDS 4

struct backend_desc {
	const char *name;                      /* as given on the command line */
	const char *what;
	int nr_needs;
	enum kd_feature needs[BACKEND_MAX_NEEDS];
};

struct backend_family {
	const char *name;                      /* "layout", "pages", ... */
	const char *option;                    /* "--layout", ... */
	const struct backend_desc *list;       /* in order of preference */
	size_t n;
};

extern const struct backend_family backend_families[];
extern const size_t backend_nr_families;

bool backend_usable(const struct backend_desc *b, const struct kerndat *kd);
/* The first usable backend, or NULL. */
const struct backend_desc *backend_auto(const struct backend_family *f, const struct kerndat *kd);
const struct backend_family *backend_family(const char *name);
/* Resolve a user's choice ("auto" or a name): NULL with a message in err if
 * unknown or unusable here. */
const struct backend_desc *backend_choose(const struct backend_family *f, const char *choice,
					  const struct kerndat *kd, char *err, size_t errlen);

#endif
