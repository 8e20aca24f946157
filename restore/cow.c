/* Private memory a parent and its children shared copy-on-write, restored
 * shared. A child forked after the parent's memory was built would inherit
 * it page for page; ferry's processes start as stubs (forks of ferry, child.c)
 * and get their memory from outside afterwards, so the sharing is made in
 * the stubs instead:
 *   - plan (in ferry, from the images): each private anonymous VMA a child
 *     has at exactly the place its parent has one, with pages in the
 *     parent's image, is the parent's to pass on (or, if the parent
 *     inherited it too, the ancestor's that first had it);
 *   - every such VMA gets a place of its own in one area free in ferry and in
 *     every dumped layout, which ferry reserves (PROT_NONE, nothing
 *     committed) before the root stub is forked, so every stub has it;
 *   - each owner's stub maps its VMAs there and reads its pages into them
 *     before it forks its children, who inherit them copy-on-write;
 *   - when ferry builds a process's memory (mem.c), a VMA it holds is moved
 *     to its dumped address instead of mapped anew, and fill.c writes only
 *     the pages in which the process differs from the owner (and drops
 *     those the process does not have).
 * Pages a child never wrote after the fork are then one page in memory
 * again, as before the dump. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "restore/rst.h"

#define COW_REGION_MAX (16ULL << 30)  /* a larger VMA (a reservation) is not passed on */
#define COW_AREA_MAX (64ULL << 30)
#define COW_MARGIN (2ULL << 20)       /* between the area and any dumped VMA */
#define COW_TRIES 64

static bool passable(const struct img_image *img, const Ferry__Vma *v)
{
	return (v->kind == FERRY__VMA_KIND__VMA_ANON || v->kind == FERRY__VMA_KIND__VMA_HEAP) &&
	       !(v->flags & (MAP_SHARED | MAP_GROWSDOWN)) && !v->has_shm_id &&
	       v->end - v->start <= COW_REGION_MAX && img_has_runs(img, v->start, v->end);
}

static const Ferry__Vma *same_vma(const struct img_image *img, const Ferry__Vma *v)
{
	const Ferry__Vma *w = img_vma_at(img, v->start);

	return w && w->start == v->start && w->end == v->end ? w : NULL;
}

const struct rst_cow *rst_cow_held(const struct rst *r, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < r->nr_cow; i++)
		if (r->cow[i]->start == start && r->cow[i]->end == end)
			return r->cow[i];
	return NULL;
}

static int hold(struct rst *r, const struct rst_cow *c, struct ferr *err)
{
	const struct rst_cow **v = realloc(r->cow, (r->nr_cow + 1) * sizeof(*v));

	if (!v)
		return ferr_sys(err, ENOMEM, "shared memory plan");
	r->cow = v;
	r->cow[r->nr_cow++] = c;
	return 0;
}

static size_t parent_of(const struct rst_tree *t, size_t i)
{
	for (size_t k = 0; k < t->n; k++)
		if (t->tp[k]->pid == t->tp[i]->ppid)
			return k;
	return SIZE_MAX;
}

/* Which VMAs pass from parent to child: indices into t->cow, owners set,
 * places not yet. A parent is planned before its children (by depth). */
