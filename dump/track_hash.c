/* The hash tracker (see track.h): a page is dirty when its XXH3 differs
 * from the one the parent recorded in hashes.img. It costs a read of every
 * page, and saves the transfer of those that did not change. */
#include <fcntl.h>
#include <string.h>
#include <xxhash.h>

#include "dump/track.h"

#define HASH_CHUNK (1u << 20)      /* bytes the hash tracker reads per call */

static int hash_arm(struct tracker *tr, struct target *t, const struct vma_list *vl,
		    struct ferr *err)
{
	(void)t;
	(void)vl;
	(void)err;
	/* Nothing to do in the target: this round's hashes.img is the baseline. */
	tr->armed = true;
	return 0;
}

/* Read [a, a+len) of the target through /proc/PID/mem (which reads PROT_NONE
 * pages too). Returns the bytes read; a range unmapped meanwhile reads short. */
static ssize_t hash_read(int mem_fd, uint8_t *buf, size_t len, uint64_t a)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(mem_fd, buf + done, len - done, (off_t)(a + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return done ? (ssize_t)done : n;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

struct hash_pos {
	const struct img_hashes *h;
	uint64_t a;
};

/* Does hash run i end at or before the address? */
static bool hash_run_before(const void *ctx, size_t i)
{
	const struct hash_pos *p = ctx;
	const struct img_hash_run *r = &p->h->runs[i];

	return r->vaddr + r->nr_pages * p->h->page_size <= p->a;
}

/* The first address at or after a that has a hash, or UINT64_MAX. */
static uint64_t hashes_next(const struct img_hashes *h, uint64_t a)
{
	struct hash_pos p = { h, a };
	size_t i = bsearch_first(h->n, hash_run_before, &p);

	if (i == h->n)
		return UINT64_MAX;
	return h->runs[i].vaddr > a ? h->runs[i].vaddr : a;
}

/* Pages of v whose hash differs from the parent's, or that the parent has no
 * hash for, are dirty. Only pages with a parent hash are read. */
static int hash_vma(struct tracker *tr, int mem_fd, uint8_t *buf, const struct vma *v,
		    struct range_list *d, struct ferr *err)
{
	uint64_t ps = (uint64_t)ferry_page_size(), a = v->start;
	int ret = 0;

	while (!ret && a < v->end) {
		uint64_t avail = 0, n;
		const uint64_t *h = img_hashes_find(&tr->prev, a, &avail);
		ssize_t got;

		if (!h) {
			/* No hash here: dirty up to the next page that has one. */
			uint64_t next = hashes_next(&tr->prev, a);

			if (next > v->end)
				next = v->end;
			ret = range_add_or_fail(d, a, next, err);
			a = next;
			continue;
		}
		n = avail;
		if (n > (v->end - a) / ps)
			n = (v->end - a) / ps;
		if (n > HASH_CHUNK / ps)
			n = HASH_CHUNK / ps;
		got = hash_read(mem_fd, buf, n * ps, a);
		if (got < 0 && errno == ESRCH)
			return ferr_new(err, ESRCH, "the process exited during the hash scan");
		for (uint64_t k = 0; !ret && k < n; k++) {
			bool same = got >= 0 && (uint64_t)got >= (k + 1) * ps &&
				    XXH3_64bits(buf + k * ps, ps) == h[k];

			if (!same)
				ret = range_add_or_fail(d, a + k * ps, a + (k + 1) * ps, err);
		}
		a += n * ps;
	}
	return ret;
}

static int hash_collect(struct tracker *tr, struct target *t, const struct vma_list *vl,
			struct range_list *d, struct ferr *err)
{
	cleanup_free uint8_t *buf = NULL;
	cleanup_close int mem_fd = -1;
	int ret;

	img_hashes_free(&tr->prev);
	ret = tr->parent ? img_hashes_load(tr->parent, &tr->prev, err) : -ENOENT;
	if (ret == -ENOENT) {
		/* No hashes to compare with: everything is dirty. */
		for (size_t i = 0; i < vl->n; i++)
			if (track_vma(&vl->v[i]) && range_add(d, vl->v[i].start, vl->v[i].end))
				return ferr_sys(err, ENOMEM, "dirty ranges");
		return 0;
	}
	if (ret)
		return ret;
	buf = malloc(HASH_CHUNK);
	mem_fd = openat(t->procfd, "mem", O_RDONLY | O_CLOEXEC);
	if (!buf || mem_fd < 0)
		ret = ferr_sys(err, buf ? errno : ENOMEM, "hash tracker: open /proc/%d/mem", t->pid);
	for (size_t i = 0; !ret && i < vl->n; i++)
		if (track_vma(&vl->v[i]))
			ret = hash_vma(tr, mem_fd, buf, &vl->v[i], d, err);
	img_hashes_free(&tr->prev);
	return ret;
}

const struct tracker_ops track_hash_ops = {
	.name = "hash",
	.arm = hash_arm,
	.collect = hash_collect,
};
