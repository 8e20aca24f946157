/* Lookups in an open image's sorted VMAs and runs, resolution of a page
 * through the parent chain, reading pages, and checksum verification. */
#include <string.h>

#include "common/par.h"
#include "images/format.h"
#include "images/load.h"
#include "images/window.h"

#define VERIFY_PARALLEL_MIN (64u << 20) /* less data than this: one thread */

/* An address to look up in one image's sorted tables. */
struct img_key {
	const struct img_image *img;
	uint64_t addr;
};

static bool vma_starts_at_or_below(const void *ctx, size_t i)
{
	const struct img_key *k = ctx;

	return k->img->vmas[i]->start <= k->addr;
}

static bool run_starts_at_or_below(const void *ctx, size_t i)
{
	const struct img_key *k = ctx;

	return k->img->runs[i].vaddr <= k->addr;
}

/* Index of the last VMA starting at or below addr, or -1. */
static ssize_t vma_floor(const struct img_image *img, uint64_t addr)
{
	struct img_key k = { img, addr };

	return (ssize_t)bsearch_first(img->nr_vmas, vma_starts_at_or_below, &k) - 1;
}

const Ferry__Vma *img_vma_at(const struct img_image *img, uint64_t addr)
{
	ssize_t i = vma_floor(img, addr);

	return i >= 0 && img->vmas[i]->end > addr ? img->vmas[i] : NULL;
}

bool img_vmas_cover(const struct img_image *img, uint64_t start, uint64_t end)
{
	ssize_t i = vma_floor(img, start);

	if (i < 0 || img->vmas[i]->end <= start)
		return false;
	while (img->vmas[i]->end < end) {
		if ((size_t)i + 1 >= img->nr_vmas || img->vmas[i + 1]->start != img->vmas[i]->end)
			return false;
		i++;
	}
	return true;
}

/* Index of the last run starting at or below addr, or -1. */
static ssize_t run_floor(const struct img_image *img, uint64_t addr)
{
	struct img_key k = { img, addr };

	return (ssize_t)bsearch_first(img->nr_runs, run_starts_at_or_below, &k) - 1;
}

static uint64_t run_end(const struct img_image *img, size_t i)
{
	return img->runs[i].vaddr + img->runs[i].nr_pages * img->page_size;
}

/* Index of the run containing addr, or -1. */
static ssize_t run_find(const struct img_image *img, uint64_t addr)
{
	ssize_t i = run_floor(img, addr);

	return i >= 0 && addr < run_end(img, (size_t)i) ? i : -1;
}

bool img_has_runs(const struct img_image *img, uint64_t start, uint64_t end)
{
	ssize_t i = run_floor(img, start);

	if (i >= 0 && start < run_end(img, (size_t)i))
		return true;
	return (size_t)(i + 1) < img->nr_runs && img->runs[i + 1].vaddr < end;
}

bool img_runs_cover(const struct img_image *img, uint64_t start, uint64_t end)
{
	ssize_t i = run_find(img, start);

	if (i < 0)
		return false;
	for (;;) {
		uint64_t rend = img->runs[i].vaddr + img->runs[i].nr_pages * img->page_size;
		if (rend >= end)
			return true;
		if ((size_t)i + 1 >= img->nr_runs || img->runs[i + 1].vaddr != rend)
			return false;
		i++;
	}
}

int img_resolve(const struct img_image *img, uint64_t vaddr, struct img_page_loc *loc)
{
	while (img) {
		ssize_t i = run_find(img, vaddr);

		if (i < 0)
			return -ENOENT;
		if (!(img->runs[i].flags & IMG_RUN_IN_PARENT)) {
			loc->img = img;
			loc->run = &img->runs[i];
			return 0;
		}
		img = img->parent;
	}
	return -ENOENT;
}

/* An in-parent run of a child may end before the parent's run does: limit n
 * pages at vaddr to what every image from top down to owner agrees on. */
uint64_t img_chain_span(const struct img_image *top, const struct img_image *owner,
			   uint64_t vaddr, uint64_t n)
{
	for (; top != owner; top = top->parent) {
		const struct img_run *r = &top->runs[run_find(top, vaddr)];
		uint64_t left = r->nr_pages - (vaddr - r->vaddr) / top->page_size;

		if (left < n)
			n = left;
	}
	return n;
}

int img_read_pages(const struct img_image *img, uint64_t vaddr, uint64_t nr_pages, void *buf,
		   struct ferr *err)
{
	uint64_t ps = img->page_size;
	uint8_t *out = buf;

