/* The tree's terminal whose master is outside it (dump --orphan-pts,
 * criu's orphan_pts_master): a container started with a terminal holds
 * the slave of a pty of its own devpts, whose master the runtime gave to
 * its console socket's owner. The dump records which terminal it is and
 * its state (termios, window size); the restore makes a new pair with that
 * state and hands its master to the caller (restore/pty.c). */
#ifndef FERRY_DUMP_PTY_H
#define FERRY_DUMP_PTY_H

#include <sys/types.h>

#include "common/err.h"
#include "proc/tree.h"
#include "proto/images.pb-c.h"

struct fd_list;

struct dump_pty {
	Ferry__Pty *img;           /* NULL: the tree holds no such terminal */
	dev_t rdev;                /* its slave's device number */
};

/* In the frozen tree: the pty slave its processes hold (or have as their
 * controlling terminal), checked to be one a restore can make again: one
 * terminal only, no pty master held inside the tree, each session that has
 * it as its terminal led by a process of the tree. Its termios and window
 * size are read through a copy of one of its fds (pidfd_getfd). None found
 * is no error (out->img stays NULL). */
int __must_check dump_pty_find(const struct ptree *pt, struct dump_pty *out, struct ferr *err);
/* A tree with a mount namespace of its own (ns: its items): the terminal
 * must be of a devpts the restore mounts anew, where its new pair is made;
 * without one, the new pair is made wherever the restore's /dev/ptmx is. */
int __must_check dump_pty_check_mount(struct dump_pty *d, Ferry__TreeItem *const *ns, size_t n,
				      struct ferr *err);
/* Mark the fds of process p on the terminal (its slave, and /dev/tty where
 * it is p's controlling terminal): restored as the new slave. */
void dump_pty_mark(const struct dump_pty *d, const struct ptree_proc *p, struct fd_list *fl);
void dump_pty_free(struct dump_pty *d);

#endif
