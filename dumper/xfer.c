/* The page reader and its writer thread. The reader batches many remote
 * ranges per process_vm_readv call; the writer hands each batch to the image
 * writer in order. Only the writer thread touches the img_writer. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "common/compat.h"
#include "common/util.h"
#include "dumper/target.h"
#include "dumper/xfer.h"

static void *writer_main(void *arg);

int xfer_init(struct xfer *x, const struct target *t, bool use_pidfd, struct img_writer *w,
	      size_t buf_size, bool populate, struct ferr *err)
{
	memset(x, 0, sizeof(*x));
	x->t = t;
	x->use_pidfd = use_pidfd;
	x->pid = t->pid;
	x->procfd = t->procfd;
	x->mem_fd = -1;
	x->w = w;
	x->buf_size = buf_size;
	x->populate = populate;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	for (int i = 0; i < 2; i++) {
		x->b[i].buf = mmap(NULL, buf_size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (x->b[i].buf == MAP_FAILED) {
			x->b[i].buf = NULL;
			return ferr_sys(err, errno, "page buffer of %zu bytes", buf_size);
		}
	}
	if (pthread_create(&x->writer, NULL, writer_main, x))
		return ferr_sys(err, EAGAIN, "start the writer thread");
	x->writer_started = true;
	return 0;
}

void xfer_fini(struct xfer *x)
{
	if (x->writer_started) {
		pthread_mutex_lock(&x->mu);
		x->stop = true;
		pthread_cond_broadcast(&x->cv);
		pthread_mutex_unlock(&x->mu);
		pthread_join(x->writer, NULL);
		x->writer_started = false;
	}
	for (int i = 0; i < 2; i++)
		if (x->b[i].buf)
			munmap(x->b[i].buf, x->buf_size);
	if (x->mem_fd >= 0)
		close(x->mem_fd);
	x->mem_fd = -1;
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
}

/* Write one batch: its segments in order, data from the buffer. */
static int write_batch(struct xfer *x, struct xfer_batch *b, struct ferr *err)
{
	uint64_t ps = (uint64_t)ferry_page_size();
	uint8_t *p = b->buf;
	int ret = 0;

	for (size_t i = 0; !ret && i < b->nr_seg; i++) {
		const struct xfer_seg *s = &b->seg[i];

		if (s->zero) {
			ret = img_pages_zero(x->w, s->vaddr, s->len / ps, err);
		} else if (s->parent) {
			ret = img_pages_parent(x->w, s->vaddr, s->len / ps, err);
		} else if (s->skip) {
			p += s->len;
		} else {
			ret = img_pages_data_hashed(x->w, s->vaddr, p, s->len / ps, s->xxh3, err);
			p += s->len;
		}
	}
	return ret;
}

