/* Page runs of a dump being written: zero, in-parent and data runs, merged
 * while they continue; page data into pages.img or a sink; hashes.img. */
#include <fcntl.h>
#include <string.h>

#include "images/writer.h"

int img_writer_emit_run(struct img_writer *w, struct ferr *err)
{
	Ferry__PagemapRun r = FERRY__PAGEMAP_RUN__INIT;
	int ret;

	if (!w->have_run)
		return 0;
	r.vaddr = w->run.vaddr;
	r.nr_pages = w->run.nr_pages;
	r.flags = w->run.flags;
	if (!w->run.flags) {
		r.has_offset = r.has_xxh3 = true;
		r.offset = w->run.offset;
		r.xxh3 = w->run_prehashed ? w->run.xxh3 : XXH3_64bits_digest(w->run_hash);
		w->stats.data_pages += r.nr_pages;
	} else if (w->run.flags & IMG_RUN_ZERO) {
		w->stats.zero_pages += r.nr_pages;
	} else {
		w->stats.parent_pages += r.nr_pages;
	}
	w->stats.runs++;
	w->stats.pages += r.nr_pages;
	w->have_run = false;
	w->run_prehashed = false;
	ret = img_fw_entry(&w->files[IMG_PAGEMAP], &r.base, err);
	return ret;
}

static int writer_check_range(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages,
			      struct ferr *err)
{
	uint64_t ps = w->page_size;

	if (w->committed)
		return ferr_new(err, EINVAL, "%s: pages added after commit", w->path);
	if (!nr_pages || vaddr % ps || nr_pages > (IMG_ADDR_LIMIT - vaddr) / ps ||
	    vaddr >= IMG_ADDR_LIMIT)
		return ferr_new(err, EINVAL, "%s: bad page run 0x%llx + %llu pages", w->path,
				(unsigned long long)vaddr, (unsigned long long)nr_pages);
	if (vaddr < w->next_vaddr)
		return ferr_new(err, EINVAL, "%s: page run 0x%llx is below the previous one (runs go in "
				"ascending order)", w->path, (unsigned long long)vaddr);
	return 0;
}

static bool run_continues(const struct img_writer *w, uint64_t vaddr, uint32_t flags)
{
	return w->have_run && !w->run_prehashed && w->run.flags == flags &&
	       w->run.vaddr + w->run.nr_pages * w->page_size == vaddr;
}

/* Zero and in-parent runs carry no data: extend or start one. */
static int writer_flag_run(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages, uint32_t flags,
			   struct ferr *err)
{
	int ret = writer_check_range(w, vaddr, nr_pages, err);

	if (ret)
		return ret;
	if (!run_continues(w, vaddr, flags)) {
		ret = img_writer_emit_run(w, err);
		if (ret)
			return ret;
		w->have_run = true;
		w->run = (struct img_run){ .vaddr = vaddr, .flags = flags };
	}
	w->run.nr_pages += nr_pages;
	w->next_vaddr = vaddr + nr_pages * w->page_size;
	return 0;
}

/* ---- hashes.img: one entry per call, the hash of each page ------------ */

static int hashes_entry(struct img_writer *w, uint64_t vaddr, size_t n, struct ferr *err)
{
	Ferry__PageHashes e = FERRY__PAGE_HASHES__INIT;

	e.vaddr = vaddr;
	e.n_xxh3 = n;
	e.xxh3 = w->hbuf;
	return img_fw_entry(&w->files[IMG_HASHES], &e.base, err);
}

