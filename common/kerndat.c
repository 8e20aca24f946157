/* Kernel feature probes. Each one exercises the interface for real on this
 * process or a throw-away child, because a write or ioctl that "succeeds" can
 * still do nothing (soft-dirty compiled out accepts clear_refs "4"). */
#include <fcntl.h>
#include <liburing.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "common/compat.h"
#include "common/kerndat.h"
#include "common/util.h"

const struct kd_feature_desc kd_features[KD_NR_FEATURES] = {
	[KD_PROCMAP_QUERY] = { "procmap_query", "PROCMAP_QUERY ioctl on /proc/PID/maps (6.11)", false },
	[KD_PAGEMAP_SCAN] = { "pagemap_scan", "PAGEMAP_SCAN ioctl on /proc/PID/pagemap (6.7)", false },
	[KD_PROC_PAGEMAP] = { "proc_pagemap", "/proc/PID/pagemap reports present pages", true },
	[KD_UFFD] = { "userfaultfd", "userfaultfd(2) with UFFDIO_API", false },
	[KD_UFFD_WP_ASYNC] = { "uffd_wp_async",
			       "userfaultfd async write-protect seen through PAGEMAP_SCAN", false },
	[KD_UFFD_COPY] = { "uffd_copy",
			   "userfaultfd missing-mode registration filled by UFFDIO_COPY", false },
	[KD_SOFT_DIRTY] = { "soft_dirty", "soft-dirty bit 55 set by a write after clear_refs 4", false },
	[KD_PROCESS_VM_READV] = { "process_vm_readv", "process_vm_readv(2)", true },
	[KD_PROCESS_VM_PIDFD] = { "process_vm_pidfd", "process_vm_readv flag PROCESS_VM_PIDFD", false },
	[KD_PROCESS_VM_NOWAIT] = { "process_vm_nowait", "process_vm_readv flag PROCESS_VM_NOWAIT", false },
	[KD_PROCESS_VMSPLICE] = { "process_vmsplice", "process_vmsplice(2) (proposed 2017)", false },
	[KD_PIDFD_OPEN] = { "pidfd_open", "pidfd_open(2)", true },
	[KD_PIDFD_GETFD] = { "pidfd_getfd", "pidfd_getfd(2)", false },
	[KD_CLONE3_SET_TID] = { "clone3_set_tid", "clone3(2) with set_tid", false },
	[KD_PTRACE] = { "ptrace", "PTRACE_SEIZE/INTERRUPT/GETREGS of a child", true },
	[KD_IO_URING] = { "io_uring", "io_uring_setup(2)", false },
	[KD_IO_URING_SPLICE] = { "io_uring_splice", "io_uring opcode IORING_OP_SPLICE", false },
	[KD_IO_URING_WRITE] = { "io_uring_write", "io_uring opcode IORING_OP_WRITE", false },
	[KD_IO_URING_SEND] = { "io_uring_send", "io_uring opcode IORING_OP_SEND", false },
	[KD_IO_URING_SEND_ZC] = { "io_uring_send_zc", "io_uring opcode IORING_OP_SEND_ZC", false },
	[KD_UNIX_DIAG] = { "unix_diag",
			   "NETLINK_SOCK_DIAG answers for Unix sockets (finds a socket's peer)", false },
};

static bool kd_no(struct kerndat *kd, enum kd_feature f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool kd_no(struct kerndat *kd, enum kd_feature f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kd->note[f], KD_NOTE_MAX, fmt, ap);
	va_end(ap);
	kd->has[f] = false;
	return false;
}

static bool kd_yes(struct kerndat *kd, enum kd_feature f)
{
	kd->has[f] = true;
	return true;
}

