/* File locks a frozen process holds, from the "lock:" lines of
 * /proc/PID/fdinfo/N: which lock, through which fd. */
#ifndef FERRY_PROC_LOCKS_H
#define FERRY_PROC_LOCKS_H

#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"
#include "proto/images.pb-c.h"

#define LOCK_KIND_POSIX 1
#define LOCK_KIND_FLOCK 2
#define LOCK_KIND_OFD 3

/* "fd 3 `/path`" of the first fd in fds (n) holding a lock, or NULL. */
const Ferry__Fd *locks_first(Ferry__Fd *const *fds, size_t n);

/* Every lock fdinfo (the text of /proc/PID/fdinfo/N) shows as held through
 * fd e, appended to e->locks. A lease or a delegation is -EOPNOTSUPP;
 * waiters ("->") are skipped: their process asks again when it runs. */
int __must_check locks_parse(const char *fdinfo, Ferry__Fd *e, pid_t pid, struct ferr *err);

#endif
