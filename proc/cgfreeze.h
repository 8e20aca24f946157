/* A container's cgroup freezer (`--freeze-cgroup`, CRIU's freeze_cgroup):
 * cgroup v1 (freezer.state) or v2 (cgroup.freeze), told apart by the files
 * the directory has. It holds every process of the cgroup still for the
 * moment ferry takes their list and seizes them (proc/tree.c,
 * ptree_freeze_cgroup); ptrace holds them after that. While it is frozen, a
 * small guard process thaws it again if ferry dies, so that a SIGKILLed
 * ferry can never leave a container frozen. */
#ifndef FERRY_PROC_CGFREEZE_H
#define FERRY_PROC_CGFREEZE_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"

#define CGF_TIMEOUT_MS 10000   /* to reach FROZEN (CRIU's default timeout) */

struct cgfreeze {
	bool opened;
	bool v2;                /* cgroup.freeze, else freezer.state */
	bool frozen;            /* by ferry, not thawed yet */
	int dirfd;              /* the cgroup's directory */
	int ctlfd;              /* freezer.state or cgroup.freeze, read-write */
	pid_t guard;            /* the thaw guard while frozen, or 0 */
	int guard_fd;           /* the write end of its pipe */
	uint64_t frozen_at;     /* now_ns() of the freeze */
	char path[512];
};

/* Open PATH as a freezer: a directory of a cgroup filesystem with
 * freezer.state (v1) or cgroup.freeze (v2, not the root), thawed now (a
 * frozen one, a paused container, is refused: its owner froze it). Nothing
 * is written. */
int __must_check cgf_open(struct cgfreeze *cg, const char *path, struct ferr *err);
/* Freeze and wait until the cgroup says it is (v1: FROZEN, retrying a
 * FREEZING one; v2: `frozen 1` in cgroup.events), CGF_TIMEOUT_MS at most;
 * refused if ferry itself is inside. On error it is thawed again. */
int __must_check cgf_freeze(struct cgfreeze *cg, struct ferr *err);
/* Thaw what cgf_freeze froze, and let the guard go. */
int cgf_thaw(struct cgfreeze *cg, struct ferr *err);
/* The processes (thread-group IDs) of the cgroup and of every cgroup below
 * it, sorted, each once. pids gets malloc'ed. */
int __must_check cgf_procs(const struct cgfreeze *cg, pid_t **pids, size_t *n,
			   struct ferr *err);
/* Thaw if still frozen, close. Fine on a zeroed struct. */
void cgf_close(struct cgfreeze *cg);
DEFINE_CLEANUP_VAL(cgfreeze, cgf_close)

/* For `ferry check`: which freezers this host has (a v1 freezer hierarchy
 * mounted, cgroup2 whose cgroups have cgroup.freeze), as text into what. */
bool cgf_probe(char *what, size_t len);

#endif