static void *map_probe_pages(size_t n)
{
	void *p = mmap(NULL, n * (size_t)ferry_page_size(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static bool probe_procmap_query(struct kerndat *kd)
{
	struct procmap_query q = { .size = sizeof(q),
				   .query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
				   .query_addr = 0 };
	cleanup_close int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kd_no(kd, KD_PROCMAP_QUERY, "open /proc/self/maps: %s", strerror(errno));
	if (ioctl(fd, PROCMAP_QUERY, &q) < 0)
		return kd_no(kd, KD_PROCMAP_QUERY, "ioctl: %s", strerror(errno));
	if (q.vma_end <= q.vma_start)
		return kd_no(kd, KD_PROCMAP_QUERY, "ioctl returned an empty VMA");
	return kd_yes(kd, KD_PROCMAP_QUERY);
}

/* One pagemap entry of our own address space. */
static int self_pagemap_entry(int fd, const void *addr, uint64_t *pme)
{
	uint64_t off = ((uintptr_t)addr / (uint64_t)ferry_page_size()) * sizeof(*pme);

	return pread_all(fd, pme, sizeof(*pme), off);
}

static bool probe_proc_pagemap(struct kerndat *kd)
{
	cleanup_close int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t ps = (size_t)ferry_page_size();
	uint64_t pme[2];
	char *p;
	bool ok;

	if (fd < 0)
		return kd_no(kd, KD_PROC_PAGEMAP, "open /proc/self/pagemap: %s", strerror(errno));
	p = map_probe_pages(2);
	if (!p)
		return kd_no(kd, KD_PROC_PAGEMAP, "mmap: %s", strerror(errno));
	p[0] = 1;
	ok = self_pagemap_entry(fd, p, &pme[0]) == 0 && self_pagemap_entry(fd, p + ps, &pme[1]) == 0;
	munmap(p, 2 * ps);
	if (!ok)
		return kd_no(kd, KD_PROC_PAGEMAP, "read /proc/self/pagemap failed");
	if (!(pme[0] & PME_PRESENT) || (pme[1] & PME_PRESENT))
		return kd_no(kd, KD_PROC_PAGEMAP, "present bit does not follow writes");
	return kd_yes(kd, KD_PROC_PAGEMAP);
}

static int pagemap_scan(int fd, void *start, void *end, uint64_t flags, uint64_t mask,
			struct page_region *vec, size_t vec_len)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = flags,
		.start = (uintptr_t)start,
		.end = (uintptr_t)end,
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
		.category_mask = mask,
		.return_mask = mask | PAGE_IS_PRESENT | PAGE_IS_WRITTEN,
	};
	int ret = ioctl(fd, PAGEMAP_SCAN, &arg);

	return ret < 0 ? -errno : ret;
}

static bool probe_pagemap_scan(struct kerndat *kd)
{
	cleanup_close int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t ps = (size_t)ferry_page_size();
	struct page_region vec[4];
	char *p;
	int n;

	if (fd < 0)
		return kd_no(kd, KD_PAGEMAP_SCAN, "open /proc/self/pagemap: %s", strerror(errno));
	p = map_probe_pages(4);
	if (!p)
		return kd_no(kd, KD_PAGEMAP_SCAN, "mmap: %s", strerror(errno));
	p[ps] = 1;
	p[2 * ps] = 1;
	n = pagemap_scan(fd, p, p + 4 * ps, 0, PAGE_IS_PRESENT, vec, ARRAY_SIZE(vec));
	munmap(p, 4 * ps);
	if (n < 0)
		return kd_no(kd, KD_PAGEMAP_SCAN, "ioctl: %s", strerror(-n));
	if (n != 1 || vec[0].start != (uintptr_t)(p + ps) || vec[0].end != (uintptr_t)(p + 3 * ps))
		return kd_no(kd, KD_PAGEMAP_SCAN, "ioctl answered, but not with the two present pages");
	return kd_yes(kd, KD_PAGEMAP_SCAN);
}

static int uffd_open_api(uint64_t features, uint64_t *answer)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (answer)
		*answer = api.features;
	return fd;
}

static bool probe_uffd(struct kerndat *kd)
{
	int fd = uffd_open_api(0, &kd->uffd_features);

	if (fd < 0)
		return kd_no(kd, KD_UFFD, "userfaultfd/UFFDIO_API: %s", strerror(-fd));
	close(fd);
	snprintf(kd->note[KD_UFFD], KD_NOTE_MAX, "features 0x%llx",
		 (unsigned long long)kd->uffd_features);
	return kd_yes(kd, KD_UFFD);
}

