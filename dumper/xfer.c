/* The page reader: many remote ranges per process_vm_readv call, one local
 * buffer, then straight to the writer. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include "common/util.h"
#include "dumper/xfer.h"

int xfer_init(struct xfer *x, pid_t pid, int procfd, struct img_writer *w, size_t buf_size,
	      struct ferr *err)
{
	memset(x, 0, sizeof(*x));
	x->pid = pid;
	x->procfd = procfd;
	x->mem_fd = -1;
	x->w = w;
	x->buf_size = buf_size;
	x->buf = mmap(NULL, buf_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x->buf == MAP_FAILED) {
		x->buf = NULL;
		return ferr_sys(err, errno, "page buffer of %zu bytes", buf_size);
	}
	return 0;
}

void xfer_fini(struct xfer *x)
{
	if (x->buf)
		munmap(x->buf, x->buf_size);
	if (x->mem_fd >= 0)
		close(x->mem_fd);
	x->buf = NULL;
	x->mem_fd = -1;
}

/* /proc/PID/mem reads with FOLL_FORCE: PROT_NONE pages are readable there. */
static int read_mem(struct xfer *x, size_t from_iov, size_t skip, struct ferr *err)
{
	uint8_t *dst = x->buf;

	if (x->mem_fd < 0) {
		x->mem_fd = openat(x->procfd, "mem", O_RDONLY | O_CLOEXEC);
		if (x->mem_fd < 0)
			return ferr_sys(err, errno, "open /proc/%d/mem", x->pid);
	}
	for (size_t i = 0; i < from_iov; i++)
		dst += x->riov[i].iov_len;
	for (size_t i = from_iov; i < x->nr_iov; i++) {
		uint64_t addr = (uintptr_t)x->riov[i].iov_base + skip;
		size_t len = x->riov[i].iov_len - skip;
		int ret = pread_all(x->mem_fd, dst + skip, len, addr);

		/* End of file on mem: the address space is gone with the process. */
		if (ret == -ESRCH || ret == -ENODATA)
			return ferr_new(err, ESRCH, "process %d exited during the dump", x->pid);
		if (ret)
			return ferr_sys(err, -ret, "read 0x%llx (%zu bytes) of process %d",
					(unsigned long long)addr, len, x->pid);
		dst += x->riov[i].iov_len;
		skip = 0;
	}
	return 0;
}

static int read_batch(struct xfer *x, struct ferr *err)
{
	struct iovec local = { x->buf, x->used };
	size_t done = 0, i = 0;
	ssize_t n;

	if (x->force)
		return read_mem(x, 0, 0, err);
	n = process_vm_readv(x->pid, &local, 1, x->riov, x->nr_iov, 0);
	if (n < 0) {
		if (errno == ESRCH)
			return ferr_new(err, ESRCH, "process %d exited during the dump", x->pid);
		if (errno != EFAULT)
			return ferr_sys(err, errno, "process_vm_readv of process %d", x->pid);
		n = 0;
	}
	if ((size_t)n == x->used)
		return 0;
	/* A short read stops at the first page it could not read: finish the
	 * batch through /proc/PID/mem, which fails loudly if it cannot either. */
	while (i < x->nr_iov && done + x->riov[i].iov_len <= (size_t)n)
		done += x->riov[i++].iov_len;
	return read_mem(x, i, (size_t)n - done, err);
}

int xfer_flush(struct xfer *x, struct ferr *err)
{
	uint8_t *p = x->buf;
	int ret;

	if (!x->nr_iov)
		return 0;
	ret = read_batch(x, err);
	for (size_t i = 0; !ret && i < x->nr_iov; i++) {
		size_t len = x->riov[i].iov_len;

		ret = img_pages_data(x->w, (uintptr_t)x->riov[i].iov_base, p,
				     len / (size_t)ferry_page_size(), err);
		p += len;
	}
	x->nr_iov = 0;
	x->used = 0;
	return ret;
}

int xfer_runs(struct xfer *x, const struct vma *v, const struct page_run *runs, size_t n,
	      struct ferr *err)
{
	bool force = !(v->prot & PROT_READ);
	uint64_t ps = (uint64_t)ferry_page_size();
	int ret;

	if (x->nr_iov && force != x->force) {
		ret = xfer_flush(x, err);
		if (ret)
			return ret;
	}
	x->force = force;
	for (size_t i = 0; i < n; i++) {
		uint64_t addr = runs[i].start;

		if (runs[i].zero) {
			ret = xfer_flush(x, err);
			if (!ret)
				ret = img_pages_zero(x->w, addr, (runs[i].end - addr) / ps, err);
			if (ret)
				return ret;
			x->zero_pages += (runs[i].end - addr) / ps;
			continue;
		}
		while (addr < runs[i].end) {
			size_t room = x->buf_size - x->used, len = runs[i].end - addr;

			if (!room || x->nr_iov == XFER_IOV_MAX) {
				ret = xfer_flush(x, err);
				if (ret)
					return ret;
				continue;
			}
			if (len > room)
				len = room;
			x->riov[x->nr_iov++] = (struct iovec){ (void *)(uintptr_t)addr, len };
			x->used += len;
			x->data_pages += len / ps;
			addr += len;
		}
	}
	return 0;
}
