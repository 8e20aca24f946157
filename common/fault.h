/* Fault injection for tests, as CRIU's CRIU_FAULT: FERRY_FAULT names points
 * where ferry makes a failure happen on purpose, so that error paths that
 * depend on timing (a target dying mid-dump) are tested deterministically. */
#ifndef FERRY_COMMON_FAULT_H
#define FERRY_COMMON_FAULT_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Is the fault point `name` listed in FERRY_FAULT (comma-separated)? */
static inline bool fault_hit(const char *name)
{
	const char *v = getenv("FERRY_FAULT");
	size_t n = strlen(name);

	while (v && *v) {
		if (!strncmp(v, name, n) && (v[n] == ',' || !v[n]))
			return true;
		v = strchr(v, ',');
		if (v)
			v++;
	}
	return false;
}

#endif