/* One write-protect cycle over the 4 pages at p: register async WP, write
 * one page, scan-and-rearm, write another, scan again and see only the second. */
static bool wp_async_cycle(struct kerndat *kd, int uffd, int pm, char *p)
{
	size_t ps = (size_t)ferry_page_size(), len = 4 * ps;
	struct uffdio_register reg = { .range = { (uintptr_t)p, len },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .range = { (uintptr_t)p, len },
					  .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	struct page_region vec[4];
	int n1, n2;

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return kd_no(kd, KD_UFFD_WP_ASYNC, "UFFDIO_REGISTER(WP): %s", strerror(errno));
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
		return kd_no(kd, KD_UFFD_WP_ASYNC, "UFFDIO_WRITEPROTECT: %s", strerror(errno));
	p[ps] = 1;
	n1 = pagemap_scan(pm, p, p + len, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			  PAGE_IS_WRITTEN, vec, ARRAY_SIZE(vec));
	if (n1 != 1 || vec[0].start != (uintptr_t)(p + ps) || vec[0].end != (uintptr_t)(p + 2 * ps))
		return kd_no(kd, KD_UFFD_WP_ASYNC,
			     "first scan did not return exactly the written page (%d)", n1);
	p[3 * ps] = 1;
	n2 = pagemap_scan(pm, p, p + len, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			  PAGE_IS_WRITTEN, vec, ARRAY_SIZE(vec));
	if (n2 != 1 || vec[0].start != (uintptr_t)(p + 3 * ps))
		return kd_no(kd, KD_UFFD_WP_ASYNC, "scan did not re-arm write protection (%d)", n2);
	return kd_yes(kd, KD_UFFD_WP_ASYNC);
}

/* The whole tracking cycle ferry relies on, on pages of our own. */
static bool probe_uffd_wp_async(struct kerndat *kd)
{
	const uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	cleanup_close int pm = -1;
	cleanup_close int uffd = -1;
	bool ok;
	char *p;

	if (!kd->has[KD_UFFD])
		return kd_no(kd, KD_UFFD_WP_ASYNC, "no userfaultfd");
	if (!kd->has[KD_PAGEMAP_SCAN])
		return kd_no(kd, KD_UFFD_WP_ASYNC, "no PAGEMAP_SCAN to read the written bits");
	if ((kd->uffd_features & want) != want)
		return kd_no(kd, KD_UFFD_WP_ASYNC, "UFFDIO_API lacks WP_ASYNC|WP_UNPOPULATED");
	uffd = uffd_open_api(want, NULL);
	if (uffd < 0)
		return kd_no(kd, KD_UFFD_WP_ASYNC, "UFFDIO_API(WP_ASYNC): %s", strerror(-uffd));
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return kd_no(kd, KD_UFFD_WP_ASYNC, "open pagemap: %s", strerror(errno));
	p = map_probe_pages(4);
	if (!p)
		return kd_no(kd, KD_UFFD_WP_ASYNC, "mmap: %s", strerror(errno));
	ok = wp_async_cycle(kd, uffd, pm, p);
	munmap(p, 4 * (size_t)ferry_page_size());
	return ok;
}

/* Register page 0 of p for missing faults and fill it from page 1 with
 * UFFDIO_COPY, as restore fills the new process's private memory. */
static bool uffd_copy_page(struct kerndat *kd, int uffd, char *p)
{
	size_t ps = (size_t)ferry_page_size();
	struct uffdio_register reg = { .range = { (uintptr_t)p, ps },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy c = { .dst = (uintptr_t)p, .src = (uintptr_t)(p + ps), .len = ps };

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return kd_no(kd, KD_UFFD_COPY, "UFFDIO_REGISTER(MISSING): %s", strerror(errno));
	if (!(reg.ioctls & (1ULL << _UFFDIO_COPY)))
		return kd_no(kd, KD_UFFD_COPY, "UFFDIO_COPY not offered for anonymous memory");
	if (ioctl(uffd, UFFDIO_COPY, &c) < 0)
		return kd_no(kd, KD_UFFD_COPY, "UFFDIO_COPY: %s", strerror(errno));
	if (c.copy != (__s64)ps)
		return kd_no(kd, KD_UFFD_COPY, "UFFDIO_COPY copied %lld of %zu bytes",
			     (long long)c.copy, ps);
	return true;
}

static bool probe_uffd_copy(struct kerndat *kd)
{
	cleanup_close int uffd = -1;
	bool ok;
	char *p;

	if (!kd->has[KD_UFFD])
		return kd_no(kd, KD_UFFD_COPY, "no userfaultfd");
	uffd = uffd_open_api(0, NULL);
	if (uffd < 0)
		return kd_no(kd, KD_UFFD_COPY, "UFFDIO_API: %s", strerror(-uffd));
	p = map_probe_pages(2);
	if (!p)
		return kd_no(kd, KD_UFFD_COPY, "mmap: %s", strerror(errno));
	p[ferry_page_size()] = 0x5a;
	ok = uffd_copy_page(kd, uffd, p);
	/* Closing unregisters: a look at page 0 can no longer wait on a fault
	 * nobody serves. */
	close(steal_fd(uffd));
	if (ok && p[0] != 0x5a)
		ok = kd_no(kd, KD_UFFD_COPY, "UFFDIO_COPY reported success but the page is not filled");
	else if (ok)
		kd_yes(kd, KD_UFFD_COPY);
	munmap(p, 2 * (size_t)ferry_page_size());
	return ok;
}

static bool probe_soft_dirty(struct kerndat *kd)
{
	cleanup_close int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	cleanup_close int cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	size_t ps = (size_t)ferry_page_size();
	uint64_t before = 0, after = 0;
	volatile char *p;
	int r1, r2;

	if (pm < 0 || cr < 0)
		return kd_no(kd, KD_SOFT_DIRTY, "open pagemap/clear_refs: %s", strerror(errno));
	p = map_probe_pages(1);
	if (!p)
		return kd_no(kd, KD_SOFT_DIRTY, "mmap: %s", strerror(errno));
	p[0] = 1;
	if (write(cr, "4", 1) != 1) {
		munmap((void *)p, ps);
		return kd_no(kd, KD_SOFT_DIRTY, "write clear_refs: %s", strerror(errno));
	}
	r1 = self_pagemap_entry(pm, (const void *)p, &before);
	p[0] = 2;
	r2 = self_pagemap_entry(pm, (const void *)p, &after);
	munmap((void *)p, ps);
	if (r1 || r2)
		return kd_no(kd, KD_SOFT_DIRTY, "read pagemap failed");
	if (before & PME_SOFT_DIRTY)
		return kd_no(kd, KD_SOFT_DIRTY, "clear_refs 4 did not clear bit 55");
	if (!(after & PME_SOFT_DIRTY))
		return kd_no(kd, KD_SOFT_DIRTY,
			     "clear_refs 4 accepted but a write never sets bit 55 (CONFIG_MEM_SOFT_DIRTY off)");
	return kd_yes(kd, KD_SOFT_DIRTY);
}

static bool probe_process_vm_readv(struct kerndat *kd)
{
	char src[16] = "ferry-probe", dst[16] = { 0 };
	struct iovec l = { dst, sizeof(dst) }, r = { src, sizeof(src) };

	if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != (ssize_t)sizeof(src))
		return kd_no(kd, KD_PROCESS_VM_READV, "process_vm_readv(self): %s", strerror(errno));
	if (memcmp(src, dst, sizeof(src)))
		return kd_no(kd, KD_PROCESS_VM_READV, "process_vm_readv copied wrong data");
	return kd_yes(kd, KD_PROCESS_VM_READV);
}

/* Seed 000: an unknown flag gives EINVAL before the iovecs are looked at; a
 * known one gets as far as the NULL iovec and gives EFAULT. */
static bool probe_process_vm_flag(struct kerndat *kd, enum kd_feature f, unsigned long flag)
{
	long ret = syscall(__NR_process_vm_readv, getpid(), NULL, 1, NULL, 1, flag);

	if (ret >= 0)
		return kd_no(kd, f, "unexpected success with NULL iovecs");
	if (errno == EFAULT)
		return kd_yes(kd, f);
	return kd_no(kd, f, "%s", errno == EINVAL ? "EINVAL: flag unknown to this kernel"
						  : strerror(errno));
}

static bool probe_process_vmsplice(struct kerndat *kd)
{
#ifdef __NR_process_vmsplice
	long ret = syscall(__NR_process_vmsplice, -1, -1, NULL, 0, 0);

	if (ret < 0 && errno == ENOSYS)
		return kd_no(kd, KD_PROCESS_VMSPLICE, "ENOSYS");
	return kd_yes(kd, KD_PROCESS_VMSPLICE);
#else
	/* The 2017 patch was never merged, so its numbers went to other syscalls:
	 * calling a guessed number would run something else. */
	return kd_no(kd, KD_PROCESS_VMSPLICE, "no syscall number (never merged upstream)");
#endif
}

static bool probe_pidfd_open(struct kerndat *kd)
{
	int fd = (int)syscall(__NR_pidfd_open, getpid(), 0);

	if (fd < 0)
		return kd_no(kd, KD_PIDFD_OPEN, "pidfd_open: %s", strerror(errno));
	close(fd);
	return kd_yes(kd, KD_PIDFD_OPEN);
}

static bool probe_pidfd_getfd(struct kerndat *kd)
{
	cleanup_close int pidfd = (int)syscall(__NR_pidfd_open, getpid(), 0);
	int fd;

	if (pidfd < 0)
		return kd_no(kd, KD_PIDFD_GETFD, "pidfd_open: %s", strerror(errno));
	fd = (int)syscall(__NR_pidfd_getfd, pidfd, pidfd, 0);
	if (fd < 0)
		return kd_no(kd, KD_PIDFD_GETFD, "pidfd_getfd: %s", strerror(errno));
	close(fd);
	return kd_yes(kd, KD_PIDFD_GETFD);
}

/* Ask for our own PID: EEXIST proves set_tid is understood and permitted,
 * without creating anything. */
static bool probe_clone3_set_tid(struct kerndat *kd)
{
	pid_t tid = getpid();
	struct clone_args args = {
		.exit_signal = SIGCHLD,
		.set_tid = (uintptr_t)&tid,
		.set_tid_size = 1,
	};
	long ret = syscall(__NR_clone3, &args, sizeof(args));

	if (ret == 0)
		syscall(__NR_exit_group, 0);
	if (ret > 0) {
		waitpid((pid_t)ret, NULL, 0);
		return kd_no(kd, KD_CLONE3_SET_TID, "set_tid of a taken PID succeeded");
	}
	if (errno == EEXIST)
		return kd_yes(kd, KD_CLONE3_SET_TID);
	return kd_no(kd, KD_CLONE3_SET_TID, "clone3: %s", strerror(errno));
}

/* Seize, interrupt and read the registers of a child that waits in pause(). */
static bool ptrace_child(struct kerndat *kd, pid_t pid)
{
	struct user_regs_struct regs;
	int status;

	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) < 0)
		return kd_no(kd, KD_PTRACE, "PTRACE_SEIZE: %s", strerror(errno));
	if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) < 0 || waitpid(pid, &status, __WALL) != pid ||
	    !WIFSTOPPED(status))
		return kd_no(kd, KD_PTRACE, "PTRACE_INTERRUPT did not stop the child");
	if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) < 0)
		return kd_no(kd, KD_PTRACE, "PTRACE_GETREGS: %s", strerror(errno));
	return kd_yes(kd, KD_PTRACE);
}

