/* Remote syscall injection over ptrace, the way CRIU's compel does it but
 * without writing code into the target: a stopped thread is pointed at an
 * existing `syscall` instruction, run to syscall-exit with PTRACE_SYSCALL,
 * and given its registers back. The rest of ferry never touches registers. */
#ifndef FERRY_PROC_INJECT_H
#define FERRY_PROC_INJECT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "common/err.h"
#include "common/util.h"

struct inj {
	pid_t pid;                      /* thread group, for memory access */
	pid_t tid;                      /* the thread that runs the syscalls */
	struct user_regs_struct saved;  /* restored after every syscall */
	uint64_t syscall_ip;            /* address of a 0f 05 in the target */
	uint64_t scratch;               /* our RW page in the target, or 0 */
	size_t scratch_size;
	uint64_t scratch_since_ns;      /* when it was mapped (for -vv timings) */
	int resend_sig;                 /* a signal that arrived meanwhile */
};

/* Find a `syscall` instruction (0f 05) in an executable mapping of pid,
 * trying [vdso] first. procfd is /proc/PID. */
int __must_check inj_find_syscall(pid_t pid, int procfd, uint64_t *ip, struct ferr *err);

/* Prepare to inject into tid, which must be in a ptrace stop with regs as
 * given. No state is changed in the target yet. */
void inj_init(struct inj *in, pid_t pid, pid_t tid, const struct user_regs_struct *regs,
	      uint64_t syscall_ip);

/* Run one syscall in the target; *ret gets its return value (-errno on
 * failure inside the target). Returns 0 if the injection itself worked.
 * Once the job is cancelled (common/cancel.h) only calls that undo (close,
 * munmap) still run; others fail with ECANCELED before touching the thread. */
int __must_check inj_syscall(struct inj *in, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
			     uint64_t a4, uint64_t a5, uint64_t a6, long *ret, struct ferr *err);

/* Map / unmap a scratch page in the target for memory arguments. */
int __must_check inj_scratch_map(struct inj *in, struct ferr *err);
int __must_check inj_scratch_unmap(struct inj *in, struct ferr *err);
/* Unmap a scratch page still mapped, best effort (a warning if that fails):
 * for paths that have no error left to report. Nothing to do on a zeroed
 * inj or once inj_scratch_unmap() was called, so `cleanup_val(inj)` is safe. */
void inj_fini(struct inj *in);
DEFINE_CLEANUP_VAL(inj, inj_fini)

/* Copy to / from target memory (the scratch page, typically). */
int __must_check inj_write(struct inj *in, uint64_t addr, const void *buf, size_t len,
			   struct ferr *err);
int __must_check inj_read(struct inj *in, uint64_t addr, void *buf, size_t len, struct ferr *err);

#endif
