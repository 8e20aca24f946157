/* Remote syscalls through an existing syscall instruction: no code is
 * written into the target, and its registers are restored after each call. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "common/cancel.h"
#include "common/log.h"
#include "proc/inject.h"

#define SCAN_CHUNK (64u << 10)

static int scan_for_syscall(pid_t pid, uint64_t start, uint64_t end, uint64_t *ip)
{
	uint8_t buf[SCAN_CHUNK + 1];

	for (uint64_t a = start; a < end; a += SCAN_CHUNK) {
		size_t len = end - a < SCAN_CHUNK ? (size_t)(end - a) : SCAN_CHUNK;
		struct iovec l = { buf, len }, r = { (void *)(uintptr_t)a, len };
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

		if (n < 2)
			return -1;
		for (ssize_t i = 0; i + 1 < n; i++) {
			if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
				*ip = a + (uint64_t)i;
				return 0;
			}
		}
	}
	return -1;
}

/* The first `syscall` in a readable, executable mapping of one maps pass:
 * pass 0 looks at the vdso only. */
static int find_in_maps(pid_t pid, int procfd, int pass, uint64_t *ip, struct ferr *err)
{
	cleanup_fclose FILE *f = fopen_at(procfd, "maps");
	cleanup_free char *line = NULL;
	size_t cap = 0;

	if (!f)
		return ferr_sys(err, errno, "open /proc/%d/maps", pid);
	while (getline(&line, &cap, f) > 0) {
		uint64_t s, e;
		char perms[5];

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s", &s, &e, perms) != 3)
			continue;
		if (perms[0] != 'r' || perms[2] != 'x')
			continue;
		if (pass == 0 && !strstr(line, "[vdso]"))
			continue;
		if (scan_for_syscall(pid, s, e, ip) == 0)
			return 1;
	}
	return 0;
}

int inj_find_syscall(pid_t pid, int procfd, uint64_t *ip, struct ferr *err)
{
	/* Two passes over the maps: the vdso (always there, tiny, full of
	 * syscall fallbacks), then any readable executable mapping. */
	for (int pass = 0; pass < 2; pass++) {
		int ret = find_in_maps(pid, procfd, pass, ip, err);

		if (ret)
			return ret < 0 ? ret : 0;
	}
	return ferr_new(err, ENOEXEC, "no syscall instruction found in the executable mappings of "
			"process %d", pid);
}

void inj_init(struct inj *in, pid_t pid, pid_t tid, const struct user_regs_struct *regs,
	      uint64_t syscall_ip)
{
	memset(in, 0, sizeof(*in));
	in->pid = pid;
	in->tid = tid;
	in->saved = *regs;
	in->syscall_ip = syscall_ip;
}

/* Resume with PTRACE_SYSCALL until the next syscall stop. Other stops (a
 * signal, a group stop) are passed over; a signal is kept to be re-sent. */
static int run_to_syscall_stop(struct inj *in, struct ferr *err)
{
	for (;;) {
		int status;

		pid_t r;

		if (ptrace(PTRACE_SYSCALL, in->tid, NULL, NULL) < 0)
			return ferr_sys(err, errno, "PTRACE_SYSCALL thread %d", in->tid);
		/* Never given up on EINTR (a cancel signal): the thread runs our
		 * registers until its next stop, where they can be put back. */
		while ((r = waitpid(in->tid, &status, __WALL)) < 0 && errno == EINTR)
			;
		if (r < 0)
			return ferr_sys(err, errno, "wait for thread %d", in->tid);
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return ferr_new(err, ESRCH, "thread %d exited during an injected syscall", in->tid);
		if (!WIFSTOPPED(status))
			continue;
		if (WSTOPSIG(status) == (SIGTRAP | 0x80))
			return 0;
		if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP)
			in->resend_sig = WSTOPSIG(status);
	}
}

/* Calls that take back what an earlier one gave the target: they must run
 * even once the job is cancelled, since cancelling means undoing. */
static bool undoes(long nr)
{
	return nr == __NR_close || nr == __NR_munmap;
}

