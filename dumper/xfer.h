/* Moving page data from the target to the image writer. Two batches
 * alternate: while one is filled by process_vm_readv (or /proc/PID/mem for
 * memory the process cannot read itself) and checksummed while it is still in
 * cache, a writer thread writes the other, so that the work of a dump splits
 * evenly over two cores. Each data segment is one run of the image.
 * (Reading straight into a mapped window of pages.img was measured slower on
 * tmpfs: mapped pages are zeroed first, full-page writes are not.) */
#ifndef FERRY_DUMPER_XFER_H
#define FERRY_DUMPER_XFER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"
#include "dumper/layout.h"
#include "dumper/pages.h"
#include "images/img.h"

#define XFER_BUF_DEFAULT (8u << 20)   /* per batch; two batches */
#define XFER_IOV_MAX 1024
#define XFER_SEG_MAX 2048

struct xfer_seg {
	uint64_t vaddr, len;
	uint64_t xxh3;            /* of the data, computed by the reader */
	bool zero, parent;        /* no data: a zero or an in-parent run */
	bool skip;                /* live read failed (unmapped meanwhile): not written */
};

struct xfer_batch {
	uint8_t *buf;
	size_t used;
	struct iovec riov[XFER_IOV_MAX];
	size_t nr_iov;
	struct xfer_seg seg[XFER_SEG_MAX];   /* data and zero runs, in address order */
	size_t nr_seg;
	bool force;                          /* read through /proc/PID/mem */
	bool full;                           /* handed to the writer, not yet written */
};

struct target;

struct xfer {
	const struct target *t;
	bool use_pidfd;           /* PROCESS_VM_PIDFD: read by pidfd, no PID-reuse window */
	pid_t pid;
	int procfd;
	int mem_fd;
	struct img_writer *w;
	size_t buf_size;
	struct xfer_batch b[2];
	int cur;                  /* the batch the reader fills */
	int next_write;           /* the batch the writer takes next */
	pthread_t writer;
	bool writer_started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int werr;                 /* first error of the writer thread */
	struct ferr werr_msg;
	bool live;                /* the target runs: a range unmapped meanwhile is skipped */
	bool populate;            /* the writer faults the batches in first */
	uint64_t data_pages, zero_pages, parent_pages, skipped_pages;
};

/* populate: fault the batches in on the writer thread from the start,
 * alongside the caller's freeze, rather than on first use by the reader. */
int __must_check xfer_init(struct xfer *x, const struct target *t, bool use_pidfd,
			   struct img_writer *w, size_t buf_size, bool populate, struct ferr *err);
/* Queue runs of v; data reaches the writer in address order. With x->live
 * set (pre-dump: the target runs), data that can no longer be read because
 * the target unmapped it meanwhile is left out of the dump instead of failing
 * it: the next round (or the final, frozen dump) finds what is there then. */
int __must_check xfer_runs(struct xfer *x, const struct vma *v, const struct page_run *runs,
			   size_t n, struct ferr *err);
/* Read whatever is queued from the target: after this the target's memory
 * is no longer needed (it may run again), but writing may still go on. */
int __must_check xfer_read_all(struct xfer *x, struct ferr *err);
/* xfer_read_all, then wait until everything is written. */
int __must_check xfer_flush(struct xfer *x, struct ferr *err);
void xfer_fini(struct xfer *x);

#endif