static int plan_vmas(struct rst_tree *t, size_t cap, uint64_t *total, struct ferr *err)
{
	size_t *depth = calloc(t->n, sizeof(*depth)), max = 0;
	int ret = 0;

	if (!depth)
		return ferr_sys(err, ENOMEM, "shared memory plan");
	for (size_t i = 1; i < t->n; i++)
		for (size_t p = parent_of(t, i); p != SIZE_MAX && p; p = parent_of(t, p))
			if (++depth[i] > max)
				max = depth[i];
	*total = 0;
	for (size_t d = 0; d <= max && !ret; d++) {
		for (size_t i = 1; i < t->n && !ret; i++) {
			size_t p = parent_of(t, i);
			struct rst *c = t->r[i], *pr = p == SIZE_MAX ? NULL : t->r[p];

			if (depth[i] != d || !c || !pr)
				continue;
			for (size_t k = 0; k < c->img->nr_vmas && !ret; k++) {
				const Ferry__Vma *v = c->img->vmas[k], *w = same_vma(pr->img, v);
				const struct rst_cow *had = rst_cow_held(pr, v->start, v->end);
				uint64_t len = v->end - v->start;

				if (!w || v->kind != w->kind || !passable(c->img, v))
					continue;
				if (!had) {
					if (!passable(pr->img, w) || *total + len > COW_AREA_MAX)
						continue;
					/* Held by pointer: t->cow is sized
					 * once, a region per child VMA. */
					if (t->nr_cow == cap) {
						ret = ferr_new(err, EOVERFLOW, "shared memory plan");
						break;
					}
					t->cow[t->nr_cow] = (struct rst_cow){ v->start, v->end, 0, pr };
					had = &t->cow[t->nr_cow++];
					*total += len + (uint64_t)ferry_page_size();
					ret = hold(pr, had, err);
				}
				if (!ret)
					ret = hold(c, had, err);
			}
		}
	}
	free(depth);
	return ret;
}

/* Does [a, a + len) (with a margin) touch a dumped VMA of any process? */
static const Ferry__Vma *clashes(const struct rst_tree *t, uint64_t a, uint64_t len)
{
	for (size_t i = 0; i < t->n; i++)
		for (size_t k = 0; t->r[i] && k < t->r[i]->img->nr_vmas; k++) {
			const Ferry__Vma *v = t->r[i]->img->vmas[k];

			if (a < v->end + COW_MARGIN && v->start < a + len + COW_MARGIN)
				return v;
		}
	return NULL;
}

/* An area of len free in ferry (reserved: the stubs inherit it) and clear
 * of every dumped layout: where the kernel puts it, else below what it hit. */
static void *reserve(const struct rst_tree *t, uint64_t len)
{
	uint64_t hint = 0;

	for (int n = 0; n < COW_TRIES; n++) {
		int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			    (hint ? MAP_FIXED_NOREPLACE : 0);
		void *a = mmap((void *)(uintptr_t)hint, len, PROT_NONE, flags, -1, 0);
		const Ferry__Vma *v;

		if (a == MAP_FAILED) {
			if (!hint || errno != EEXIST)
				return NULL;
			hint -= 64ULL << 20; /* something of ferry's there: lower */
			continue;
		}
		v = clashes(t, (uintptr_t)a, len);
		if (!v)
			return a;
		munmap(a, len);
		if (v->start < len + 2 * COW_MARGIN + (1ULL << 32))
			return NULL;
		hint = (v->start - len - 2 * COW_MARGIN) & ~((1ULL << 21) - 1);
	}
	return NULL;
}

int rst_cow_plan(struct rst_tree *t, struct ferr *err)
{
	uint64_t total = 0, off = 0, ps = (uint64_t)ferry_page_size();
	size_t vmas = 0;
	int ret;

	if (t->n < 2)
		return 0;
	if (fault_hit("restore-no-cow")) {
		pr_info("memory shared copy-on-write in the tree: not kept (FERRY_FAULT)");
		return 0;
	}
	for (size_t i = 1; i < t->n; i++)
		vmas += t->r[i] ? t->r[i]->img->nr_vmas : 0;
	if (!vmas)
		return 0;
	t->cow = calloc(vmas, sizeof(*t->cow));
	if (!t->cow)
		return ferr_sys(err, ENOMEM, "shared memory plan");
	ret = plan_vmas(t, vmas, &total, err);
	if (ret || !t->nr_cow) {
		rst_cow_free(t);
		return ret;
	}
	total += ps; /* a guard page first: nothing of the stub's merges with one */
	t->cow_area = reserve(t, total);
	if (!t->cow_area) {
		pr_info("memory shared copy-on-write in the tree: no room for %" PRIu64 " MiB "
			"next to the dumped layouts; each process gets its own copy",
			total >> 20);
		rst_cow_free(t);
		return 0;
	}
	t->cow_len = total;
	off = ps;
	for (size_t k = 0; k < t->nr_cow; k++) {
		t->cow[k].tmp = (uintptr_t)t->cow_area + off;
		off += t->cow[k].end - t->cow[k].start + ps; /* and one after each */
	}
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i]) {
			t->r[i]->cow_lo = (uintptr_t)t->cow_area;
			t->r[i]->cow_hi = (uintptr_t)t->cow_area + total;
		}
	pr_debug("memory shared copy-on-write in the tree: %zu VMA(s), %" PRIu64 " MiB at 0x%"
		 PRIx64, t->nr_cow, total >> 20, (uint64_t)(uintptr_t)t->cow_area);
	return 0;
}

