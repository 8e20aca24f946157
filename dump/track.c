/* The uffd-wp and soft-dirty trackers (see track.h; the hash tracker is
 * track_hash.c) and the range lists they fill. */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "common/compat.h"
#include "proc/inject.h"
#include "common/log.h"
#include "proc/fds.h"
#include "dump/keeper.h"
#include "proc/pages.h"
#include "dump/track.h"

#define SCAN_VEC 4096              /* regions per PAGEMAP_SCAN call */
#define PAGEMAP_CHUNK 4096         /* pagemap entries per read */

/* ---- range lists ---------------------------------------------------------- */

int range_add(struct range_list *l, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	if (l->n && l->r[l->n - 1].end == start) {
		l->r[l->n - 1].end = end;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct range *r = realloc(l->r, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		l->r = r;
		l->cap = cap;
	}
	l->r[l->n++] = (struct range){ start, end };
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

void range_normalize(struct range_list *l)
{
	size_t o = 0;

	if (l->n < 2)
		return;
	qsort(l->r, l->n, sizeof(*l->r), range_cmp);
	for (size_t i = 1; i < l->n; i++) {
		if (l->r[i].start <= l->r[o].end) {
			if (l->r[i].end > l->r[o].end)
				l->r[o].end = l->r[i].end;
		} else {
			l->r[++o] = l->r[i];
		}
	}
	l->n = o + 1;
}

void range_list_free(struct range_list *l)
{
	free(l->r);
	memset(l, 0, sizeof(*l));
}

int range_add_or_fail(struct range_list *d, uint64_t start, uint64_t end, struct ferr *err)
{
	return range_add(d, start, end) ? ferr_sys(err, ENOMEM, "dirty ranges") : 0;
}

/* ---- shared --------------------------------------------------------------- */

bool track_vma(const struct vma *v)
{
	return pages_policy_of(v) != PAGES_NONE;
}

void tracker_init(struct tracker *tr, const struct tracker_ops *ops)
{
	memset(tr, 0, sizeof(*tr));
	tr->ops = ops;
	tr->uffd = tr->pagemap_fd = -1;
}

void tracker_fini(struct tracker *tr)
{
	if (tr->uffd >= 0)
		close(tr->uffd);
	if (tr->pagemap_fd >= 0)
		close(tr->pagemap_fd);
	img_hashes_free(&tr->prev);
	tr->uffd = tr->pagemap_fd = -1;
	tr->armed = false;
}

const struct tracker_ops *tracker_ops_by_name(const char *name)
{
	static const struct tracker_ops *all[] = { &track_uffd_ops, &track_soft_dirty_ops,
						   &track_hash_ops };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

bool target_uses_uffd(struct target *t)
{
	struct fd_list l;
	struct ferr e;
	bool found = false;

	if (fds_collect(t, &l, &e))
		return false;
	for (size_t i = 0; !found && i < l.n; i++)
		found = l.fds[i]->path && !strcmp(l.fds[i]->path, "anon_inode:[userfaultfd]");
	fds_free(&l);
	return found;
}

static int open_pagemap(struct tracker *tr, const struct target *t, struct ferr *err)
{
	if (tr->pagemap_fd >= 0)
		return 0;
	tr->pagemap_fd = openat(t->procfd, "pagemap", O_RDONLY | O_CLOEXEC);
	if (tr->pagemap_fd < 0)
		return ferr_sys(err, errno, "open /proc/%d/pagemap", t->pid);
	return 0;
}

/* ---- uffd-wp -------------------------------------------------------------- */

/* One injected syscall creates the userfaultfd inside the target (a
 * userfaultfd belongs to the mm of whoever creates it); ferry takes it with
 * pidfd_getfd and closes the target's number again. Everything else (API,
 * register, write-protect) ferry does on its own copy. The brief freeze is
 * timed into tr->freeze_ns. */
static int uffd_create(struct tracker *tr, struct target *t, struct ferr *err)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	bool was_frozen = t->frozen;
	uint64_t t0 = now_ns(), ip = 0;
	long child_fd = -1, rv;
	struct inj in;
	int ret = 0;

	if (!was_frozen)
		ret = target_freeze(t, err);
	if (!ret)
		ret = inj_find_syscall(t->pid, t->procfd, &ip, err);
	if (!ret) {
		inj_init(&in, t->pid, t->th[0].tid, &t->th[0].regs, ip);
		/* User-mode-only works for any credentials; async write-protect
		 * resolves faults in the kernel, so writes by the kernel on the
		 * process's behalf (read(2) into a buffer) are seen all the same. */
		ret = inj_syscall(&in, __NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY,
				  0, 0, 0, 0, 0, &child_fd, err);
		if (!ret && child_fd < 0)
			ret = ferr_new(err, (int)-child_fd, "userfaultfd() in process %d: %s", t->pid,
				       strerror((int)-child_fd));
		if (!ret && child_fd >= 0)
			pr_debug("kill-window open uffd-%d: its fd %ld", t->pid, child_fd);
	}
	if (!ret) {
		tr->uffd = (int)syscall(SYS_pidfd_getfd, t->pidfd, (int)child_fd, 0);
		if (tr->uffd < 0)
			ret = ferr_sys(err, errno, "pidfd_getfd the userfaultfd of process %d", t->pid);
	}
	if (child_fd >= 0) {
		struct ferr e2;
		int r2 = inj_syscall(&in, __NR_close, (uint64_t)child_fd, 0, 0, 0, 0, 0, &rv,
				     ret ? &e2 : err);
		if (!r2)
			pr_debug("kill-window close uffd-%d: the fd was there for %.1f us", t->pid,
				 (now_ns() - t0) / 1e3);
		if (!ret)
			ret = r2;
	}
	if (t->frozen && in.resend_sig && !t->th[0].resend_sig)
		t->th[0].resend_sig = in.resend_sig;
	if (!was_frozen) {
		target_release(t);
		tr->freeze_ns += now_ns() - t0;
	}
	if (ret)
		return ferr_wrap(err, "uffd-wp tracker");
	if (ioctl(tr->uffd, UFFDIO_API, &api) < 0)
		return ferr_sys(err, errno, "UFFDIO_API with WP_ASYNC|WP_UNPOPULATED");
	return 0;
}

/* Write-protect what is populated in [start, end) by a scan that matches
 * (and so protects) every written page, output discarded. UFFDIO_WRITEPROTECT
 * would do it too, but with WP_UNPOPULATED it puts a marker on every page of
 * the range, populated or not, and so would a matching scan that did not also
 * require present-or-swapped: page tables for all of it, which for a sparse
 * reservation (ASan's 20 TiB shadow, a JVM heap) exhausts memory (seen: the
 * OOM killer). A page never touched needs no marker: its first write makes a
 * PTE without the write-protect bit, which the next scan reports as written. */
static int uffd_protect_populated(struct tracker *tr, uint64_t start, uint64_t end)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.category_mask = PAGE_IS_WRITTEN,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_WRITTEN,
	};

	return ioctl(tr->pagemap_fd, PAGEMAP_SCAN, &arg) < 0 ? -errno : 0;
}