static bool probe_ptrace(struct kerndat *kd)
{
	pid_t parent = getpid(), pid;
	bool ok;

	pid = fork();
	if (pid < 0)
		return kd_no(kd, KD_PTRACE, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* Gone with us: ferry killed in the middle of the probe must not
		 * leave this child waiting for ever. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		for (;;)
			pause();
	}
	ok = ptrace_child(kd, pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, __WALL);
	return ok;
}

static bool probe_io_uring(struct kerndat *kd)
{
	static const struct {
		enum kd_feature f;
		int op;
	} ops[] = {
		{ KD_IO_URING_SPLICE, IORING_OP_SPLICE },
		{ KD_IO_URING_WRITE, IORING_OP_WRITE },
		{ KD_IO_URING_SEND, IORING_OP_SEND },
		{ KD_IO_URING_SEND_ZC, IORING_OP_SEND_ZC },
	};
	struct io_uring_probe *probe;
	struct io_uring ring;
	int ret = io_uring_queue_init(4, &ring, 0);

	if (ret < 0) {
		for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
			kd_no(kd, ops[i].f, "no io_uring");
		return kd_no(kd, KD_IO_URING, "io_uring_setup: %s", strerror(-ret));
	}
	probe = io_uring_get_probe_ring(&ring);
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		if (probe && io_uring_opcode_supported(probe, ops[i].op))
			kd_yes(kd, ops[i].f);
		else
			kd_no(kd, ops[i].f, "opcode not supported");
	}
	if (probe)
		io_uring_free_probe(probe);
	io_uring_queue_exit(&ring);
	return kd_yes(kd, KD_IO_URING);
}