void rst_cow_unreserve(struct rst_tree *t)
{
	if (t->cow_area)
		munmap(t->cow_area, t->cow_len);
	t->cow_area = NULL;
}

void rst_cow_free(struct rst_tree *t)
{
	rst_cow_unreserve(t);
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i]) {
			free(t->r[i]->cow);
			t->r[i]->cow = NULL;
			t->r[i]->nr_cow = 0;
			t->r[i]->cow_lo = t->r[i]->cow_hi = 0;
		}
	free(t->cow);
	t->cow = NULL;
	t->nr_cow = 0;
	t->cow_len = 0;
}

/* The owner's pages of [c->start, c->end) into the stub's copy at c->tmp:
 * zero runs and pages not in the dump are left as the fresh mapping's zeroes. */
static const char *read_into(const struct img_image *img, const struct rst_cow *c, char *why,
			     size_t len)
{
	uint64_t ps = img->page_size;
	uint8_t *to = (uint8_t *)(uintptr_t)c->tmp;

	for (size_t k = 0; k < img->nr_runs; k++) {
		const struct img_run *run = &img->runs[k];
		uint64_t a = run->vaddr > c->start ? run->vaddr : c->start;
		uint64_t e = run->vaddr + run->nr_pages * ps;

		if (e > c->end)
			e = c->end;
		while (a < e) {
			struct img_page_loc loc;
			uint64_t in_run, n;

			if (img_resolve(img, a, &loc)) {
				snprintf(why, len, "page 0x%" PRIx64 " is in no image", a);
				return why;
			}
			in_run = (a - loc.run->vaddr) / ps;
			n = loc.run->nr_pages - in_run;
			if (n > (e - a) / ps)
				n = (e - a) / ps;
			n = img_chain_span(img, loc.img, a, n);
			if (!(loc.run->flags & IMG_RUN_ZERO) &&
			    pread_all(loc.img->pages_fd, to + (a - c->start), n * ps,
				      loc.run->offset + in_run * ps)) {
				snprintf(why, len, "read %s/pages.img: %s", loc.img->path,
					 strerror(errno));
				return why;
			}
			a += n * ps;
		}
	}
	return NULL;
}

const char *rst_cow_premap(const struct rst_tree *t, size_t i, char *why, size_t len)
{
	const struct rst *r = t->r[i];

	for (size_t k = 0; r && k < t->nr_cow; k++) {
		const struct rst_cow *c = &t->cow[k];
		uint64_t n = c->end - c->start;
		int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
		void *a;

		if (c->owner != r)
			continue;
		a = mmap((void *)(uintptr_t)c->tmp, n, PROT_READ | PROT_WRITE, flags, -1, 0);
		/* As mem.c: a mapping over the commit limit was MAP_NORESERVE. */
		if (a == MAP_FAILED && errno == ENOMEM)
			a = mmap((void *)(uintptr_t)c->tmp, n, PROT_READ | PROT_WRITE,
				 flags | MAP_NORESERVE, -1, 0);
		if (a == MAP_FAILED) {
			snprintf(why, len, "map 0x%" PRIx64 "-0x%" PRIx64 " for its children: %s",
				 c->start, c->end, strerror(errno));
			return why;
		}
		if (read_into(r->img, c, why, len))
			return why;
	}
	return NULL;
}
