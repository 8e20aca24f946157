/* Process-wide and per-thread state of a frozen target, as image entries. */
#ifndef FERRY_PROC_STATE_H
#define FERRY_PROC_STATE_H

#include "proc/pstate.h"
#include "proc/target.h"
#include "proto/images.pb-c.h"

struct dump_state {
	Ferry__Process *proc;
	Ferry__Thread **threads;   /* in the order of target.th */
	size_t nr_threads;
	struct madv_list madv;     /* smaps VmFlags by VMA start (proc/pstate.c) */
};

/* Collect everything; the target must be frozen. Injected calls leave the
 * target as it was (the scratch page is gone before this returns). On error
 * *st is left empty. */
int __must_check state_collect(struct target *t, struct dump_state *st, struct ferr *err);
/* Free and zero; harmless on a zeroed state or one freed already. */
void state_free(struct dump_state *st);
DEFINE_CLEANUP_VAL(dump_state, state_free)

/* Identity (dev, inode, size, mtime, mode) of the file at dirfd/path, or NULL. */
Ferry__FileId *state_file_id(int dirfd, const char *path);

#endif
