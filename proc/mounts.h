/* A process's mount table, from /proc/PID/mountinfo: each mount's ID,
 * parent, device, the path inside its filesystem it shows, where it is,
 * its own flags (MS_*) and its superblock's type, source and options. */
#ifndef FERRY_PROC_MOUNTS_H
#define FERRY_PROC_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

struct mnt_info {
	uint32_t id, parent;
	unsigned major, minor;
	char *root;             /* inside the filesystem: "/" for all of it */
	char *point;            /* where, as the reading process's root sees it */
	unsigned long flags;    /* MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, atime */
	char *fstype;
	char *source;
	char *super;            /* the superblock's options, "rw"/"ro" first */
	bool propagates;        /* shared or slave: peers that a restore does not keep */
};

struct mnt_table {
	struct mnt_info *m;
	size_t n;
};

/* Parse one line of mountinfo into m (strings malloc'ed, octal escapes
 * undone). -EINVAL for a line that is not one. */
int mnt_parse_line(const char *line, struct mnt_info *m);
/* Every mount of procfd's mountinfo, in the file's order. */
int __must_check mnt_table_read(int procfd, struct mnt_table *t, struct ferr *err);
void mnt_table_free(struct mnt_table *t);
void mnt_info_free(struct mnt_info *m);
DEFINE_CLEANUP_VAL(mnt_table, mnt_table_free)
/* The mount with this id, or NULL. */
const struct mnt_info *mnt_by_id(const struct mnt_table *t, uint32_t id);
/* The filesystem types a restore mounts anew (their whole filesystem):
 * proc, sysfs, tmpfs, devpts, mqueue, cgroup, cgroup2. */
bool mnt_fresh_type(const char *fstype);
/* Is path at or below dir ("/" is above everything)? */
bool mnt_path_under(const char *path, const char *dir);

#endif