/* Register [start, end) for write-protect tracking and protect what is
 * there. A range the kernel refuses (a device mapping, say) is untrackable:
 * *ok is false and it is copied whole in every round.
 *
 * Protecting is done in two steps, un-protect all, then protect what is
 * populated, because a write-protect bit can be left behind on a writable
 * page. The kernel drops a VMA's registration when the process mremaps a
 * registered neighbour back next to it and the two merge; a write while
 * unregistered makes the page writable but keeps its write-protect bit.
 * Once registered again such a page reads "not written" to every scan, the
 * protect (which skips pages already marked) leaves it writable, and its
 * writes are never seen again (seen: 1 iterative dump in 20 of a process
 * moving mappings every 2 ms restored stale pages; reproduced by hand). */
static int uffd_watch(struct tracker *tr, uint64_t start, uint64_t end, bool *ok, struct ferr *err)
{
	struct uffdio_register reg = { .range = { start, end - start },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect unprotect = { .range = reg.range, .mode = 0 };
	int ret;

	*ok = false;
	if (ioctl(tr->uffd, UFFDIO_REGISTER, &reg) < 0) {
		if (errno == ESRCH)
			return ferr_new(err, ESRCH, "the process exited while being tracked");
		if (errno == EBUSY)
			return ferr_new(err, EBUSY, "0x%llx-0x%llx is registered with another "
					"userfaultfd: the process uses userfaultfd itself (use --track "
					"hash)", (unsigned long long)start, (unsigned long long)end);
		pr_debug("uffd-wp cannot track 0x%llx-0x%llx (copied whole each round): %s",
			 (unsigned long long)start, (unsigned long long)end, strerror(errno));
		return 0;
	}
	if (ioctl(tr->uffd, UFFDIO_WRITEPROTECT, &unprotect) < 0) {
		if (errno == ESRCH)
			return ferr_new(err, ESRCH, "the process exited while being tracked");
		/* Part of it was unmapped or replaced meanwhile: leave it all
		 * unregistered, so the next round copies it whole again. */
		struct uffdio_range all = reg.range;

		ioctl(tr->uffd, UFFDIO_UNREGISTER, &all);
		pr_debug("uffd-wp: 0x%llx-0x%llx changed while being registered: %s",
			 (unsigned long long)start, (unsigned long long)end, strerror(errno));
		return 0;
	}
	ret = uffd_protect_populated(tr, start, end);
	if (ret == -ESRCH)
		return ferr_new(err, ESRCH, "the process exited while being tracked");
	/* EPERM: part of it was unmapped or replaced meanwhile; the next
	 * round finds that part unregistered and copies it whole. */
	if (ret && ret != -EPERM)
		return ferr_sys(err, -ret, "write-protect 0x%llx-0x%llx", (unsigned long long)start,
				(unsigned long long)end);
	*ok = true;
	return 0;
}

static int uffd_arm(struct tracker *tr, struct target *t, const struct vma_list *vl,
		    struct ferr *err)
{
	int ret = open_pagemap(tr, t, err);

	if (!ret && tr->uffd < 0) {
		/* Tracking a chain of earlier pre-dumps left would refuse ours. */
		keeper_drop(t->pid);
		ret = uffd_create(tr, t, err);
	}
	/* Adjacent VMAs register as one range: fewer calls for many VMAs. */
	for (size_t i = 0; !ret && i < vl->n; i++) {
		uint64_t start = vl->v[i].start;
		bool ok;

		if (!track_vma(&vl->v[i]))
			continue;
		while (i + 1 < vl->n && track_vma(&vl->v[i + 1]) && vl->v[i + 1].start == vl->v[i].end)
			i++;
		ret = uffd_watch(tr, start, vl->v[i].end, &ok, err);
		if (!ret && !ok && start != vl->v[i].end) {
			/* One refused VMA must not cost its neighbours their tracking. */
			for (size_t j = 0; !ret && j < vl->n && vl->v[j].start < vl->v[i].end; j++)
				if (vl->v[j].start >= start && track_vma(&vl->v[j]))
					ret = uffd_watch(tr, vl->v[j].start, vl->v[j].end, &ok, err);
		}
	}
	if (!ret)
		tr->armed = true;
	return ret;
}

/* Written ranges of one VMA, write-protected again by the same call. When the
 * vector fills, the kernel may already have returned (and re-protected)
 * regions past walk_end: they are kept, and the walk goes on from walk_end;
 * anything there still written comes again and merges. */
static int uffd_scan_vma(struct tracker *tr, const struct vma *v, struct page_region *vec,
			 struct range_list *d, bool *untracked, struct ferr *err)
{
	uint64_t pos = v->start;
	size_t first = d->n;

	*untracked = false;
	while (pos < v->end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = pos,
			.end = v->end,
			.vec = (uintptr_t)vec,
			.vec_len = SCAN_VEC,
			.category_mask = PAGE_IS_WRITTEN,
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = PAGE_IS_WRITTEN,
		};
		int n = ioctl(tr->pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0 && errno == EPERM) {
			*untracked = true; /* not registered: new since the last round */
			d->n = first;
			return range_add_or_fail(d, v->start, v->end, err);
		}
		if (n < 0) {
			if (errno == ESRCH)
				return ferr_new(err, ESRCH, "the process exited during the scan");
			return ferr_sys(err, errno, "PAGEMAP_SCAN (write-protect) 0x%llx-0x%llx",
					(unsigned long long)pos, (unsigned long long)v->end);
		}
		for (int i = 0; i < n; i++) {
			uint64_t s = vec[i].start < v->start ? v->start : vec[i].start;
			uint64_t e = vec[i].end > v->end ? v->end : vec[i].end;
			int ret = range_add_or_fail(d, s, e, err);

			if (ret)
				return ret;
		}
		if (arg.walk_end <= pos || n < SCAN_VEC)
			break;
		pos = arg.walk_end;
	}
	/* Pages that are not present count as written too. Besides a real swap
	 * entry, that is the uffd-wp marker MADV_DONTNEED leaves where a
	 * protected page was: it reads "not written", but the page now reads
	 * as zeroes, not as what the last round copied (seen: a churned region's
	 * dropped half restored with old data). */
	for (pos = v->start; pos < v->end;) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = pos,
			.end = v->end,
			.vec = (uintptr_t)vec,
			.vec_len = SCAN_VEC,
			.category_mask = PAGE_IS_SWAPPED,
			.return_mask = PAGE_IS_SWAPPED,
		};
		int n = ioctl(tr->pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return ferr_sys(err, errno, "PAGEMAP_SCAN (not present) 0x%llx-0x%llx",
					(unsigned long long)pos, (unsigned long long)v->end);
		for (int i = 0; i < n; i++) {
			int ret = range_add_or_fail(d, vec[i].start < v->start ? v->start : vec[i].start,
					      vec[i].end > v->end ? v->end : vec[i].end, err);
			if (ret)
				return ret;
		}
		if (n < SCAN_VEC || arg.walk_end <= pos)
			break;
		pos = arg.walk_end;
	}
	/* Ranges past walk_end may precede later ones: order this VMA's part. */
	struct range_list part = { d->r + first, d->n - first, d->n - first };
	range_normalize(&part);
	d->n = first + part.n;
	return 0;
}

