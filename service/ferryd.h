/* What ferryd's files share (ferryd.c is the service's loop). */
#ifndef FERRY_SERVICE_FERRYD_H
#define FERRY_SERVICE_FERRYD_H

#include <sys/types.h>

/* One line to stderr (the journal under systemd), "ferryd: " first. */
void ferryd_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* socket.c: the listening socket, systemd's (socket activation) or one made
 * at path (a stale one replaced, a live one refused), or -1; the caller's
 * supplementary groups from its /proc status (at most max), or -1. */
int ferryd_listen(const char *path);
int ferryd_caller_groups(pid_t pid, gid_t *g, size_t max);
/* worker.c: the job's process, forked: the caller's uid, gid and groups
 * (caller: its pid), its cwd and stdio (fds: cwd, stdin, stdout, stderr),
 * its events on fd 3 (ev_wr) and trackers to ferryd on fd 4 (keep), then
 * ferry_bin with argv. */
void ferryd_worker(uid_t uid, gid_t gid, pid_t caller, const int *fds, int ev_wr, int keep,
		   const char *ferry_bin, char **argv, size_t argc) __attribute__((noreturn));

#endif