/* The hashes of nr pages at vaddr: of the data at p, or of zeroes if p is NULL. */
static int hashes_of(struct img_writer *w, uint64_t vaddr, const uint8_t *p, uint64_t nr,
		     struct ferr *err)
{
	while (nr) {
		size_t n = nr < IMG_HASH_ENTRY_PAGES ? nr : IMG_HASH_ENTRY_PAGES;
		int ret;

		for (size_t i = 0; i < n; i++)
			w->hbuf[i] = p ? XXH3_64bits(p + i * w->page_size, w->page_size) : w->zero_hash;
		ret = hashes_entry(w, vaddr, n, err);
		if (ret)
			return ret;
		vaddr += n * w->page_size;
		if (p)
			p += n * w->page_size;
		nr -= n;
	}
	return 0;
}

/* In-parent pages keep the hashes the parent recorded; pages it has none
 * for get none here either. */
static int hashes_of_parent(struct img_writer *w, uint64_t vaddr, uint64_t nr, struct ferr *err)
{
	while (nr) {
		uint64_t avail = 0;
		const uint64_t *h = img_hashes_find(&w->parent_hashes, vaddr, &avail);
		size_t n;
		int ret;

		if (!h) {
			vaddr += w->page_size;
			nr--;
			continue;
		}
		n = avail < nr ? avail : nr;
		if (n > IMG_HASH_ENTRY_PAGES)
			n = IMG_HASH_ENTRY_PAGES;
		memcpy(w->hbuf, h, n * sizeof(*h));
		ret = hashes_entry(w, vaddr, n, err);
		if (ret)
			return ret;
		vaddr += n * w->page_size;
		nr -= n;
	}
	return 0;
}

int img_pages_zero(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages, struct ferr *err)
{
	int ret = writer_flag_run(w, vaddr, nr_pages, IMG_RUN_ZERO, err);

	if (!ret && w->page_hashes)
		ret = hashes_of(w, vaddr, NULL, nr_pages, err);
	return ret;
}

int img_pages_parent(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages, struct ferr *err)
{
	int ret;

	if (!w->parent)
		return ferr_new(err, EINVAL, "%s: in-parent pages in a dump without a parent", w->path);
	ret = writer_flag_run(w, vaddr, nr_pages, IMG_RUN_IN_PARENT, err);
	if (!ret && w->page_hashes)
		ret = hashes_of_parent(w, vaddr, nr_pages, err);
	return ret;
}

/* Account nr_pages of data already at offset off of pages.img: extend the
 * current run when both address and offset continue it, else start one. */
static int add_data_run(struct img_writer *w, uint64_t vaddr, const uint8_t *p, uint64_t off,
			uint64_t nr_pages, struct ferr *err)
{
	int ret;

	while (nr_pages) {
		uint64_t take;
		size_t len;

		if (!run_continues(w, vaddr, 0) || w->run.nr_pages >= IMG_RUN_DATA_MAX_PAGES ||
		    w->run.offset + w->run.nr_pages * w->page_size != off) {
			ret = img_writer_emit_run(w, err);
			if (ret)
				return ret;
			w->have_run = true;
			w->run = (struct img_run){ .vaddr = vaddr, .offset = off };
			XXH3_64bits_reset(w->run_hash);
		}
		take = IMG_RUN_DATA_MAX_PAGES - w->run.nr_pages;
		if (take > nr_pages)
			take = nr_pages;
		len = take * w->page_size;
		XXH3_64bits_update(w->run_hash, p, len);
		w->run.nr_pages += take;
		vaddr += len;
		off += len;
		p += len;
		nr_pages -= take;
		w->next_vaddr = vaddr;
	}
	return 0;
}

int img_pages_data(struct img_writer *w, uint64_t vaddr, const void *data, uint64_t nr_pages,
		   struct ferr *err)
{
	uint64_t off = w->pages_off;
	size_t len = nr_pages * w->page_size;
	int ret = writer_check_range(w, vaddr, nr_pages, err);

	if (ret)
		return ret;
	ret = img_pages_write_at(w, off, data, len, err);
	if (ret)
		return ret;
	w->pages_off += len;
	ret = add_data_run(w, vaddr, data, off, nr_pages, err);
	if (!ret && w->page_hashes)
		ret = hashes_of(w, vaddr, data, nr_pages, err);
	return ret;
}