static int uffd_collect(struct tracker *tr, struct target *t, const struct vma_list *vl,
			struct range_list *d, struct ferr *err)
{
	cleanup_free struct page_region *vec = malloc(SCAN_VEC * sizeof(*vec));
	int ret = vec ? open_pagemap(tr, t, err) : ferr_sys(err, ENOMEM, "scan vector");

	for (size_t i = 0; !ret && i < vl->n; i++) {
		const struct vma *v = &vl->v[i];
		bool untracked, ok;

		if (!track_vma(v))
			continue;
		ret = uffd_scan_vma(tr, v, vec, d, &untracked, err);
		/* Mapped (or moved by mremap, which drops the registration)
		 * since the last round: copied whole now, watched from now on. */
		if (!ret && untracked)
			ret = uffd_watch(tr, v->start, v->end, &ok, err);
	}
	return ret;
}

const struct tracker_ops track_uffd_ops = {
	.name = "uffd-wp",
	.arm = uffd_arm,
	.collect = uffd_collect,
};

/* ---- soft-dirty ----------------------------------------------------------- */

static int clear_soft_dirty(const struct target *t, struct ferr *err)
{
	cleanup_close int fd = openat(t->procfd, "clear_refs", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return ferr_sys(err, errno, "open /proc/%d/clear_refs", t->pid);
	if (write(fd, "4", 1) != 1)
		return ferr_sys(err, errno, "clear soft-dirty bits of process %d", t->pid);
	return 0;
}

static int sd_arm(struct tracker *tr, struct target *t, const struct vma_list *vl,
		  struct ferr *err)
{
	int ret = open_pagemap(tr, t, err);

	(void)vl;
	if (!ret)
		ret = clear_soft_dirty(t, err);
	if (!ret)
		tr->armed = true;
	return ret;
}

/* Bit 55 of each pagemap entry. Reading the bits and clearing them must not
 * let a write slip between: a running target is frozen for the two steps. */
static int sd_collect(struct tracker *tr, struct target *t, const struct vma_list *vl,
		      struct range_list *d, struct ferr *err)
{
	uint64_t ps = (uint64_t)ferry_page_size(), t0 = now_ns();
	cleanup_free uint64_t *pme = malloc(PAGEMAP_CHUNK * sizeof(*pme));
	bool was_frozen = t->frozen;
	int ret = pme ? open_pagemap(tr, t, err) : ferr_sys(err, ENOMEM, "pagemap buffer");

	if (!ret && !was_frozen)
		ret = target_freeze(t, err);
	for (size_t i = 0; !ret && i < vl->n; i++) {
		const struct vma *v = &vl->v[i];

		if (!track_vma(v))
			continue;
		for (uint64_t a = v->start; !ret && a < v->end;) {
			uint64_t n = (v->end - a) / ps;

			if (n > PAGEMAP_CHUNK)
				n = PAGEMAP_CHUNK;
			ret = pread_all(tr->pagemap_fd, pme, n * sizeof(*pme), a / ps * sizeof(*pme));
			if (ret) {
				ret = ferr_sys(err, -ret, "read /proc/%d/pagemap", t->pid);
				break;
			}
			for (uint64_t k = 0; !ret && k < n; k++)
				if (pme[k] & PME_SOFT_DIRTY)
					ret = range_add_or_fail(d, a + k * ps, a + (k + 1) * ps, err);
			a += n * ps;
		}
	}
	if (!ret)
		ret = clear_soft_dirty(t, err);
	if (!was_frozen && t->frozen) {
		target_release(t);
		tr->freeze_ns += now_ns() - t0;
	}
	return ret;
}

const struct tracker_ops track_soft_dirty_ops = {
	.name = "soft-dirty",
	.arm = sd_arm,
	.collect = sd_collect,
};
