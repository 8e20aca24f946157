/* What ferry cannot dump yet, found before anything is frozen: a process
 * (or a descendant) in namespaces other than ferry's own. */
#ifndef FERRY_CRIU_NS_H
#define FERRY_CRIU_NS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"

/* An error naming each namespace (pid, mnt, uts, ipc, net, cgroup, user,
 * time) in which pid or a descendant (as ptree_scan() finds them now,
 * unfrozen) differs from ferry, compared by device and inode of
 * /proc/PID/ns/NAME; 0 if none does. */
int __must_check swrk_ns_refuse(pid_t pid, struct ferr *err);

#endif