	if (vaddr % ps)
		return ferr_new(err, EINVAL, "read pages at unaligned 0x%llx", (unsigned long long)vaddr);
	while (nr_pages) {
		struct img_page_loc loc;
		uint64_t in_run, n;
		int ret;

		if (img_resolve(img, vaddr, &loc))
			return ferr_new(err, ENOENT, "%s: page 0x%llx is not in the dump", img->path,
					(unsigned long long)vaddr);
		in_run = (vaddr - loc.run->vaddr) / ps;
		n = loc.run->nr_pages - in_run;
		if (n > nr_pages)
			n = nr_pages;
		n = img_chain_span(img, loc.img, vaddr, n);
		if (loc.run->flags & IMG_RUN_ZERO) {
			memset(out, 0, n * ps);
		} else {
			ret = pread_all(loc.img->pages_fd, out, n * ps, loc.run->offset + in_run * ps);
			if (ret)
				return ferr_sys(err, -ret, "read %s/pages.img", loc.img->path);
		}
		out += n * ps;
		vaddr += n * ps;
		nr_pages -= n;
	}
	return 0;
}

#define VERIFY_THREADS 4

/* One verifier: runs [first, last) of one image, read through a window. */
struct verifier {
	const struct img_image *img;
	size_t first, last;
	uint64_t runs, bytes, bad;
	size_t first_bad;   /* index of its first bad run */
	int io_err;         /* -errno of a failed read */
};

static void *verify_runs(void *arg)
{
	struct verifier *v = arg;
	const struct img_image *img = v->img;
	cleanup(XXH3_state_s) XXH3_state_t *st = XXH3_createState();
	cleanup_val(img_window) struct img_window w = { 0 };

	if (!st || img_window_init(&w, IMG_WINDOW_SIZE)) {
		v->io_err = -ENOMEM;
		return NULL;
	}
	for (size_t i = v->first; i < v->last; i++) {
		const struct img_run *r = &img->runs[i];
		uint64_t left = r->nr_pages * img->page_size, off = r->offset;

		if (r->flags)
			continue;
		XXH3_64bits_reset(st);
		while (left) {
			uint64_t n = left < w.cap ? left : w.cap;
			const uint8_t *d = img_window_get(&w, img->pages_fd, img->pages_size, off, n,
							  &v->io_err);

			if (!d)
				return NULL;
			XXH3_64bits_update(st, d, n);
			off += n;
			left -= n;
		}
		v->runs++;
		v->bytes += r->nr_pages * img->page_size;
		if (XXH3_64bits_digest(st) != r->xxh3 && !v->bad++)
			v->first_bad = i;
	}
	return NULL;
}

/* Check one image's runs on up to VERIFY_THREADS threads, each taking a
 * contiguous share of the data; the first bad run in address order is the
 * one reported. */
static int verify_image(const struct img_image *img, struct img_verify_report *rep,
			struct ferr *err)
{
	struct verifier v[VERIFY_THREADS];
	uint64_t total = 0, acc = 0;
	size_t nv, next = 0, bad_idx = SIZE_MAX;
	int ret = 0;

	for (size_t i = 0; i < img->nr_runs; i++)
		total += img->runs[i].flags ? 0 : img->runs[i].nr_pages;
	nv = par_workers(VERIFY_THREADS, total * img->page_size, VERIFY_PARALLEL_MIN);
	for (size_t t = 0; t < nv; t++) {
		v[t] = (struct verifier){ .img = img, .first = next };
		while (next < img->nr_runs && (t == nv - 1 || acc * nv < total * (t + 1))) {
			if (!img->runs[next].flags)
				acc += img->runs[next].nr_pages;
			next++;
		}
		v[t].last = next;
	}
	par_run(v, nv, sizeof(v[0]), verify_runs);
	for (size_t t = 0; t < nv; t++) {
		rep->runs_checked += v[t].runs;
		rep->bytes_checked += v[t].bytes;
		rep->bad_runs += v[t].bad;
		if (v[t].io_err && !ret)
			ret = ferr_sys(err, v[t].io_err == -ENODATA ? EBADMSG : -v[t].io_err,
				       "read %s/pages.img", img->path);
		if (v[t].bad && v[t].first_bad < bad_idx)
			bad_idx = v[t].first_bad;
	}
	if (!ret && bad_idx != SIZE_MAX) {
		const struct img_run *r = &img->runs[bad_idx];

		ret = ferr_new(err, EBADMSG, "%s/pages.img: run at 0x%llx (%llu pages, offset %llu): "
			       "checksum mismatch", img->path, (unsigned long long)r->vaddr,
			       (unsigned long long)r->nr_pages, (unsigned long long)r->offset);
	}
	return ret;
}

int img_verify(const struct img_image *img, struct img_verify_report *rep, struct ferr *err)
{
	int first = 0;

	memset(rep, 0, sizeof(*rep));
	for (; img; img = img->parent) {
		struct ferr e2;
		int ret = verify_image(img, rep, first ? &e2 : err);

		rep->images++;
		if (ret && !first)
			first = ret;
		if (ret && ret != -EBADMSG)
			return first;
	}
	return first;
}

int img_verify_one(const struct img_image *img, struct img_verify_report *rep, struct ferr *err)
{
	memset(rep, 0, sizeof(*rep));
	rep->images = 1;
	return verify_image(img, rep, err);
}
