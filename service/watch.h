/* The kernel tells ferryd when a process exits, execs or forks (the proc
 * connector, NETLINK_CONNECTOR / CN_IDX_PROC): a job whose target exits is
 * ended at once, not left to find out; a tracker whose target exits or
 * execs is released. */
#ifndef FERRY_SERVICE_WATCH_H
#define FERRY_SERVICE_WATCH_H

#include <sys/types.h>

/* A socket to poll, or -errno (the connector needs CAP_NET_ADMIN). */
int watch_open(void);
/* The next event from sk: the process (its thread-group ID) that exited,
 * ran a new program, or forked (*child: the new process); 0 when none is
 * left to read now, -errno on an error. */
enum watch_what { WATCH_EXIT = 1, WATCH_EXEC, WATCH_FORK };
pid_t watch_next(int sk, enum watch_what *what, pid_t *child);
/* The target a job's words name (-t PID, --tree PID, -tPID) if the job
 * never ends it itself (pre-dump, dump -R); else 0. */
pid_t watch_target_of(char *const *argv, size_t argc);

#endif