static void *writer_main(void *arg)
{
	struct xfer *x = arg;

	/* Fault the batches in while the caller freezes the target and reads
	 * its state, not when the reader first fills them. MADV_POPULATE_WRITE
	 * (5.14) leaves what is there untouched, so racing the reader is safe;
	 * where the kernel lacks it, the reader takes the faults. */
	if (x->populate)
		for (int i = 0; i < 2; i++)
			madvise(x->b[i].buf, x->buf_size, MADV_POPULATE_WRITE);

	pthread_mutex_lock(&x->mu);
	for (;;) {
		struct xfer_batch *b = &x->b[x->next_write];

		while (!b->full && !x->stop)
			pthread_cond_wait(&x->cv, &x->mu);
		if (!b->full)
			break;
		pthread_mutex_unlock(&x->mu);
		/* After an error the rest is drained unwritten, so the reader
		 * never waits for ever; it sees werr at its next hand-over. */
		if (!x->werr) {
			struct ferr e;
			int ret = write_batch(x, b, &e);
			if (ret) {
				x->werr_msg = e;
				x->werr = ret;
			}
		}
		pthread_mutex_lock(&x->mu);
		b->full = false;
		b->nr_seg = b->nr_iov = b->used = 0;
		x->next_write ^= 1;
		pthread_cond_broadcast(&x->cv);
	}
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

/* The data segment that riov[iov] reads into (one each, in order). */
static struct xfer_seg *seg_of_iov(struct xfer_batch *b, size_t iov)
{
	for (size_t i = 0; i < b->nr_seg; i++)
		if (!b->seg[i].zero && !b->seg[i].parent && iov-- == 0)
			return &b->seg[i];
	return NULL;
}

/* /proc/PID/mem reads with FOLL_FORCE: PROT_NONE pages are readable there. */
static int read_mem(struct xfer *x, struct xfer_batch *b, size_t from_iov, size_t skip,
		    struct ferr *err)
{
	uint8_t *dst = b->buf;

	if (x->mem_fd < 0) {
		x->mem_fd = openat(x->procfd, "mem", O_RDONLY | O_CLOEXEC);
		if (x->mem_fd < 0)
			return ferr_sys(err, errno, "open /proc/%d/mem", x->pid);
	}
	for (size_t i = 0; i < from_iov; i++)
		dst += b->riov[i].iov_len;
	for (size_t i = from_iov; i < b->nr_iov; i++) {
		uint64_t addr = (uintptr_t)b->riov[i].iov_base + skip;
		size_t len = b->riov[i].iov_len - skip;
		int ret = pread_all(x->mem_fd, dst + skip, len, addr);

		/* End of file on mem: the address space is gone with the process. */
		if (ret == -ESRCH || (ret == -ENODATA && !target_alive(x->t)))
			return ferr_new(err, ESRCH, "process %d exited during the dump", x->pid);
		if (ret && x->live && (ret == -EIO || ret == -EFAULT || ret == -ENODATA)) {
			struct xfer_seg *s = seg_of_iov(b, i);

			s->skip = true;
			x->skipped_pages += s->len / (uint64_t)ferry_page_size();
			ret = 0;
		}
		if (ret)
			return ferr_sys(err, -ret, "read 0x%llx (%zu bytes) of process %d",
					(unsigned long long)addr, len, x->pid);
		dst += b->riov[i].iov_len;
		skip = 0;
	}
	return 0;
}

static int read_batch(struct xfer *x, struct xfer_batch *b, struct ferr *err)
{
	struct iovec local = { b->buf, b->used };
	size_t done = 0, i = 0;
	ssize_t n;

	if (!b->nr_iov)
		return 0;
	if (b->force)
		return read_mem(x, b, 0, 0, err);
	if (x->use_pidfd)
		n = syscall(SYS_process_vm_readv, x->t->pidfd, &local, 1, b->riov, b->nr_iov,
			    PROCESS_VM_PIDFD);
	else
		n = process_vm_readv(x->pid, &local, 1, b->riov, b->nr_iov, 0);
	/* By PID, the data is only ours if the pidfd says our process still
	 * lives: a dead and reaped target's PID may name a stranger now. */
	if (!x->use_pidfd && !target_alive(x->t))
		return ferr_new(err, ESRCH, "process %d exited during the dump", x->pid);
	if (n < 0) {
		if (errno == ESRCH)
			return ferr_new(err, ESRCH, "process %d exited during the dump", x->pid);
		if (errno != EFAULT)
			return ferr_sys(err, errno, "process_vm_readv of process %d", x->pid);
		n = 0;
	}
	if ((size_t)n == b->used)
		return 0;
	/* A short read stops at the first page it could not read: finish the
	 * batch through /proc/PID/mem, which fails loudly if it cannot either. */
	while (i < b->nr_iov && done + b->riov[i].iov_len <= (size_t)n)
		done += b->riov[i++].iov_len;
	return read_mem(x, b, i, (size_t)n - done, err);
}

/* Checksum each data segment right after reading it, while it is in cache. */
static void hash_batch(struct xfer_batch *b)
{
	const uint8_t *p = b->buf;

	for (size_t i = 0; i < b->nr_seg; i++) {
		if (b->seg[i].zero || b->seg[i].parent)
			continue;
		if (!b->seg[i].skip)
			b->seg[i].xxh3 = XXH3_64bits(p, b->seg[i].len);
		p += b->seg[i].len;
	}
}

/* Read the batch being filled and hand it to the writer thread. */
static int read_and_hand_over(struct xfer *x, struct ferr *err)
{
	struct xfer_batch *b = &x->b[x->cur];
	bool writers;
	int ret;

	/* After a hand-over without a wait (xfer_read_all), the current batch
	 * may still be the writer's: its segments are not ours to read again. */
	pthread_mutex_lock(&x->mu);
	writers = b->full;
	pthread_mutex_unlock(&x->mu);
	if (writers || !b->nr_seg)
		return 0;
	ret = read_batch(x, b, err);
	if (ret)
		return ret;
	hash_batch(b);
	pthread_mutex_lock(&x->mu);
	b->full = true;
	pthread_cond_broadcast(&x->cv);
	x->cur ^= 1;
	pthread_mutex_unlock(&x->mu);
	return 0;
}

/* Wait until the writer is done with the batch to fill next (and, if both,
 * with the other one too), then report its error, if any. */
static int wait_writer(struct xfer *x, bool both, struct ferr *err)
{
	pthread_mutex_lock(&x->mu);
	while (x->b[x->cur].full || (both && x->b[x->cur ^ 1].full))
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	if (x->werr) {
		*err = x->werr_msg;
		return x->werr;
	}
	return 0;
}

/* Hand the current batch over and wait for the other one to be free. */
static int submit(struct xfer *x, struct ferr *err)
{
	int ret = read_and_hand_over(x, err);

	return ret ? ret : wait_writer(x, false, err);
}

static int add_nodata(struct xfer *x, uint64_t vaddr, uint64_t len, bool parent, struct ferr *err)
{
	struct xfer_batch *b = &x->b[x->cur];

	if (b->nr_seg == XFER_SEG_MAX) {
		int ret = submit(x, err);
		if (ret)
			return ret;
		b = &x->b[x->cur];
	}
	b->seg[b->nr_seg++] = (struct xfer_seg){ .vaddr = vaddr, .len = len, .zero = !parent,
						 .parent = parent };
	return 0;
}

int xfer_runs(struct xfer *x, const struct vma *v, const struct page_run *runs, size_t n,
	      struct ferr *err)
{
	bool force = !(v->prot & PROT_READ);
	uint64_t ps = (uint64_t)ferry_page_size();
	int ret;

	if (x->b[x->cur].nr_iov && force != x->b[x->cur].force) {
		ret = submit(x, err);
		if (ret)
			return ret;
	}
	x->b[x->cur].force = force;
	for (size_t i = 0; i < n; i++) {
		uint64_t addr = runs[i].start;

		if (runs[i].zero || runs[i].parent) {
			ret = add_nodata(x, addr, runs[i].end - addr, runs[i].parent, err);
			if (ret)
				return ret;
			if (runs[i].parent)
				x->parent_pages += (runs[i].end - addr) / ps;
			else
				x->zero_pages += (runs[i].end - addr) / ps;
			continue;
		}
		while (addr < runs[i].end) {
			struct xfer_batch *b = &x->b[x->cur];
			size_t room = x->buf_size - b->used, len = runs[i].end - addr;

			if (!room || b->nr_iov == XFER_IOV_MAX || b->nr_seg == XFER_SEG_MAX) {
				ret = submit(x, err);
				if (ret)
					return ret;
				x->b[x->cur].force = force;
				continue;
			}
			if (len > room)
				len = room;
			if (len > IMG_RUN_DATA_MAX_PAGES * ps)
				len = IMG_RUN_DATA_MAX_PAGES * ps;
			b->riov[b->nr_iov++] = (struct iovec){ (void *)(uintptr_t)addr, len };
			b->seg[b->nr_seg++] = (struct xfer_seg){ .vaddr = addr, .len = len };
			b->used += len;
			x->data_pages += len / ps;
			addr += len;
		}
	}
	return 0;
}

int xfer_read_all(struct xfer *x, struct ferr *err)
{
	return read_and_hand_over(x, err);
}

int xfer_flush(struct xfer *x, struct ferr *err)
{
	int ret = read_and_hand_over(x, err);

	return ret ? ret : wait_writer(x, true, err);
}
