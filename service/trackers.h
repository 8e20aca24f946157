/* The dirty trackers ferryd keeps between a target's rounds, in place of a
 * keeper process per target (dump/keeper.h): a job's ferry gives each to
 * ferryd over its job's socket; the next round, from any job or from the
 * command line, takes it where it would take it from a keeper. One is
 * released when its target exits or execs, when nobody took it for the
 * timeout, or when ferryd stops. */
#ifndef FERRY_SERVICE_TRACKERS_H
#define FERRY_SERVICE_TRACKERS_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

/* Log through ferryd's own line writer; idle ones released after timeout_ms. */
void trackers_init(void (*say)(const char *fmt, ...), uint64_t timeout_ms);
/* A job's socket is readable: the tracker it gives (its caller's, uid). */
void trackers_take_from(int sk, uid_t uid, pid_t job_pid);
/* The fds to poll: at most max, laid in p; how many. */
size_t trackers_pollfds(struct pollfd *p, size_t max);
/* After poll: answer askers, release those whose target exited. */
void trackers_serve(const struct pollfd *p, size_t n);
/* The proc connector saw pid exec (its old memory, and tracking, gone). */
void trackers_exec(pid_t pid);
/* Release those idle for longer than the timeout; ms until the next is due
 * (or UINT64_MAX). */
uint64_t trackers_expire(uint64_t now_ms);
/* ferryd stops: every one released. */
void trackers_release_all(void);
size_t trackers_count(void);
/* Those of uid (0: all), at most max: their target, owner and age. */
struct tracker_info {
	pid_t pid;
	uid_t owner;
	uint64_t age_ms;
};
size_t trackers_list(uid_t uid, struct tracker_info *out, size_t max, uint64_t now_ms);

#endif
