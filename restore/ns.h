/* A tree's own namespaces, made again (restore side of dump/ns.h): the
 * flags its root is cloned with, and, inside that new root process before
 * anything of the process is made, the hostname, loopback, and the mount
 * tree built on the caller's --root and pivoted into; or joined instead,
 * an external network namespace and --join-ns's (restore/joinns.c). */
#ifndef FERRY_RESTORE_NS_H
#define FERRY_RESTORE_NS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/images.pb-c.h"
#include "restore/restore.h"
#include "restore/validate.h"

struct rst_ns {
	const Ferry__NsInfo *info;        /* NULL: the tree has none of its own */
	const Ferry__MountItem **mnt;     /* the root first, parents before children */
	size_t nr_mnt;
	const Ferry__TmpfsFile **tf;
	size_t nr_tf;
	const char **ext;                 /* per mount: the caller's path of an external one */
	const char *root;                 /* --root */
	char **points;                    /* every mount point but "/" (the view's) */
	struct rst_view view;             /* paths as the tree sees them, for the checks */
	/* An external network namespace (NsInfo.net_ext_key): the caller's fd
	 * for the key (an --inherit-fd), checked and copied to net_fd, which
	 * the root's stub joins instead of making a new one. net_key NULL:
	 * none, and net_fd means nothing. */
	const char *net_key;
	int net_fd;
	/* --join-ns (restore/joinns.c): each namespace to join, opened and
	 * checked; the root's stub setns()es into them first of all. */
	struct rst_ns_join {
		int flag;                 /* CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET */
		int fd;
		const char *path;         /* as given (for messages) */
	} join[3];
	size_t nr_join;
	uint64_t join_flags;              /* the flags of join[] */
};

/* The namespace items among a tree's, checked against what the caller gave
 * (--root for a mount namespace, a path for each external mount, an
 * --inherit-fd on a network namespace for an external one). */
int __must_check rst_ns_load(struct rst_ns *ns, Ferry__TreeItem *const *items, size_t n,
			     const struct rst_opts *o, struct ferr *err);
uint64_t rst_ns_clone_flags(const struct rst_ns *ns);
/* In the new root process: 0, or -1 with why written. The tree's terminal
 * (pty, or NULL), if it is of a devpts of the tree's, is made as soon as
 * that devpts is mounted (restore/pty.h), before a bind of its slave. */
struct rst_pty;
int rst_ns_build(const struct rst_ns *ns, const struct rst_pty *pty, char *why, size_t len);
/* Does rst_ns_build make the terminal (in the tree's own devpts)? */
bool rst_ns_makes_pty(const struct rst_ns *ns, const struct rst_pty *pty);
void rst_ns_free(struct rst_ns *ns);

/* restore/joinns.c (rst_join_flag in restore.h). o->join into ns->join: each path opened and checked to be a namespace of
 * its type, at most one per type, none for a network namespace dumped as
 * external; the dumped state that will not be applied logged. */
int __must_check rst_ns_load_joins(struct rst_ns *ns, const struct rst_opts *o,
				   struct ferr *err);
/* In the new root process: setns() into each, fds closed; 0 or -1 with
 * why written. */
int rst_ns_join(const struct rst_ns *ns, char *why, size_t len);


#endif
