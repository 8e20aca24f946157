/* Auto-converge: slowing a process that dirties memory faster than ferry
 * copies it, as QEMU throttles a guest's vCPUs. Two ways, chosen at start:
 *
 *   cgroup   the process's cgroup v2 cpu.max, when ferry may write it and the
 *            cgroup is not ferry's own (nor the root); the old value is
 *            written back at the end.
 *   signals  SIGSTOP/SIGCONT duty cycles (by pidfd) in a 20 ms period.
 *
 * The level is the share of time taken away (0 to 0.9).
 *
 * Either way a small child of ferry, the guard, undoes the throttle when
 * ferry goes, however it goes (SIGKILL included): it holds the read end of a
 * pipe only ferry writes to, and its end of file (ferry's exit closes the
 * write end) makes it send SIGCONT and write cpu.max back, then exit. With
 * signals the guard also runs the duty cycles, so the process is stopped only
 * while the guard lives to continue it. */
#ifndef FERRY_DUMP_THROTTLE_H
#define FERRY_DUMP_THROTTLE_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"

struct throttle {
	pid_t pid;
	int pidfd;
	double level;
	const char *method;      /* "cgroup cpu.max" or "SIGSTOP/SIGCONT"; NULL until started */
	char cpu_max[4200];      /* cgroup: the file */
	char saved[64];          /* cgroup: its old content */
	pid_t guard;             /* the guard child, or 0 */
	int ctl;                 /* its pipe's write end: a level per write, -1 if none */
};

void throttle_init(struct throttle *th, pid_t pid, int pidfd);
/* Set the level (0 stops throttling for now); starts on first use. */
int __must_check throttle_set(struct throttle *th, double level, struct ferr *err);
/* Stop throttling; the process runs freely (and is never left stopped). */
void throttle_fini(struct throttle *th);
DEFINE_CLEANUP_VAL(throttle, throttle_fini)

#endif
