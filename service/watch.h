/* The kernel tells ferryd when a process exits (the proc connector,
 * NETLINK_CONNECTOR / CN_IDX_PROC): a job whose target exits is ended at
 * once, not left to find out. */
#ifndef FERRY_SERVICE_WATCH_H
#define FERRY_SERVICE_WATCH_H

#include <sys/types.h>

/* A socket to poll, or -errno (the connector needs CAP_NET_ADMIN). */
int watch_open(void);
/* The next exited process (its thread-group ID) from sk, 0 when none is
 * left to read now, -errno on an error. */
pid_t watch_next_exit(int sk);
/* The target a job's words name (-t PID, --tree PID, -tPID) if the job
 * never ends it itself (pre-dump, dump -R); else 0. */
pid_t watch_target_of(char *const *argv, size_t argc);

#endif
