/* VMAs and the pagemap of an open image: validation of every run, resolution
 * of a page through the parent chain, and checksum verification. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/par.h"
#include "images/format.h"
#include "images/reader.h"

#define VERIFY_CHUNK (1u << 20)
#define VERIFY_PARALLEL_MIN (64u << 20) /* less data than this: one thread */

int img_load_vmas(struct img_image *img, struct ferr *err)
{
	uint64_t ps = img->page_size, prev_end = 0;
	Ferry__Vma **v;
	int ret;

	ret = img_load_entries(img, IMG_VMAS, &ferry__vma__descriptor,
			       (ProtobufCMessage ***)&img->vmas, &img->nr_vmas, err);
	if (ret)
		return ret;
	v = img->vmas;
	for (size_t i = 0; i < img->nr_vmas; i++) {
		const char *why = NULL;

		if (v[i]->start % ps || v[i]->end % ps)
			why = "not page-aligned";
		else if (v[i]->start >= v[i]->end)
			why = "empty or inverted";
		else if (v[i]->end > IMG_ADDR_LIMIT)
			why = "beyond the user address space";
		else if (v[i]->start < prev_end)
			why = "overlaps or is out of order with the previous VMA";
		else if (v[i]->kind < FERRY__VMA_KIND__VMA_ANON || v[i]->kind > FERRY__VMA_KIND__VMA_SPECIAL)
			why = "unknown kind";
		else if (v[i]->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC))
			why = "unknown protection bits";
		else if (!(v[i]->flags & MAP_SHARED) == !(v[i]->flags & MAP_PRIVATE))
			why = "neither shared nor private";
		else if (v[i]->kind == FERRY__VMA_KIND__VMA_FILE && !v[i]->path)
			why = "file mapping without a path";
		if (why)
			return ferr_new(err, EBADMSG, "%s/vmas.img: entry %zu (0x%llx-0x%llx): %s",
					img->path, i, (unsigned long long)v[i]->start,
					(unsigned long long)v[i]->end, why);
		prev_end = v[i]->end;
	}
	return 0;
}

