/* The process being dumped: held by pidfd from the first moment, its /proc
 * directory opened once, its threads seized and frozen with ptrace. */
#ifndef FERRY_PROC_TARGET_H
#define FERRY_PROC_TARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "common/err.h"
#include "common/util.h"

struct tthread {
	pid_t tid;
	bool stopped;           /* in a ptrace stop we caused */
	bool pending;           /* seized and interrupted, its stop not seen yet */
	int resend_sig;         /* a signal we caught while stopping it, re-sent at release */
	uint8_t resend_info[128];  /* its siginfo_t, so the dump records it as pending */
	struct user_regs_struct regs;  /* as frozen; restored after any injection */
};

struct target {
	pid_t pid;
	int pidfd;
	int procfd;             /* /proc/PID, opened once; every /proc read goes through it */
	struct tthread *th;
	size_t nr_th;
	bool frozen;
	uint64_t freeze_start_ns;
	uint64_t freeze_ns;     /* filled by target_release */
};

/* pidfd_open, then /proc/PID, then a check that the pidfd still names a live
 * process, so a recycled PID is never the one we read. */
int __must_check target_open(struct target *t, pid_t pid, struct ferr *err);
/* Is the process the pidfd names still running? */
bool target_alive(const struct target *t);
/* Seize and stop every thread, including threads born meanwhile. On error
 * every thread seized so far is released again. */
int __must_check target_freeze(struct target *t, struct ferr *err);
/* Seize and interrupt every thread listed now, without waiting for their
 * stops: for a process of a frozen cgroup, whose threads stop only once it
 * is thawed. target_freeze then waits for them (and takes any thread
 * born meanwhile); target_release of such threads needs the cgroup thawed
 * first. */
int __must_check target_seize(struct target *t, struct ferr *err);
/* Detach from every thread (they resume as they were). Safe to call twice. */
void target_release(struct target *t);
/* Release, close fds, free. Does nothing to a zeroed target or one closed
 * already, so `cleanup_val(target) struct target t = { 0 };` is safe on
 * every path. */
void target_close(struct target *t);
DEFINE_CLEANUP_VAL(target, target_close)

#endif