/* The peer of the first end of a socketpair, as NETLINK_SOCK_DIAG reports
 * it (0 when it does not): ino is that end's inode. */
static int unix_diag_peer(int nl, ino_t ino, uint32_t *peer)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = { 0 };
	union {
		struct nlmsghdr h;
		char buf[4096];
	} ans;
	ssize_t n;

	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_ino = (uint32_t)ino;
	req.r.udiag_show = UDIAG_SHOW_PEER;
	req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u; /* any socket of that inode */
	if (send(nl, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
		return -errno;
	n = recv(nl, &ans, sizeof(ans), MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	*peer = 0;
	for (struct nlmsghdr *h = &ans.h; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		const struct unix_diag_msg *m = NLMSG_DATA(h);
		const struct nlattr *a = (const void *)(m + 1);
		size_t left;

		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			return e->error ? e->error : -EIO;
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
			continue;
		left = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
		while (left >= sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left) {
			if (a->nla_type == UNIX_DIAG_PEER && a->nla_len >= sizeof(*a) + 4)
				memcpy(peer, a + 1, 4);
			size_t step = (size_t)NLA_ALIGN(a->nla_len);

			if (step >= left)
				break;
			left -= step;
			a = (const void *)((const char *)a + step);
		}
	}
	return 0;
}

/* unix_diag (CONFIG_UNIX_DIAG; a module on Debian, absent from an
 * initramfs without modules): asked for one end of a socketpair, the kernel
 * must name the other end as its peer. Without it a dump cannot find a Unix
 * socket's peer. */
static bool probe_unix_diag(struct kerndat *kd)
{
	cleanup_close int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	cleanup_close int a = -1;
	cleanup_close int b = -1;
	struct stat sa, sb;
	uint32_t peer;
	int sp[2], ret;

	if (nl < 0)
		return kd_no(kd, KD_UNIX_DIAG, "NETLINK_SOCK_DIAG socket: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return kd_no(kd, KD_UNIX_DIAG, "socketpair: %s", strerror(errno));
	a = sp[0];
	b = sp[1];
	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return kd_no(kd, KD_UNIX_DIAG, "fstat a socket: %s", strerror(errno));
	ret = unix_diag_peer(nl, sa.st_ino, &peer);
	if (ret < 0)
		return kd_no(kd, KD_UNIX_DIAG, "%s: this kernel has no unix_diag (CONFIG_UNIX_DIAG; "
			     "modprobe unix_diag)", strerror(-ret));
	if (peer != (uint32_t)sb.st_ino)
		return kd_no(kd, KD_UNIX_DIAG, "a socketpair's peer reported as inode %u, not %lu",
			     peer, (unsigned long)sb.st_ino);
	return kd_yes(kd, KD_UNIX_DIAG);
}

static bool probe_vm_pidfd(struct kerndat *kd)
{
	return probe_process_vm_flag(kd, KD_PROCESS_VM_PIDFD, PROCESS_VM_PIDFD);
}

static bool probe_vm_nowait(struct kerndat *kd)
{
	return probe_process_vm_flag(kd, KD_PROCESS_VM_NOWAIT, PROCESS_VM_NOWAIT);
}

/* In enum order, which is dependency order. The io_uring opcode rows have no
 * probe of their own: probe_io_uring fills them. */
static bool (*const probes[KD_NR_FEATURES])(struct kerndat *) = {
	[KD_PROCMAP_QUERY] = probe_procmap_query,
	[KD_PAGEMAP_SCAN] = probe_pagemap_scan,
	[KD_PROC_PAGEMAP] = probe_proc_pagemap,
	[KD_UFFD] = probe_uffd,
	[KD_UFFD_WP_ASYNC] = probe_uffd_wp_async,
	[KD_UFFD_COPY] = probe_uffd_copy,
	[KD_SOFT_DIRTY] = probe_soft_dirty,
	[KD_PROCESS_VM_READV] = probe_process_vm_readv,
	[KD_PROCESS_VM_PIDFD] = probe_vm_pidfd,
	[KD_PROCESS_VM_NOWAIT] = probe_vm_nowait,
	[KD_PROCESS_VMSPLICE] = probe_process_vmsplice,
	[KD_PIDFD_OPEN] = probe_pidfd_open,
	[KD_PIDFD_GETFD] = probe_pidfd_getfd,
	[KD_CLONE3_SET_TID] = probe_clone3_set_tid,
	[KD_PTRACE] = probe_ptrace,
	[KD_IO_URING] = probe_io_uring,
	[KD_UNIX_DIAG] = probe_unix_diag,
};

bool kerndat_probe_one(struct kerndat *kd, enum kd_feature f)
{
	if (f == KD_UFFD_WP_ASYNC) {
		probe_uffd(kd);
		probe_pagemap_scan(kd);
	}
	if (f == KD_UFFD_COPY)
		probe_uffd(kd);
	if (!probes[f]) {
		probe_io_uring(kd);
		return kd->has[f];
	}
	return probes[f](kd);
}

void kerndat_probe(struct kerndat *kd)
{
	struct utsname u;

	memset(kd, 0, sizeof(*kd));
	kd->page_size = ferry_page_size();
	if (uname(&u) == 0) {
		snprintf(kd->release, sizeof(kd->release), "%s", u.release);
		snprintf(kd->machine, sizeof(kd->machine), "%s", u.machine);
	}
	for (int f = 0; f < KD_NR_FEATURES; f++)
		if (probes[f])
			probes[f](kd);
	kerndat_hide(kd, getenv("FERRY_HIDE_FEATURES"));
}

bool kerndat_probe_feature(struct kerndat *kd, enum kd_feature f)
{
	kerndat_probe_one(kd, f);
	kerndat_hide(kd, getenv("FERRY_HIDE_FEATURES"));
	return kd_has(kd, f);
}

static void hide(struct kerndat *kd, enum kd_feature f)
{
	kd->has[f] = false;
	snprintf(kd->note[f], KD_NOTE_MAX, "hidden by FERRY_HIDE_FEATURES");
}

void kerndat_hide(struct kerndat *kd, const char *list)
{
	while (list && *list) {
		size_t n = strcspn(list, ",");

		for (int f = 0; f < KD_NR_FEATURES; f++)
			if (strlen(kd_features[f].key) == n && !strncmp(kd_features[f].key, list, n))
				hide(kd, (enum kd_feature)f);
		list += n + (list[n] == ',');
	}
	/* uffd_copy is userfaultfd put to use: hiding userfaultfd hides it too,
	 * so FERRY_HIDE_FEATURES=userfaultfd keeps forcing restore's
	 * process_vm_writev path (tests/integration/restore.sh, docs/CLI.md). */
	if (!kd->has[KD_UFFD] && kd->has[KD_UFFD_COPY])
		hide(kd, KD_UFFD_COPY);
}

int kerndat_missing_essential(const struct kerndat *kd)
{
	for (int f = 0; f < KD_NR_FEATURES; f++)
		if (kd_features[f].essential && !kd->has[f])
			return f;
	return -1;
}
