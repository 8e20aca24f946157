/* Moving page data from the target to the image writer: batched
 * process_vm_readv into one bounded buffer; /proc/PID/mem for memory the
 * process itself cannot read (PROT_NONE, write-only). */
#ifndef FERRY_DUMPER_XFER_H
#define FERRY_DUMPER_XFER_H

#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"
#include "dumper/layout.h"
#include "dumper/pages.h"
#include "images/img.h"

#define XFER_BUF_DEFAULT (16u << 20)
#define XFER_IOV_MAX 1024

struct xfer {
	pid_t pid;
	int procfd;
	int mem_fd;                 /* /proc/PID/mem, opened on first need */
	uint8_t *buf;
	size_t buf_size, used;
	struct iovec riov[XFER_IOV_MAX];
	size_t nr_iov;
	bool force;                 /* current batch needs /proc/PID/mem */
	struct img_writer *w;
	uint64_t data_pages, zero_pages;
};

int __must_check xfer_init(struct xfer *x, pid_t pid, int procfd, struct img_writer *w,
			   size_t buf_size, struct ferr *err);
/* Queue runs of v; data reaches the writer in address order. */
int __must_check xfer_runs(struct xfer *x, const struct vma *v, const struct page_run *runs,
			   size_t n, struct ferr *err);
/* Read and write whatever is still queued. */
int __must_check xfer_flush(struct xfer *x, struct ferr *err);
void xfer_fini(struct xfer *x);

#endif