/* Index of the last VMA starting at or below addr, or -1. */
static ssize_t vma_floor(const struct img_image *img, uint64_t addr)
{
	size_t lo = 0, hi = img->nr_vmas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (img->vmas[mid]->start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (ssize_t)lo - 1;
}

const Ferry__Vma *img_vma_at(const struct img_image *img, uint64_t addr)
{
	ssize_t i = vma_floor(img, addr);

	return i >= 0 && img->vmas[i]->end > addr ? img->vmas[i] : NULL;
}

/* Is [start, end) covered by VMAs without a gap? */
static bool vmas_cover(const struct img_image *img, uint64_t start, uint64_t end)
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

/* Index of the run containing addr, or -1. */
/* Index of the last run starting at or below addr, or -1. */
static ssize_t run_floor(const struct img_image *img, uint64_t addr)
{
	size_t lo = 0, hi = img->nr_runs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (img->runs[mid].vaddr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (ssize_t)lo - 1;
}

static uint64_t run_end(const struct img_image *img, size_t i)
{
	return img->runs[i].vaddr + img->runs[i].nr_pages * img->page_size;
}

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

/* Is [start, end) described by img's runs without a gap? */
static bool runs_cover(const struct img_image *img, uint64_t start, uint64_t end)
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

static const char *check_run(const struct img_image *img, const Ferry__PagemapRun *r,
			     uint64_t prev_end, uint64_t *data_end)
{
	uint64_t ps = img->page_size, len;

	if (r->flags & ~IMG_RUN_FLAGS_KNOWN)
		return "unknown flags";
	if ((r->flags & IMG_RUN_IN_PARENT) && (r->flags & IMG_RUN_ZERO))
		return "both in-parent and zero";
	if (!r->nr_pages)
		return "no pages";
	if (r->vaddr % ps)
		return "address not page-aligned";
	if (r->vaddr >= IMG_ADDR_LIMIT || r->nr_pages > (IMG_ADDR_LIMIT - r->vaddr) / ps)
		return "beyond the user address space";
	if (r->vaddr < prev_end)
		return "overlaps or is out of order with the previous run";
	len = r->nr_pages * ps;
	if (!vmas_cover(img, r->vaddr, r->vaddr + len))
		return "not inside the dump's VMAs";
	if ((r->flags & IMG_RUN_IN_PARENT) && !img->parent)
		return "in parent, but the dump has no parent";
	if ((r->flags & IMG_RUN_IN_PARENT) && !runs_cover(img->parent, r->vaddr, r->vaddr + len))
		return "in parent, but the parent does not have these pages";
	if (r->flags) {
		if (r->has_offset || r->has_xxh3)
			return "carries data fields without data";
		return NULL;
	}
	if (!r->has_offset || !r->has_xxh3)
		return "data run without offset or checksum";
	if (r->offset % ps)
		return "data offset not page-aligned";
	if (r->offset < *data_end)
		return "data overlaps the previous run's data or the header";
	if (r->offset > img->pages_size || len > img->pages_size - r->offset)
		return "data offset past the end of pages.img";
	*data_end = r->offset + len;
	return NULL;
}

int img_load_pagemap(struct img_image *img, struct ferr *err)
{
	ProtobufCMessage **msgs = NULL;
	Ferry__PagemapHead *head = NULL;
	cleanup_free uint8_t *buf = NULL;
	char what[PATH_MAX + 32];
	uint64_t prev_end = 0, data_end = img->page_size;
	Ferry__PagemapStats st = FERRY__PAGEMAP_STATS__INIT;
	size_t len, n = 0, pos;
	int ret;

	snprintf(what, sizeof(what), "%s/pagemap.img", img->path);
	ret = img_load_file(img, IMG_PAGEMAP, &buf, &len, err);
	if (ret)
		return ret;
	/* The head is one message; runs follow. Decode them as two kinds by
	 * cutting the buffer after the first entry. */
	ret = img_header_check(buf, len, IMG_PAGEMAP, what, err);
	if (ret)
		return ret;
	pos = IMG_HEADER_SIZE;
	{
		uint32_t hlen;
		if (len - pos < sizeof(hlen))
			return ferr_new(err, EBADMSG, "%s: no head entry", what);
		memcpy(&hlen, buf + pos, sizeof(hlen));
		hlen = le32toh(hlen);
		if (hlen > len - pos - sizeof(hlen))
			return ferr_new(err, EBADMSG, "%s: entry 0: truncated head", what);
		head = ferry__pagemap_head__unpack(NULL, hlen, buf + pos + sizeof(hlen));
		if (!head)
			return ferr_new(err, EBADMSG, "%s: entry 0: does not decode as ferry.PagemapHead",
					what);
		pos += sizeof(hlen) + hlen;
	}
	if (head->page_size != img->page_size || strcmp(head->pages_file, "pages.img")) {
		ferry__pagemap_head__free_unpacked(head, NULL);
		return ferr_new(err, EBADMSG, "%s: entry 0: head does not match the inventory", what);
	}
	ferry__pagemap_head__free_unpacked(head, NULL);

	/* Re-frame the rest behind a copy of the header so the generic decoder
	 * reads it (what was before the runs is the header plus the head entry). */
	pos -= IMG_HEADER_SIZE;
	memmove(buf + pos, buf, IMG_HEADER_SIZE);
	ret = img_decode_entries(buf + pos, len - pos, IMG_PAGEMAP, &ferry__pagemap_run__descriptor,
				 what, &msgs, &n, err);
	if (ret)
		return ret;
	img->runs = calloc(n ? n : 1, sizeof(*img->runs));
	if (!img->runs) {
		img_free_entries(msgs, n);
		return ferr_sys(err, ENOMEM, "%s", what);
	}
	for (size_t i = 0; i < n; i++) {
		const Ferry__PagemapRun *r = (const Ferry__PagemapRun *)msgs[i];
		const char *why = check_run(img, r, prev_end, &data_end);

		if (why) {
			ret = ferr_new(err, EBADMSG, "%s: entry %zu (run 0x%llx, %llu pages): %s", what,
				       i + 1, (unsigned long long)r->vaddr,
				       (unsigned long long)r->nr_pages, why);
			break;
		}
		img->runs[i] = (struct img_run){ .vaddr = r->vaddr, .nr_pages = r->nr_pages,
						 .offset = r->offset, .xxh3 = r->xxh3,
						 .flags = r->flags };
		prev_end = r->vaddr + r->nr_pages * img->page_size;
		st.runs++;
		st.pages += r->nr_pages;
		if (r->flags & IMG_RUN_IN_PARENT)
			st.parent_pages += r->nr_pages;
		else if (r->flags & IMG_RUN_ZERO)
			st.zero_pages += r->nr_pages;
		else
			st.data_pages += r->nr_pages;
	}
	img_free_entries(msgs, n);
	if (ret)
		return ret;
	img->nr_runs = n;
	if (img->inv->stats) {
		const Ferry__PagemapStats *s = img->inv->stats;
		if (s->runs != st.runs || s->pages != st.pages || s->data_pages != st.data_pages ||
		    s->parent_pages != st.parent_pages || s->zero_pages != st.zero_pages)
			return ferr_new(err, EBADMSG, "%s: run counts do not match the inventory's stats",
					what);
	}
	return 0;
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

/* One verifier: runs [first, last) of one image, with its own buffer. */
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
	uint8_t *chunk = malloc(VERIFY_CHUNK);
	XXH3_state_t *st = XXH3_createState();

	if (!chunk || !st) {
		v->io_err = -ENOMEM;
		goto out;
	}
	for (size_t i = v->first; i < v->last; i++) {
		const struct img_run *r = &img->runs[i];
		uint64_t left = r->nr_pages * img->page_size, off = r->offset;

		if (r->flags)
			continue;
		XXH3_64bits_reset(st);
		while (left) {
			size_t n = left < VERIFY_CHUNK ? (size_t)left : VERIFY_CHUNK;
			int rr = pread_all(img->pages_fd, chunk, n, off);

			if (rr) {
				v->io_err = rr;
				goto out;
			}
			XXH3_64bits_update(st, chunk, n);
			off += n;
			left -= n;
		}
		v->runs++;
		v->bytes += r->nr_pages * img->page_size;
		if (XXH3_64bits_digest(st) != r->xxh3 && !v->bad++)
			v->first_bad = i;
	}
out:
	XXH3_freeState(st);
	free(chunk);
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
