/* Thread fan-out with a fallback to the caller: never fails. */
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "common/par.h"

size_t par_workers(size_t max, uint64_t bytes, uint64_t min_bytes)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (max > PAR_MAX)
		max = PAR_MAX;
	if (bytes < min_bytes || cpus < 1)
		return 1;
	return (size_t)cpus < max ? (size_t)cpus : max;
}

void par_run(void *items, size_t n, size_t stride, void *(*fn)(void *))
{
	pthread_t th[PAR_MAX];
	bool started[PAR_MAX] = { false };

	for (size_t t = 1; t < n && t < PAR_MAX; t++) {
		void *item = (char *)items + t * stride;

		started[t] = pthread_create(&th[t], NULL, fn, item) == 0;
		if (!started[t])
			fn(item);
	}
	if (n)
		fn(items);
	for (size_t t = 1; t < n && t < PAR_MAX; t++)
		if (started[t])
			pthread_join(th[t], NULL);
}
