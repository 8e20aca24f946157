/* The page reader: a ring of batches, each read, checksummed and written by
 * one of the worker threads; the caller queues runs and adds them to the
 * image in order. Only the caller touches the img_writer's run list; workers
 * only write data at offsets reserved for them. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "common/cancel.h"
#include "common/compat.h"
#include "common/util.h"
#include "proc/target.h"
#include "dump/vmsplice.h"
#include "dump/pageread.h"

static void *worker_main(void *arg);

static int nr_workers(void)
{
	const char *env = getenv("FERRY_XFER_THREADS");
	long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > PGREAD_WORKERS_MAX ? PGREAD_WORKERS_MAX : (int)n;
}

int pgread_init(struct pgread *x, const struct target *t, bool use_pidfd, struct img_writer *w,
	      size_t buf_size, bool populate, struct ferr *err)
{
	int want = nr_workers();

	memset(x, 0, sizeof(*x));
	x->t = t;
	x->use_pidfd = use_pidfd;
	x->pid = t->pid;
	x->procfd = t->procfd;
	x->mem_fd = -1;
	x->w = w;
	x->buf_size = buf_size;
	x->populate = populate;
	x->cur = -1;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	for (int i = 0; i < PGREAD_NR_BATCH; i++) {
		x->b[i].buf = mmap(NULL, buf_size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (x->b[i].buf == MAP_FAILED) {
			x->b[i].buf = NULL;
			return ferr_sys(err, errno, "page buffer of %zu bytes", buf_size);
		}
	}
	/* The descriptor is opened here, not by racing workers. */
	x->mem_fd = openat(x->procfd, "mem", O_RDONLY | O_CLOEXEC);
	if (x->mem_fd < 0)
		return ferr_sys(err, errno, "open /proc/%d/mem", x->pid);
	for (int i = 0; i < want; i++) {
		if (cancel_thread_create(&x->worker[i], worker_main, x))
			return ferr_sys(err, EAGAIN, "start a page worker thread");
		x->nr_workers++;
	}
	return 0;
}

void pgread_fini(struct pgread *x)
{
	pthread_mutex_lock(&x->mu);
	x->stop = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	for (int i = 0; i < x->nr_workers; i++)
		pthread_join(x->worker[i], NULL);
	x->nr_workers = 0;
	for (int i = 0; i < PGREAD_NR_BATCH; i++)
		if (x->b[i].buf)
			munmap(x->b[i].buf, x->buf_size);
	if (x->mem_fd >= 0)
		close(x->mem_fd);
	x->mem_fd = -1;
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
}

/* The data segment that riov[iov] reads into (one each, in order). */
static struct pgread_seg *seg_of_iov(struct pgread_batch *b, size_t iov)
{
	for (size_t i = 0; i < b->nr_seg; i++)
		if (!b->seg[i].zero && !b->seg[i].parent && iov-- == 0)
			return &b->seg[i];
	return NULL;
}

/* /proc/PID/mem reads with FOLL_FORCE: PROT_NONE pages are readable there. */
static int read_mem(struct pgread *x, struct pgread_batch *b, size_t from_iov, size_t skip,
		    struct ferr *err)
{
	uint8_t *dst = b->buf;

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
			struct pgread_seg *s = seg_of_iov(b, i);

			s->skip = true;
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

static int read_batch(struct pgread *x, struct pgread_batch *b, struct ferr *err)
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
static void hash_batch(struct pgread_batch *b)
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

/* Write the batch's data where it was reserved, in one piece between
 * skipped (unreadable) segments. */
static int write_batch(struct pgread *x, struct pgread_batch *b, struct ferr *err)
{
	uint64_t off = b->off;
	size_t from = 0, at = 0;
	int ret = 0;

	for (size_t i = 0; !ret && i <= b->nr_seg; i++) {
		const struct pgread_seg *s = i < b->nr_seg ? &b->seg[i] : NULL;

		if (s && (s->zero || s->parent))
			continue;
		if (!s || s->skip) {
			if (at > from)
				ret = img_pages_write_at(x->w, off + from, b->buf + from, at - from,
							 err);
			if (s)
				from = at + s->len;
		}
		if (s)
			at += s->len;
	}
	return ret;
}

/* One batch on a worker: read, checksum, write. */
static void work_batch(struct pgread *x, struct pgread_batch *b)
{
	struct ferr e;
	int ret = read_batch(x, b, &e);

	if (!ret)
		hash_batch(b);
	pthread_mutex_lock(&x->mu);
	b->read = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	if (!ret)
		ret = write_batch(x, b, &e);
	if (ret) {
		b->err_msg = e;
		b->err = ret;
	}
}

/* The queued batch submitted first, or NULL. */
static struct pgread_batch *next_queued(struct pgread *x)
{
	struct pgread_batch *best = NULL;

