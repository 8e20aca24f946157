/* Splitting a round's populated page runs into copied and in-parent: a page
 * the tracker saw unwritten since the parent's round, and that the parent
 * holds (a run of any kind in its pagemap), is recorded as in-parent; the
 * rest is copied. Zero runs pass as they are. The runs go out in batches,
 * adjacent ones of the same kind merged, to an emit function (the page
 * reader, in a dump). */
#ifndef FERRY_DUMP_SPLIT_H
#define FERRY_DUMP_SPLIT_H

#include "common/err.h"
#include "dump/track.h"
#include "images/img.h"
#include "proc/pages.h"

#define SPLIT_BATCH 256

typedef int (*split_emit_fn)(void *arg, const struct page_run *runs, size_t n, struct ferr *err);

/* Both cursors only move forward: runs must come in address order. */
struct split {
	const struct range_list *dirty;   /* NULL: nothing known, copy everything */
	size_t di;
	const struct img_run *held;       /* the parent's runs, in address order */
	size_t nr_held, hi;
	uint64_t page_size;               /* of the parent's runs */
	struct page_run out[SPLIT_BATCH];
	size_t n;
	split_emit_fn emit;
	void *arg;
};

/* dirty and parent both, or neither (then every run is copied). */
void split_init(struct split *s, const struct range_list *dirty, const struct img_image *parent,
		split_emit_fn emit, void *arg);
/* Split one populated run (in address order after the last). */
int __must_check split_run(struct split *s, const struct page_run *r, struct ferr *err);
/* Emit what is pending: before the emit function's context changes (the
 * next VMA) and at the end. */
int __must_check split_flush(struct split *s, struct ferr *err);

#endif
