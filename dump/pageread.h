/* Moving page data from the target to the image writer. Batches of many
 * remote ranges go round a small ring: the caller queues runs into one, and
 * worker threads each take a whole batch, read it by process_vm_readv (or
 * /proc/PID/mem for memory the process cannot read itself), checksum it while
 * it is in cache and write it at the place reserved for it in pages.img; the
 * caller adds the runs to the image in address order as batches complete.
 * Two workers copy on two cores at once: reader and writer on one thread each
 * copied every byte twice over a cross-core hand-off, and left the page-cache
 * allocation of the file (slow on a VM that backs memory lazily) to one core.
 * (Reading straight into a mapped window of pages.img was measured slower on
 * tmpfs: mapped pages are zeroed first, full-page writes are not.) */
#ifndef FERRY_DUMP_PAGEREAD_H
#define FERRY_DUMP_PAGEREAD_H

#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"
#include "common/util.h"
#include "proc/layout.h"
#include "proc/pages.h"
#include "images/img.h"

#define PGREAD_BUF_DEFAULT (1u << 20)   /* per batch: stays in a core's L2 between read and write */
#define PGREAD_NR_BATCH 8                /* batches in the ring: 8 MiB in all */
#define PGREAD_WORKERS_MAX 4
#define PGREAD_IOV_MAX 256          /* a batch is at most 256 pages of data */
#define PGREAD_SEG_MAX 512

struct pgread_seg {
	uint64_t vaddr, len;
	uint64_t xxh3;            /* of the data, computed by the reader */
	bool zero, parent;        /* no data: a zero or an in-parent run */
	bool skip;                /* live read failed (unmapped meanwhile): not written */
};

enum pgread_state {
	PB_FREE,      /* the caller fills it */
	PB_QUEUED,    /* waits for a worker */
	PB_BUSY,      /* a worker reads or writes it */
	PB_WRITTEN,   /* data in pages.img; its runs wait to be added in order */
};

struct pgread_batch {
	uint8_t *buf;
	size_t used;
	uint64_t off;                        /* its data's place in pages.img */
	uint64_t seq;                        /* order of submission */
	struct iovec riov[PGREAD_IOV_MAX];
	size_t nr_iov;
	struct pgread_seg seg[PGREAD_SEG_MAX];   /* data and zero runs, in address order */
	size_t nr_seg;
	bool force;                          /* read through /proc/PID/mem */
	enum pgread_state state;
	bool read;                           /* the target's part is done */
	int err;
	struct ferr err_msg;
};

struct target;
struct vmsp;

struct pgread {
	const struct target *t;
	bool use_pidfd;           /* PROCESS_VM_PIDFD: read by pidfd, no PID-reuse window */
	pid_t pid;
	int procfd;
	int mem_fd;
	struct img_writer *w;
	size_t buf_size;
	struct pgread_batch b[PGREAD_NR_BATCH];
	int cur;                  /* the batch the caller fills, or -1 */
	uint64_t next_seq;        /* of the next batch submitted */
	uint64_t done_seq;        /* batches before this one are added to the image */
	pthread_t worker[PGREAD_WORKERS_MAX];
	int nr_workers;
	bool stop, failed;
	int rerr;                 /* first error adding runs (or a worker's): sticky */
	struct ferr rerr_msg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool live;                /* the target runs: a range unmapped meanwhile is skipped */
	struct vmsp *vs;          /* frozen target: data leaves by vmsplice+splice (caller's
				     thread: it is the tracer), read only for its checksums */
	bool populate;            /* the first worker faults the batches in first */
	uint64_t data_pages, zero_pages, parent_pages, skipped_pages;
};

/* populate: fault the batches in on a worker from the start, alongside the
 * caller's freeze, rather than on first use. Workers: FERRY_XFER_THREADS, or
 * one per online CPU, at least 1 and at most PGREAD_WORKERS_MAX. */
int __must_check pgread_init(struct pgread *x, const struct target *t, bool use_pidfd,
			   struct img_writer *w, size_t buf_size, bool populate, struct ferr *err);
/* Queue runs of v; data reaches the writer in address order. With x->live
 * set (pre-dump: the target runs), data that can no longer be read because
 * the target unmapped it meanwhile is left out of the dump instead of failing
 * it: the next round (or the final, frozen dump) finds what is there then. */
int __must_check pgread_runs(struct pgread *x, const struct vma *v, const struct page_run *runs,
			   size_t n, struct ferr *err);
/* Read whatever is queued from the target: after this the target's memory
 * is no longer needed (it may run again), but writing may still go on. */
int __must_check pgread_read_all(struct pgread *x, struct ferr *err);
/* pgread_read_all, then wait until everything is written. */
int __must_check pgread_flush(struct pgread *x, struct ferr *err);
/* After pgread_init, even one that failed. */
void pgread_fini(struct pgread *x);
DEFINE_CLEANUP_VAL(pgread, pgread_fini)

#endif
