/* Which pages of a VMA hold data worth dumping, read by one of two
 * backends: the PAGEMAP_SCAN ioctl or /proc/PID/pagemap entries. Both yield
 * runs in ascending order, in bounded batches. */
#ifndef FERRY_PROC_PAGES_H
#define FERRY_PROC_PAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "proc/layout.h"

#define PAGES_BATCH 4096   /* runs per batch */

struct page_run {
	uint64_t start, end;
	bool zero;          /* maps the zero page: no data to read */
	bool parent;        /* unchanged since the parent dump: recorded as in-parent */
};

enum pages_policy {
	PAGES_NONE,         /* kernel-provided or shared-file: nothing to dump */
	PAGES_PRESENT,      /* every present or swapped page */
	PAGES_ANON_ONLY,    /* private file mapping: only its copy-on-write pages */
};

struct pages_ctx {
	int pagemap_fd;     /* /proc/PID/pagemap of the target */
	uint64_t zero_pfn;  /* PFN of the zero page (pagemap backend) */
	int page_size;      /* 0 while not open: zeroed or closed */
	void *buf;          /* backend scratch */
};

struct pages_ops {
	const char *name;
	/* Fill out->r with up to PAGES_BATCH runs of v from *pos on; advance
	 * *pos (to v->end when the VMA is done). */
	int (*next)(struct pages_ctx *pc, const struct vma *v, enum pages_policy pol, uint64_t *pos,
		    struct page_run *out, size_t *n, struct ferr *err);
};

extern const struct pages_ops pages_scan_ops;
extern const struct pages_ops pages_pagemap_ops;
const struct pages_ops *pages_ops_by_name(const char *name);

enum pages_policy pages_policy_of(const struct vma *v);
int pages_ctx_open(struct pages_ctx *pc, int procfd, struct ferr *err);
/* Does nothing to a zeroed context or one closed already. */
void pages_ctx_close(struct pages_ctx *pc);
DEFINE_CLEANUP_VAL(pages_ctx, pages_ctx_close)

#endif
