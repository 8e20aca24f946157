/* The terminal of a tree dumped with --orphan-pts (dump/pty.h), made
 * again: a new pty pair in the container's devpts (at the dumped index, so
 * that /dev/pts/N and a bind of it, runc's /dev/console, are there again)
 * or, for a tree without a mount namespace of its own, wherever the
 * restoring side's /dev/ptmx makes one. The root's stub makes it (inside
 * the new mount namespace) and holds both ends at fd numbers ferry chose,
 * which every stub inherits; each fd the tree had on the terminal becomes
 * the new slave, each session leader that had it makes it its controlling
 * terminal again and gives the foreground back to its group; ferry takes
 * the master from the root's stub and hands it to its caller (criu's
 * orphan-pts-master callback, or restore --console-socket). */
#ifndef FERRY_RESTORE_PTY_H
#define FERRY_RESTORE_PTY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "proto/images.pb-c.h"

struct rst_pty {
	const Ferry__Pty *img;     /* NULL: the tree has no such terminal */
	int master_at, slave_at;   /* where the stubs hold its ends (spawn.c) */
	int master;                /* ferry's copy of the master once taken, or -1 */
};

/* In the root's stub: a new pair from the ptmx `name` at dirfd, at the
 * dumped index if same_index (opening more until that one comes), unlocked,
 * its termios and window size as dumped, its ends moved to master_at and
 * slave_at. 0, or -1 with why written. */
int rst_pty_make(const struct rst_pty *p, int dirfd, const char *name, bool same_index,
		 char *why, size_t len);
/* In a stub, process self of the tree tp[0..n): if it leads a session that
 * had the terminal, make it the session's controlling terminal and give the
 * foreground to the group that had it. 0, or -1 with why written. */
int rst_pty_ctty(const struct rst_pty *p, const Ferry__TreeProc *self,
		 const Ferry__TreeProc *const *tp, size_t n, char *why, size_t len);
/* In ferry, once the root's stub has made it: its master, taken from the
 * stub (pidfd_getfd) into p->master. */
int __must_check rst_pty_take(struct rst_pty *p, pid_t root, struct ferr *err);

#endif
