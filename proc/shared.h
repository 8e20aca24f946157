/* Kernel objects a frozen tree holds through its fds and mappings, each
 * recorded once however many fds or processes hold it: pipes with the data
 * queued in them, Unix sockets (type, state, peer, name, queued messages and
 * their credentials), and MAP_SHARED anonymous memory. They become the
 * objects of tree.img; each Fd and Vma names its object by inode. */
#ifndef FERRY_PROC_SHARED_H
#define FERRY_PROC_SHARED_H

#include <stdbool.h>

#include "common/err.h"
#include "common/util.h"
#include "proc/fds.h"
#include "proc/target.h"
#include "proto/images.pb-c.h"

struct unix_diag_info;

struct objs {
	Ferry__TreeItem **items;      /* pipes, sockets and shm objects, in order found */
	size_t n;
	struct unix_diag_info *ux;    /* every Unix socket of this netns, by inode */
	size_t nux;
	bool ux_loaded;
	bool ux_probed;               /* ux_diag holds the unix_diag probe's answer */
	bool ux_diag;
};

/* Record the objects behind t's pipe and socket fds (setting Fd.obj_id), with
 * their queued data; t is frozen. An fd ferry cannot take (a socket of
 * another family, queued fds) stays unsupported and is named by
 * fds_describe_unsupported. */
int __must_check objs_note_fds(struct objs *o, struct target *t, struct fd_list *fl,
			       struct ferr *err);
/* Before the freeze: does fd f of t hold a socket ferry can take (a Unix
 * socket of this netns)? A Unix socket on a kernel without unix_diag (the
 * probe KD_UNIX_DIAG, which $FERRY_HIDE_FEATURES can hide) is refused
 * here, naming the fd and the missing module. */
int __must_check objs_sock_takeable(struct objs *o, struct target *t, const Ferry__Fd *f,
				    bool *yes, struct ferr *err);
/* A MAP_SHARED anonymous VMA: its shmem object (id by inode, size grown
 * to cover it). */
int __must_check objs_note_shm(struct objs *o, struct target *t, uint64_t start, uint64_t end,
			       uint64_t pgoff, uint64_t *id, struct ferr *err);
/* Once every process is noted: every socket's peer must be in the tree. */
int __must_check objs_check_peers(const struct objs *o, struct ferr *err);
void objs_free(struct objs *o);
DEFINE_CLEANUP_VAL(objs, objs_free)

#endif
