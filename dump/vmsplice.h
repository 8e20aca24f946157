/* The zero-copy half of the page path, for a frozen target and a socket
 * sink: the target itself moves its pages into a pipe (one injected
 * vmsplice(2) per batch: references to its pages, no copy), and ferry splices
 * the pipe into the page server's socket. The kernel has no pipe from
 * another process's memory (process_vmsplice was never merged; /proc/PID/mem
 * cannot be spliced from), so this works only while every thread of the
 * target is stopped under ptrace, as in a final dump. */
#ifndef FERRY_DUMP_VMSPLICE_H
#define FERRY_DUMP_VMSPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "common/err.h"
#include "proc/inject.h"
#include "proc/target.h"

struct vmsp {
	struct target *t;
	struct inj in;
	long wfd;              /* the pipe's write end, in the target; -1: none */
	int rfd;               /* its read end, ferry's; -1: none */
	size_t pipe_size;      /* bytes the pipe holds */
	uint64_t opened_ns;    /* when the pipe was made (for -vv timings) */
	bool mapped;           /* the scratch page is in the target */
	/* The pages of the injected thread's rseq area, [lo, hi), or 0, 0:
	 * the kernel rewrites it (cpu_id) when that thread runs an injected
	 * syscall on another CPU, between the read a batch is hashed from and
	 * the vmsplice that moves the live page. */
	uint64_t rseq_lo, rseq_hi;
};

/* Make the pipe: pipe2 in the target, its read end taken by pidfd_getfd,
 * grown to fs.pipe-max-size. The target must be frozen. */
int __must_check vmsp_open(struct vmsp *v, struct target *t, struct ferr *err);
/* Move the first bytes of the remote ranges iov[0..n) into the pipe, up to
 * what the pipe holds; *moved says how many. The pipe must be empty. */
/* Does one of the remote ranges iov[0..n) hold the injected thread's rseq
 * area? Such a batch is written from the read its checksum came from. */
bool vmsp_touches_rseq(const struct vmsp *v, const struct iovec *iov, size_t n);
int __must_check vmsp_fill(struct vmsp *v, const struct iovec *iov, size_t n, size_t *moved,
			   struct ferr *err);
/* Close the target's end, unmap the scratch page, give the registers back:
 * nothing of it is left in the target. Safe on a vmsp never opened. */
int vmsp_close(struct vmsp *v, struct ferr *err);

#endif
