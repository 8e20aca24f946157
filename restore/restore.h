/* ferry restore: re-create a dumped process from an image chain and let it
 * run on from where it was frozen (docs/ARCHITECTURE.md, "Restore").
 *
 * The process is built as a ptrace-controlled child of the caller: a fork
 * that arranges its own fds, cwd and session, then stops; everything else
 * (the address space, threads, per-thread kernel state) is done from outside
 * by injected syscalls at an instruction of the child's vdso and by
 * process_vm_writev. No code is written into it and no restorer blob is
 * needed. Any failure kills the half-built child. */
#ifndef FERRY_RESTORE_RESTORE_H
#define FERRY_RESTORE_RESTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct rst_opts {
	const char *dir;
	bool require_same_pid;  /* fail rather than take new PIDs/TIDs */
	bool stopped;           /* leave it stopped (SIGSTOP); SIGCONT lets it run */
};

struct rst_result {
	pid_t pid;              /* of the restored process, now running */
	bool same_pid;          /* every PID and TID as dumped */
	uint32_t threads;
	uint32_t vmas;
	uint64_t pages;         /* pages written into the process */
	uint64_t bytes;
	uint64_t validate_ns;   /* checksums and backing files */
	uint64_t build_ns;      /* child, address space, pages, state */
	uint64_t total_ns;
};

/* Restore the final dump in opts->dir. On success the process runs, as a
 * child of the caller, no longer traced. */
int __attribute__((warn_unused_result))
rst_restore(const struct rst_opts *opts, struct rst_result *res, struct ferr *err);

#endif