int inj_syscall(struct inj *in, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		uint64_t a5, uint64_t a6, long *ret, struct ferr *err)
{
	struct user_regs_struct r = in->saved;
	uint64_t t0;
	int rc;

	/* Between two calls the thread has its own registers: a safe point. */
	if (!undoes(nr) && (rc = cancel_check(err)))
		return rc;

	r.rip = in->syscall_ip;
	r.rax = (uint64_t)nr;
	r.orig_rax = (uint64_t)-1; /* no syscall-restart logic on the way in */
	r.rdi = a1;
	r.rsi = a2;
	r.rdx = a3;
	r.r10 = a4;
	r.r8 = a5;
	r.r9 = a6;
	/* From here until its registers are back, a SIGKILL of ferry would let
	 * the thread run on with ours (docs/SECURITY.md, "Signals"): timed at -vv. */
	t0 = now_ns();
	pr_debug("kill-window open regs-%d: syscall %ld injected", in->tid, nr);
	if (ptrace(PTRACE_SETREGS, in->tid, NULL, &r) < 0)
		return ferr_sys(err, errno, "PTRACE_SETREGS thread %d", in->tid);
	rc = run_to_syscall_stop(in, err); /* entry */
	if (!rc)
		rc = run_to_syscall_stop(in, err); /* exit */
	if (!rc && ptrace(PTRACE_GETREGS, in->tid, NULL, &r) < 0)
		rc = ferr_sys(err, errno, "PTRACE_GETREGS thread %d", in->tid);
	/* Whatever happened, the thread gets its own registers back. */
	if (ptrace(PTRACE_SETREGS, in->tid, NULL, &in->saved) < 0 && !rc)
		rc = ferr_sys(err, errno, "restore registers of thread %d", in->tid);
	pr_debug("kill-window close regs-%d: its registers were ferry's for %.1f us", in->tid,
		 (now_ns() - t0) / 1e3);
	if (!rc)
		*ret = (long)r.rax;
	return rc;
}

int inj_scratch_map(struct inj *in, struct ferr *err)
{
	size_t len = (size_t)ferry_page_size();
	long addr;
	int ret;

	ret = inj_syscall(in, __NR_mmap, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  (uint64_t)-1, 0, &addr, err);
	if (ret)
		return ret;
	if (addr < 0 && addr > -4096)
		return ferr_sys(err, (int)-addr, "mmap of a scratch page in process %d", in->pid);
	in->scratch = (uint64_t)addr;
	in->scratch_size = len;
	in->scratch_since_ns = now_ns();
	pr_debug("kill-window open scratch-%d: a scratch page at 0x%llx", in->pid,
		 (unsigned long long)addr);
	return 0;
}

int inj_scratch_unmap(struct inj *in, struct ferr *err)
{
	uint64_t addr = in->scratch;
	long r;
	int ret;

	if (!addr)
		return 0;
	/* Tried once: a failed munmap is reported here, never retried. */
	in->scratch = 0;
	ret = inj_syscall(in, __NR_munmap, addr, in->scratch_size, 0, 0, 0, 0, &r, err);
	if (!ret && !r)
		pr_debug("kill-window close scratch-%d: the scratch page was there for %.1f us",
			 in->pid, (now_ns() - in->scratch_since_ns) / 1e3);
	if (ret)
		return ret;
	if (r)
		return ferr_sys(err, (int)-r, "munmap of the scratch page in process %d", in->pid);
	return 0;
}

void inj_fini(struct inj *in)
{
	struct ferr err;

	if (in->scratch && inj_scratch_unmap(in, &err))
		pr_warn("a scratch page is left in process %d: %s", in->pid, err.msg);
}

int inj_write(struct inj *in, uint64_t addr, const void *buf, size_t len, struct ferr *err)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)addr, len };

	if (process_vm_writev(in->pid, &l, 1, &r, 1, 0) != (ssize_t)len)
		return ferr_sys(err, errno, "write %zu bytes at 0x%llx in process %d", len,
				(unsigned long long)addr, in->pid);
	return 0;
}

int inj_read(struct inj *in, uint64_t addr, void *buf, size_t len, struct ferr *err)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };

	if (process_vm_readv(in->pid, &l, 1, &r, 1, 0) != (ssize_t)len)
		return ferr_sys(err, errno, "read %zu bytes at 0x%llx in process %d", len,
				(unsigned long long)addr, in->pid);
	return 0;
}