	for (int i = 0; i < PGREAD_NR_BATCH; i++)
		if (x->b[i].state == PB_QUEUED && (!best || x->b[i].seq < best->seq))
			best = &x->b[i];
	return best;
}

static void *worker_main(void *arg)
{
	struct pgread *x = arg;

	/* Fault the batches in while the caller freezes the target and reads
	 * its state, not when they are first filled. MADV_POPULATE_WRITE
	 * (5.14) leaves what is there untouched, so racing the caller is safe;
	 * where the kernel lacks it, the first use takes the faults. */
	pthread_mutex_lock(&x->mu);
	if (x->populate) {
		x->populate = false;
		pthread_mutex_unlock(&x->mu);
		for (int i = 0; i < PGREAD_NR_BATCH; i++)
			madvise(x->b[i].buf, x->buf_size, MADV_POPULATE_WRITE);
		pthread_mutex_lock(&x->mu);
	}
	for (;;) {
		struct pgread_batch *b;
		bool failed;

		while (!(b = next_queued(x)) && !x->stop)
			pthread_cond_wait(&x->cv, &x->mu);
		if (!b)
			break;
		b->state = PB_BUSY;
		failed = x->failed;
		pthread_mutex_unlock(&x->mu);
		/* After an error the rest is let through unread and unwritten:
		 * the caller reports the first error. */
		if (!failed)
			work_batch(x, b);
		pthread_mutex_lock(&x->mu);
		b->read = true;
		if (b->err)
			x->failed = true;
		b->state = PB_WRITTEN;
		pthread_cond_broadcast(&x->cv);
	}
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

/* Add a written batch's runs to the image, in address order. */
static int add_runs(struct pgread *x, struct pgread_batch *b, struct ferr *err)
{
	uint64_t ps = (uint64_t)ferry_page_size(), off = b->off;
	const uint8_t *p = b->buf;
	int ret = 0;

	if (b->err) {
		*err = b->err_msg;
		return b->err;
	}
	for (size_t i = 0; !ret && i < b->nr_seg; i++) {
		const struct pgread_seg *s = &b->seg[i];

		if (s->zero) {
			ret = img_pages_zero(x->w, s->vaddr, s->len / ps, err);
			continue;
		}
		if (s->parent) {
			ret = img_pages_parent(x->w, s->vaddr, s->len / ps, err);
			continue;
		}
		if (s->skip)
			x->skipped_pages += s->len / ps;
		else
			ret = img_pages_data_at(x->w, s->vaddr, s->len / ps, off, s->xxh3, p, err);
		p += s->len;
		off += s->len;
	}
	return ret;
}

/* The written batch whose runs are to be added next, or NULL. Under x->mu. */
static struct pgread_batch *next_to_add(struct pgread *x)
{
	for (int i = 0; i < PGREAD_NR_BATCH; i++)
		if (x->b[i].state == PB_WRITTEN && x->b[i].seq == x->done_seq)
			return &x->b[i];
	return NULL;
}

/* Add every written batch whose turn it is; with wait, until all submitted
 * batches are added. The first error stops the adding for good: later
 * batches may have been let through unread, and every later call reports
 * it again. */
static int retire(struct pgread *x, bool wait, struct ferr *err)
{
	int ret = x->rerr;

	if (ret)
		*err = x->rerr_msg;

	pthread_mutex_lock(&x->mu);
	while (x->done_seq < x->next_seq) {
		struct pgread_batch *b = next_to_add(x);

		if (!b) {
			if (!wait)
				break;
			pthread_cond_wait(&x->cv, &x->mu);
			continue;
		}
		pthread_mutex_unlock(&x->mu);
		if (!ret) {
			ret = add_runs(x, b, err);
			if (ret) {
				x->rerr = ret;
				x->rerr_msg = *err;
			}
		}
		pthread_mutex_lock(&x->mu);
		b->state = PB_FREE;
		b->nr_seg = b->nr_iov = b->used = 0;
		b->read = false;
		b->err = 0;
		x->done_seq++;
	}
	pthread_mutex_unlock(&x->mu);
	return ret;
}

/* A free batch for the caller to fill, retiring (and waiting for) older
 * ones as needed. */
static int take_free(struct pgread *x, struct ferr *err)
{
	for (;;) {
		int ret = retire(x, false, err);

		if (ret)
			return ret;
		pthread_mutex_lock(&x->mu);
		for (int i = 0; i < PGREAD_NR_BATCH && x->cur < 0; i++)
			if (x->b[i].state == PB_FREE)
				x->cur = i;
		if (x->cur < 0) {
			/* Wait for the oldest batch to be written. */
			while (!next_to_add(x))
				pthread_cond_wait(&x->cv, &x->mu);
		}
		pthread_mutex_unlock(&x->mu);
		if (x->cur >= 0)
			return 0;
	}
}

/* The batch being filled: taken if there is none. */
static int cur_batch(struct pgread *x, struct pgread_batch **b, struct ferr *err)
{
	int ret = x->cur < 0 ? take_free(x, err) : 0;

	*b = ret ? NULL : &x->b[x->cur];
	return ret;
}

/* A batch on the caller's thread by the target's own vmsplice: read into the
 * buffer only to checksum it, then moved through the pipe, a pipeful at a
 * time. Memory only /proc/PID/mem can read (PROT_NONE) goes from the buffer. */
static int splice_batch(struct pgread *x, struct pgread_batch *b, struct ferr *err)
{
	struct iovec rest[PGREAD_IOV_MAX];
	uint64_t off = b->off;
	size_t i = 0, left = b->used;
	int ret = read_batch(x, b, err);

	if (ret)
		return ret;
	hash_batch(b);
	if (b->force || vmsp_touches_rseq(x->vs, b->riov, b->nr_iov))
		return write_batch(x, b, err);
	memcpy(rest, b->riov, b->nr_iov * sizeof(rest[0]));
	while (left) {
		size_t moved;

		ret = vmsp_fill(x->vs, rest + i, b->nr_iov - i, &moved, err);
		if (!ret && moved > left)
			ret = ferr_new(err, EIO, "vmsplice moved %zu bytes of %zu", moved, left);
		if (!ret)
			ret = img_pages_splice_at(x->w, off, x->vs->rfd, moved, err);
		if (ret)
			return ret;
		off += moved;
		left -= moved;
		while (moved) {
			size_t take = moved < rest[i].iov_len ? moved : rest[i].iov_len;

			rest[i].iov_base = (uint8_t *)rest[i].iov_base + take;
			rest[i].iov_len -= take;
			moved -= take;
			if (!rest[i].iov_len)
				i++;
		}
	}
	return 0;
}

/* Queue the batch being filled for a worker, its data's place reserved. */
static int submit(struct pgread *x, struct ferr *err)
{
	struct pgread_batch *b;

	if (x->cur < 0)
		return 0;
	b = &x->b[x->cur];
	if (!b->nr_seg)
		return 0;
	b->off = img_pages_reserve(x->w, b->used);
	if (x->vs) {
		struct ferr e;
		int ret = splice_batch(x, b, &e);

		pthread_mutex_lock(&x->mu);
		b->seq = x->next_seq++;
		b->read = true;
		if (ret) {
			b->err = ret;
			b->err_msg = e;
		}
		b->state = PB_WRITTEN;
		x->cur = -1;
		pthread_mutex_unlock(&x->mu);
		return retire(x, false, err);
	}
	pthread_mutex_lock(&x->mu);
	b->seq = x->next_seq++;
	b->state = PB_QUEUED;
	x->cur = -1;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return retire(x, false, err);
}

static int add_nodata(struct pgread *x, uint64_t vaddr, uint64_t len, bool parent, struct ferr *err)
{
	struct pgread_batch *b;
	int ret = cur_batch(x, &b, err);

	if (!ret && b->nr_seg == PGREAD_SEG_MAX) {
		bool force = b->force;

		ret = submit(x, err);
		if (!ret)
			ret = cur_batch(x, &b, err);
		if (!ret)
			b->force = force;
	}
	if (ret)
		return ret;
	b->seg[b->nr_seg++] = (struct pgread_seg){ .vaddr = vaddr, .len = len, .zero = !parent,
						 .parent = parent };
	return 0;
}

int pgread_runs(struct pgread *x, const struct vma *v, const struct page_run *runs, size_t n,
	      struct ferr *err)
{
	bool force = !(v->prot & PROT_READ);
	uint64_t ps = (uint64_t)ferry_page_size();
	struct pgread_batch *b;
	int ret = cur_batch(x, &b, err);

	if (!ret && b->nr_iov && force != b->force) {
		ret = submit(x, err);
		if (!ret)
			ret = cur_batch(x, &b, err);
	}
	if (ret)
		return ret;
	b->force = force;
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
			size_t room, len = runs[i].end - addr;

			ret = cur_batch(x, &b, err);
			if (ret)
				return ret;
			room = x->buf_size - b->used;
			if (!room || b->nr_iov == PGREAD_IOV_MAX || b->nr_seg == PGREAD_SEG_MAX) {
				ret = submit(x, err);
				if (ret)
					return ret;
				ret = cur_batch(x, &b, err);
				if (ret)
					return ret;
				b->force = force;
				continue;
			}
			if (len > room)
				len = room;
			if (len > IMG_RUN_DATA_MAX_PAGES * ps)
				len = IMG_RUN_DATA_MAX_PAGES * ps;
			b->riov[b->nr_iov++] = (struct iovec){ (void *)(uintptr_t)addr, len };
			b->seg[b->nr_seg++] = (struct pgread_seg){ .vaddr = addr, .len = len };
			b->used += len;
			x->data_pages += len / ps;
			addr += len;
		}
	}
	return 0;
}

/* Wait until every submitted batch is read from the target. */
int pgread_read_all(struct pgread *x, struct ferr *err)
{
	int ret = submit(x, err);
	bool all;

	pthread_mutex_lock(&x->mu);
	do {
		all = true;
		for (int i = 0; i < PGREAD_NR_BATCH; i++)
			if ((x->b[i].state == PB_QUEUED || x->b[i].state == PB_BUSY) && !x->b[i].read)
				all = false;
		if (!all)
			pthread_cond_wait(&x->cv, &x->mu);
	} while (!all);
	pthread_mutex_unlock(&x->mu);
	return ret;
}

int pgread_flush(struct pgread *x, struct ferr *err)
{
	int ret = submit(x, err);
	int ret2 = retire(x, true, err);

	return ret ? ret : ret2;
}
