/* A process and all its descendants, held and frozen together. The tree is
 * found from the inside out: a process is frozen first and its children
 * listed only then, when it can no longer fork, so a child forked at any
 * moment before is found; a child that exits meanwhile is a zombie its
 * frozen parent cannot reap, and is recorded as one. */
#ifndef FERRY_PROC_TREE_H
#define FERRY_PROC_TREE_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"
#include "proc/target.h"

struct ptree_proc {
	struct target t;        /* not opened for a zombie */
	pid_t pid, ppid, pgid, sid;
	bool zombie;
	int exit_status;        /* a zombie's wait status */
	char comm[16];          /* a zombie's name */
	dev_t tty;              /* its controlling terminal, or 0 */
	bool tty_fg;            /* its group is the terminal's foreground group */
	pid_t files_with;       /* the first process of the tree sharing its fd table, or 0 */
	pid_t fs_with;          /* the same for cwd/root/umask */
	/* Its IDs in its own (innermost) PID namespace, and that namespace's
	 * inode (0 for a zombie, which has none any more). */
	pid_t ns_pid, ns_pgid, ns_sid;
	ino_t pidns;
};

struct ptree {
	struct ptree_proc *p;   /* [0] is the root; parents before children */
	size_t n;
};

/* Open the root only (for a check before anything is frozen). */
int __must_check ptree_open(struct ptree *pt, pid_t root, struct ferr *err);
/* The live descendants of the root as they are now, unfrozen: for checks
 * that should refuse before the freeze. pids gets malloc'ed. */
int __must_check ptree_scan(pid_t root, pid_t **pids, size_t *n, struct ferr *err);
/* Freeze the root, then (whole) each child found, until the tree is
 * whole. On error everything frozen so far is let go. */
int __must_check ptree_freeze(struct ptree *pt, bool whole, struct ferr *err);
/* The same through the freezer cg holds (proc/cgfreeze.h): the cgroup
 * frozen, its processes checked to be exactly the tree's (a process in one
 * and not the other is refused by name), each seized and interrupted, the
 * cgroup thawed, and then ptree_freeze waits for their stops and takes
 * anything new. On every return the cgroup is thawed; on error everything
 * is let go. */
struct cgfreeze;
int __must_check ptree_freeze_cgroup(struct ptree *pt, struct cgfreeze *cg, bool whole,
				     struct ferr *err);
/* The process's start time (/proc/PID/stat field 22, clock ticks since
 * boot) through its /proc directory: with the PID, what tells it from a
 * later process given the same PID. -1 if it cannot be read. */
int ptree_start_time(int procfd, uint64_t *out);
/* Process pid's PID in its own (innermost) PID namespace (NSpid's last
 * field), or 0 if it cannot be read. */
pid_t ptree_ns_pid(pid_t pid);
void ptree_release(struct ptree *pt);   /* every process resumes */
/* SIGKILL every live process, by pidfd: 0, or the first failure (-errno)
 * other than a process gone already. */
int ptree_kill(struct ptree *pt);
void ptree_close(struct ptree *pt);     /* release, close, free; fine on a zeroed tree */
DEFINE_CLEANUP_VAL(ptree, ptree_close)

#endif
