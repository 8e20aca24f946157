/* Dirty trackers: which pages a process wrote since the last round.
 *
 *   uffd-wp     a userfaultfd in async write-protect mode, created inside the
 *               target by one injected syscall and then held only by ferry;
 *               each round PAGEMAP_SCAN returns the written ranges and
 *               write-protects them again in the same call.
 *   soft-dirty  clear_refs "4" and pagemap bit 55, where the kernel has it.
 *   hash        the XXH3 of every page, compared with the parent's hashes.img.
 *
 * The rule that keeps a chain correct: a round collects (and re-arms) the
 * dirty set before it reads any page, so a write during the copy is seen by
 * the next round. A VMA the tracker does not cover (mapped after arming, or
 * moved by mremap) counts as wholly dirty. */
#ifndef FERRY_DUMP_TRACK_H
#define FERRY_DUMP_TRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "proc/layout.h"
#include "proc/target.h"
#include "images/img.h"

struct range {
	uint64_t start, end;
};

/* Sorted, disjoint, merged ranges. */
struct range_list {
	struct range *r;
	size_t n, cap;
};

int range_add(struct range_list *l, uint64_t start, uint64_t end);
/* Sort and merge what was added out of order. */
void range_normalize(struct range_list *l);
void range_list_free(struct range_list *l);
/* range_add, with the error message set. */
int range_add_or_fail(struct range_list *d, uint64_t start, uint64_t end, struct ferr *err);
DEFINE_CLEANUP_VAL(range_list, range_list_free)

struct tracker;

struct tracker_ops {
	const char *name;
	/* Start tracking now: every page counts as written in this round. */
	int (*arm)(struct tracker *tr, struct target *t, const struct vma_list *vl,
		   struct ferr *err);
	/* Add to d what was written since arm or the last collect, VMA by VMA
	 * of vl, and re-arm. */
	int (*collect)(struct tracker *tr, struct target *t, const struct vma_list *vl,
		       struct range_list *d, struct ferr *err);
};

struct tracker {
	const struct tracker_ops *ops;
	bool armed;                 /* dirty sets since the parent are known */
	int uffd;                   /* uffd-wp: ferry's reference, or -1 */
	int pagemap_fd;             /* of the target, opened at arm */
	const struct img_image *parent;  /* the round's parent, set before collect */
	struct img_hashes prev;     /* hash: the parent's page hashes */
	uint64_t freeze_ns;         /* brief freezes the tracker needed this round */
};

extern const struct tracker_ops track_uffd_ops;
extern const struct tracker_ops track_soft_dirty_ops;
extern const struct tracker_ops track_hash_ops;
const struct tracker_ops *tracker_ops_by_name(const char *name);

/* As tracker_init: a tracker with no fds, for `cleanup_val(tracker)`. */
#define TRACKER_INIT(o) { .ops = (o), .uffd = -1, .pagemap_fd = -1 }

void tracker_init(struct tracker *tr, const struct tracker_ops *ops);
/* Safe on a tracker already finished. */
void tracker_fini(struct tracker *tr);
DEFINE_CLEANUP_VAL(tracker, tracker_fini)

/* Does the process hold a userfaultfd of its own? Then uffd-wp is not used. */
bool target_uses_uffd(struct target *t);

/* Which VMAs a tracker watches: those whose pages a dump copies. */
bool track_vma(const struct vma *v);

#endif
