/* Fan work out over the CPUs: restore's page writers and the image
 * verifier each split their work into contiguous shares and run one per
 * thread. */
#ifndef FERRY_COMMON_PAR_H
#define FERRY_COMMON_PAR_H

#include <stddef.h>
#include <stdint.h>

#define PAR_MAX 16

/* How many workers for `bytes` of work: the CPUs online, at most max
 * (<= PAR_MAX), and just one for less than min_bytes. */
size_t par_workers(size_t max, uint64_t bytes, uint64_t min_bytes);

/* Run fn on each of n work items laid out stride bytes apart from items:
 * the first on the caller, the others on threads of their own (on the
 * caller too if a thread cannot start). Returns when all are done. */
void par_run(void *items, size_t n, size_t stride, void *(*fn)(void *));

#endif
