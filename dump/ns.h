/* A tree's own namespaces beside its PID namespace (a container's): which
 * the root has, checked to be ones a restore can create again, and their
 * state collected as tree items while the tree is frozen: the hostname
 * (UTS), an IPC namespace checked empty, a network namespace with loopback
 * only (or asked empty, as runtimes do), and the mount tree: each mount
 * classified (the root, mounted anew, a bind of a part of another, or
 * external: named by the caller), with the contents of every tmpfs. */
#ifndef FERRY_DUMP_NS_H
#define FERRY_DUMP_NS_H

#include "common/err.h"
#include "proc/tree.h"
#include "proto/images.pb-c.h"

/* A mount the caller names (criu's --ext-mount-map MNT:KEY): the mount at
 * point (in the container's root) is not dumped, only recorded as key, and
 * the restore binds whatever its caller names key there. */
struct dump_ext_mnt {
	const char *point, *key;
};

struct dump_ns_opts {
	const struct dump_ext_mnt *ext;
	size_t nr_ext;
	bool empty_net;            /* criu's empty_ns CLONE_NEWNET: restored empty */
	/* criu's --external net[INO]:KEY (dump/extns.c): the tree's network
	 * namespace is the caller's, inode net_ino; not dumped, recorded as
	 * net_key, and joined at restore through the caller's fd for net_key
	 * (restore --inherit-fd fd[N]:KEY). NULL: none. */
	const char *net_key;
	uint64_t net_ino;
};

struct dump_ns {
	Ferry__TreeItem **items;   /* NsInfo, MountItems, TmpfsFiles; none if the tree
				      has no namespaces of its own */
	size_t n;
};

#define DUMP_TMPFS_MAX (256ull << 20)  /* bytes of tmpfs contents a dump takes */

int __must_check dump_ns_collect(const struct ptree *pt, const struct dump_ns_opts *o,
				 struct dump_ns *ns, struct ferr *err);
void dump_ns_free(struct dump_ns *ns);

/* One criu --external entry into o: net[INO]:KEY is taken (net_key points
 * into spec), anything else refused with an error naming it. */
int __must_check dump_ns_external(struct dump_ns_opts *o, const char *spec, struct ferr *err);
/* With o->net_key: pid (not frozen yet) is in the network namespace of
 * inode o->net_ino, else an error naming both inodes. */
int __must_check dump_ns_ext_net_pid(pid_t pid, const struct dump_ns_opts *o, struct ferr *err);
/* The same for every process of the frozen tree pt. */
int __must_check dump_ns_ext_net_check(const struct ptree *pt, const struct dump_ns_opts *o,
				       struct ferr *err);
/* With o->net_key: the key recorded in ns's NsInfo (dump_ns_collect's, or
 * one of its own, CLONE_NEWNET alone, for a tree without other namespaces). */
int __must_check dump_ns_ext_net_item(const struct dump_ns_opts *o, struct dump_ns *ns,
				      struct ferr *err);

#endif
