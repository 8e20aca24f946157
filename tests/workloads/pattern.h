/* Page contents the workloads write and the checkers expect: every 8-byte
 * word derives from its address and a seed, so any misplaced, stale or
 * foreign page is caught. */
#ifndef FERRY_TESTS_PATTERN_H
#define FERRY_TESTS_PATTERN_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t patt_word(uint64_t addr, uint64_t seed)
{
	uint64_t x = addr ^ (seed * 0x9e3779b97f4a7c15ull);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return x | 1; /* never zero, so a zero page never passes for data */
}

static inline void patt_fill(void *page, uint64_t addr, size_t len, uint64_t seed)
{
	uint64_t *w = page;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = patt_word(addr + i * 8, seed);
}

/* 0 if the page holds the pattern, else 1 + the index of the first bad word. */
static inline size_t patt_check(const void *page, uint64_t addr, size_t len, uint64_t seed)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != patt_word(addr + i * 8, seed))
			return i + 1;
	return 0;
}

#endif