static int too_long(const struct img_writer *w, uint64_t nr_pages, struct ferr *err)
{
	return ferr_new(err, EINVAL, "%s: a checksummed run of %llu pages exceeds %d", w->path,
			(unsigned long long)nr_pages, IMG_RUN_DATA_MAX_PAGES);
}

uint64_t img_pages_reserve(struct img_writer *w, uint64_t len)
{
	uint64_t off = w->pages_off;

	w->pages_off += len;
	return off;
}

/* The disk starts on pages as soon as they are in the file: the commit's
 * fsync, which a final dump's process waits for frozen, then has less
 * left to wait for (256 MiB here: 177-185 ms after the last write, 109-134
 * with this; docs/PERFORMANCE.md). Only a hint: an error is the fsync's. */
static void start_writeback(const struct img_writer *w, uint64_t off, uint64_t len)
{
	if (len)
		sync_file_range(w->pages_fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
}

int img_pages_write_at(struct img_writer *w, uint64_t off, const void *data, size_t len,
		       struct ferr *err)
{
	int ret;

	if (w->sink)
		return w->sink->write(w->sink, off, data, len, err);
	ret = pwrite_all(w->pages_fd, data, len, off);
	if (ret)
		return ferr_sys(err, -ret, "write %s/pages.img", w->path);
	start_writeback(w, off, len);
	return 0;
}

bool img_pages_can_splice(const struct img_writer *w)
{
	return !w->sink || w->sink->splice;
}

int img_pages_splice_at(struct img_writer *w, uint64_t off, int pipe, size_t len,
			struct ferr *err)
{
	loff_t o = (loff_t)off;

	if (w->sink)
		return w->sink->splice(w->sink, off, pipe, len, err);
	while (len) {
		ssize_t n = splice(pipe, NULL, w->pages_fd, &o, len, SPLICE_F_MOVE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ferr_sys(err, n < 0 ? errno : EIO, "splice into %s/pages.img", w->path);
		len -= (size_t)n;
	}
	start_writeback(w, off, (uint64_t)o - off);
	return 0;
}

int img_pages_data_at(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages, uint64_t off,
		      uint64_t xxh3, const void *data, struct ferr *err)
{
	uint64_t len = nr_pages * w->page_size;
	int ret = writer_check_range(w, vaddr, nr_pages, err);

	if (ret)
		return ret;
	if (nr_pages > IMG_RUN_DATA_MAX_PAGES)
		return too_long(w, nr_pages, err);
	if (off < w->page_size || off % w->page_size || off > w->pages_off ||
	    len > w->pages_off - off)
		return ferr_new(err, EINVAL, "%s: data run at 0x%llx is outside the space reserved",
				w->path, (unsigned long long)off);
	ret = img_writer_emit_run(w, err);
	if (ret)
		return ret;
	w->have_run = true;
	w->run_prehashed = true;
	w->run = (struct img_run){ .vaddr = vaddr, .nr_pages = nr_pages, .offset = off,
				   .xxh3 = xxh3 };
	w->next_vaddr = vaddr + len;
	return w->page_hashes ? hashes_of(w, vaddr, data, nr_pages, err) : 0;
}

int img_pages_data_hashed(struct img_writer *w, uint64_t vaddr, const void *data,
			  uint64_t nr_pages, uint64_t xxh3, struct ferr *err)
{
	uint64_t len = nr_pages * w->page_size, off;
	int ret = writer_check_range(w, vaddr, nr_pages, err);

	if (ret)
		return ret;
	if (nr_pages > IMG_RUN_DATA_MAX_PAGES)
		return too_long(w, nr_pages, err);
	off = img_pages_reserve(w, len);
	ret = img_pages_write_at(w, off, data, len, err);
	return ret ? ret : img_pages_data_at(w, vaddr, nr_pages, off, xxh3, data, err);
}
