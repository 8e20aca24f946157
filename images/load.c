/* Loading the metadata files of an image being opened: each read whole and
 * checked against the inventory's size and checksum, then its entries
 * validated (vmas.img, pagemap.img) as the untrusted input they are. */
#include <endian.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "images/format.h"
#include "images/load.h"

#define IMG_META_MAX (1ULL << 30)   /* largest metadata file a reader loads */

const Ferry__ImageFile *img_inv_file(const Ferry__Inventory *inv, enum img_type t)
{
	const char *name = img_type_file(t);

	for (size_t i = 0; i < inv->n_files; i++)
		if (strcmp(inv->files[i]->name, name) == 0)
			return inv->files[i];
	return NULL;
}

int img_open_sized(int dirfd, const char *name, const char *what, uint64_t size,
		   struct ferr *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;

	if (fd < 0)
		return ferr_sys(err, errno, "open %s", what);
	if (fstat(fd, &st) < 0)
		return ferr_sys(err, errno, "stat %s", what);
	if (!S_ISREG(st.st_mode))
		return ferr_new(err, EBADMSG, "%s: not a regular file", what);
	if ((uint64_t)st.st_size != size)
		return ferr_new(err, EBADMSG, "%s: size %llu, the inventory records %llu (%s)", what,
				(unsigned long long)st.st_size, (unsigned long long)size,
				(uint64_t)st.st_size < size ? "truncated" : "grown");
	return steal_fd(fd);
}

/* Read a whole file into memory, exactly `size` bytes; a larger or smaller
 * file is an error. */
static int read_exact_file(int dirfd, const char *name, const char *what, uint64_t size,
			   uint64_t limit, uint8_t **out, struct ferr *err)
{
	cleanup_close int fd = img_open_sized(dirfd, name, what, size, err);
	cleanup_free uint8_t *buf = NULL;
	int ret;

	if (fd < 0)
		return fd;
	if (size > limit)
		return ferr_new(err, EFBIG, "%s: %llu bytes is more than a reader loads", what,
				(unsigned long long)size);
	buf = malloc(size ? size : 1);
	if (!buf)
		return ferr_sys(err, ENOMEM, "%s", what);
	ret = pread_all(fd, buf, size, 0);
	if (ret)
		return ferr_sys(err, ret == -ENODATA ? EBADMSG : -ret, "read %s", what);
	*out = steal_ptr(buf);
	return 0;
}

bool img_has_file(const struct img_image *img, enum img_type t)
{
	return img_inv_file(img->inv, t) != NULL;
}

int img_load_file(const struct img_image *img, enum img_type t, uint8_t **buf, size_t *len,
		  struct ferr *err)
{
	const Ferry__ImageFile *f = img_inv_file(img->inv, t);
	char what[PATH_MAX + 32];
	int ret;

	snprintf(what, sizeof(what), "%s/%s", img->path, img_type_file(t));
	if (!f)
		return ferr_new(err, ENOENT, "%s: not part of this dump (kind %s)", what,
				img->inv->kind == FERRY__DUMP_KIND__DUMP_PRE ? "pre-dump" : "dump");
	ret = read_exact_file(img->dirfd, f->name, what, f->size, IMG_META_MAX, buf, err);
	if (ret)
		return ret;
	if (!f->has_xxh3 || XXH3_64bits(*buf, f->size) != f->xxh3) {
		free(*buf);
		*buf = NULL;
		return ferr_new(err, EBADMSG, "%s: checksum does not match the inventory", what);
	}
	*len = f->size;
	return 0;
}

int img_load_entries(const struct img_image *img, enum img_type t,
		     const ProtobufCMessageDescriptor *desc, ProtobufCMessage ***out, size_t *n,
		     struct ferr *err)
{
	cleanup_free uint8_t *buf = NULL;
	char what[PATH_MAX + 32];
	size_t len;
	int ret;

	ret = img_load_file(img, t, &buf, &len, err);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "%s/%s", img->path, img_type_file(t));
	return img_decode_entries(buf, len, t, desc, what, out, n, err);
}

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
		else if ((v[i]->path && strnlen(v[i]->path, PATH_MAX) >= PATH_MAX) ||
			 (v[i]->name && strnlen(v[i]->name, PATH_MAX) >= PATH_MAX))
			why = "path or name longer than PATH_MAX";
		if (why)
			return ferr_new(err, EBADMSG, "%s/vmas.img: entry %zu (0x%llx-0x%llx): %s",
					img->path, i, (unsigned long long)v[i]->start,
					(unsigned long long)v[i]->end, why);
		prev_end = v[i]->end;
	}
	return 0;
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
	if (!img_vmas_cover(img, r->vaddr, r->vaddr + len))
		return "not inside the dump's VMAs";
	if ((r->flags & IMG_RUN_IN_PARENT) && !img->parent)
		return "in parent, but the dump has no parent";
	if ((r->flags & IMG_RUN_IN_PARENT) && !img_runs_cover(img->parent, r->vaddr, r->vaddr + len))
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

/* pagemap.img's first entry, its head, must match the inventory; *pos
 * moves past it. */
static int check_head(const struct img_image *img, const uint8_t *buf, size_t len, size_t *pos,
		      const char *what, struct ferr *err)
{
	Ferry__PagemapHead *head;
	uint32_t hlen;
	bool ok;

	if (len - *pos < sizeof(hlen))
		return ferr_new(err, EBADMSG, "%s: no head entry", what);
	memcpy(&hlen, buf + *pos, sizeof(hlen));
	hlen = le32toh(hlen);
	if (hlen > len - *pos - sizeof(hlen))
		return ferr_new(err, EBADMSG, "%s: entry 0: truncated head", what);
	head = ferry__pagemap_head__unpack(NULL, hlen, buf + *pos + sizeof(hlen));
	if (!head)
		return ferr_new(err, EBADMSG, "%s: entry 0: does not decode as ferry.PagemapHead",
				what);
	ok = head->page_size == img->page_size && !strcmp(head->pages_file, "pages.img");
	ferry__pagemap_head__free_unpacked(head, NULL);
	if (!ok)
		return ferr_new(err, EBADMSG, "%s: entry 0: head does not match the inventory", what);
	*pos += sizeof(hlen) + hlen;
	return 0;
}

int img_load_pagemap(struct img_image *img, struct ferr *err)
{
	ProtobufCMessage **msgs = NULL;
	cleanup_free uint8_t *buf = NULL;
	char what[PATH_MAX + 32];
	uint64_t prev_end = 0, data_end = img->page_size;
	Ferry__PagemapStats st = FERRY__PAGEMAP_STATS__INIT;
	size_t len, n = 0, pos = IMG_HEADER_SIZE;
	int ret;

	snprintf(what, sizeof(what), "%s/pagemap.img", img->path);
	ret = img_load_file(img, IMG_PAGEMAP, &buf, &len, err);
	if (ret)
		return ret;
	/* The head is one message; runs follow. Decode them as two kinds by
	 * cutting the buffer after the first entry. */
	ret = img_header_check(buf, len, IMG_PAGEMAP, what, err);
	if (!ret)
		ret = check_head(img, buf, len, &pos, what, err);
	if (ret)
		return ret;

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

