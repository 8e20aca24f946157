/* The injected vmsplice reader (see vmsplice.h). */
#include <fcntl.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "dump/vmsplice.h"

#define VMSP_IOV_MAX 256   /* iovecs per call: one scratch page of them */

static void keep_signal(struct vmsp *v)
{
	/* A signal that arrived while injecting is re-sent at release. */
	if (v->in.resend_sig && !v->t->th[0].resend_sig)
		v->t->th[0].resend_sig = v->in.resend_sig;
}

static size_t pipe_max(void)
{
	char buf[32] = "";
	cleanup_close int fd = open("/proc/sys/fs/pipe-max-size", O_RDONLY | O_CLOEXEC);
	long n = 0;

	if (fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0)
		n = strtol(buf, NULL, 10);
	return n > 0 ? (size_t)n : 1u << 20;
}

static void rseq_pages(struct vmsp *v, pid_t tid)
{
	struct __ptrace_rseq_configuration c;
	uint64_t ps = (uint64_t)ferry_page_size();

	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(c), &c) != (long)sizeof(c) ||
	    !c.rseq_abi_pointer || !c.rseq_abi_size)
		return;
	v->rseq_lo = c.rseq_abi_pointer / ps * ps;
	v->rseq_hi = (c.rseq_abi_pointer + c.rseq_abi_size + ps - 1) / ps * ps;
}

bool vmsp_touches_rseq(const struct vmsp *v, const struct iovec *iov, size_t n)
{
	for (size_t i = 0; v->rseq_hi && i < n; i++) {
		uint64_t a = (uint64_t)(uintptr_t)iov[i].iov_base;

		if (a < v->rseq_hi && a + iov[i].iov_len > v->rseq_lo)
			return true;
	}
	return false;
}

int vmsp_open(struct vmsp *v, struct target *t, struct ferr *err)
{
	uint64_t ip = 0;
	int fds[2];
	long r;
	int ret;

	memset(v, 0, sizeof(*v));
	v->t = t;
	v->wfd = -1;
	v->rfd = -1;
	ret = inj_find_syscall(t->pid, t->procfd, &ip, err);
	if (ret)
		return ret;
	inj_init(&v->in, t->pid, t->th[0].tid, &t->th[0].regs, ip);
	rseq_pages(v, t->th[0].tid);
	ret = inj_scratch_map(&v->in, err);
	if (ret)
		return ret;
	v->mapped = true;
	ret = inj_syscall(&v->in, __NR_pipe2, v->in.scratch, O_CLOEXEC, 0, 0, 0, 0, &r, err);
	if (!ret && r < 0)
		ret = ferr_new(err, (int)-r, "pipe2() in process %d: %s", t->pid, strerror((int)-r));
	if (!ret)
		ret = inj_read(&v->in, v->in.scratch, fds, sizeof(fds), err);
	if (ret)
		return ret;
	pr_debug("kill-window open pipe-%d: fds %d and %d of a pipe", t->pid, fds[0], fds[1]);
	v->opened_ns = now_ns();
	v->wfd = fds[1];
	v->rfd = (int)syscall(SYS_pidfd_getfd, t->pidfd, fds[0], 0);
	if (v->rfd < 0)
		ret = ferr_sys(err, errno, "pidfd_getfd the pipe of process %d", t->pid);
	/* The target keeps only the write end. */
	if (inj_syscall(&v->in, __NR_close, (uint64_t)fds[0], 0, 0, 0, 0, 0, &r,
			ret ? &(struct ferr){ 0 } : err) && !ret)
		ret = -EIO;
	if (ret)
		return ret;
	/* As large as an unprivileged pipe may be (CAP_SYS_RESOURCE could go
	 * further; it is not asked for). */
	if (fcntl(v->rfd, F_SETPIPE_SZ, (int)pipe_max()) < 0)
		pr_debug("F_SETPIPE_SZ: %s", strerror(errno));
	r = fcntl(v->rfd, F_GETPIPE_SZ);
	v->pipe_size = r > 0 ? (size_t)r : 65536;
	return 0;
}

int vmsp_fill(struct vmsp *v, const struct iovec *iov, size_t n, size_t *moved, struct ferr *err)
{
	struct iovec loc[VMSP_IOV_MAX];
	size_t nr = 0, want = 0;
	long r;
	int ret;

	/* As many ranges as the pipe holds, the last one cut to fit. */
	for (size_t i = 0; i < n && nr < VMSP_IOV_MAX && want < v->pipe_size; i++) {
		loc[nr] = iov[i];
		if (loc[nr].iov_len > v->pipe_size - want)
			loc[nr].iov_len = v->pipe_size - want;
		want += loc[nr++].iov_len;
	}
	*moved = 0;
	if (!nr)
		return 0;
	ret = inj_write(&v->in, v->in.scratch, loc, nr * sizeof(loc[0]), err);
	/* Non-blocking: the target must never wait on a pipe only ferry empties. */
	if (!ret)
		ret = inj_syscall(&v->in, __NR_vmsplice, (uint64_t)v->wfd, v->in.scratch, nr,
				  SPLICE_F_NONBLOCK, 0, 0, &r, err);
	keep_signal(v);
	if (ret)
		return ret;
	if (r <= 0)
		return ferr_new(err, r ? (int)-r : EIO, "vmsplice() in process %d: %s", v->t->pid,
				r ? strerror((int)-r) : "nothing moved");
	*moved = (size_t)r;
	return 0;
}

int vmsp_close(struct vmsp *v, struct ferr *err)
{
	struct ferr ignored;
	int ret = 0;
	long r;

	if (!v->t)
		return 0;
	if (v->rfd >= 0)
		close(v->rfd);
	v->rfd = -1;
	if (v->wfd >= 0) {
		ret = inj_syscall(&v->in, __NR_close, (uint64_t)v->wfd, 0, 0, 0, 0, 0, &r, err);
		if (!ret)
			pr_debug("kill-window close pipe-%d: the pipe was there for %.1f us", v->t->pid,
				 (now_ns() - v->opened_ns) / 1e3);
	}
	v->wfd = -1;
	if (v->mapped) {
		int r2 = inj_scratch_unmap(&v->in, ret ? &ignored : err);

		ret = ret ? ret : r2;
	}
	v->mapped = false;
	keep_signal(v);
	v->t = NULL;
	return ret;
}
