/* Writing one dump directory: entries and pages stream out with bounded
 * memory; adjacent runs merge; the inventory is written last, atomically. */
#include <endian.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include "images/format.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.0.0-dev"
#endif

struct img_writer {
	char *path;
	int dirfd;
	Ferry__DumpKind kind;
	uint32_t root_pid;
	uint32_t page_size;
	uint8_t id[IMG_ID_SIZE];
	char *parent;
	uint8_t parent_id[IMG_ID_SIZE];
	char *tracker;
	bool page_hashes;           /* hashes.img is written */
	struct img_hashes parent_hashes;  /* the parent's, for in-parent runs */
	uint64_t zero_hash;
	uint64_t *hbuf;             /* one hashes.img entry being built */
	struct img_file_writer files[IMG_NR_TYPES]; /* IMG_PAGES unused: raw fd below */
	bool open[IMG_NR_TYPES];
	int pages_fd;
	uint64_t pages_off;         /* end of pages.img */
	struct img_pages_sink *sink;  /* where page data goes instead, or NULL */
	/* The run being extended; emitted when something non-contiguous arrives. */
	bool have_run;
	struct img_run run;
	XXH3_state_t *run_hash;
	bool run_prehashed;         /* run.xxh3 came with the data; never extended */
	uint64_t next_vaddr;        /* runs must not go below this */
	uint64_t nr_threads;
	bool have_process;
	bool committed;
	Ferry__PagemapStats stats;
};

static int writer_open_file(struct img_writer *w, enum img_type t, struct ferr *err)
{
	int ret = img_fw_open(&w->files[t], w->dirfd, w->path, t, NULL, err);

	w->open[t] = true; /* so that release closes a half-opened one */
	return ret;
}

static int writer_open_pages(struct img_writer *w, struct ferr *err)
{
	cleanup_free uint8_t *first = calloc(1, w->page_size);
	struct img_header h;
	int ret;

	if (!first)
		return ferr_sys(err, ENOMEM, "%s/pages.img", w->path);
	w->pages_fd = openat(w->dirfd, img_type_file(IMG_PAGES),
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w->pages_fd < 0)
		return ferr_sys(err, errno, "create %s/pages.img", w->path);
	/* The header takes the whole first page so that every run's data is
	 * page-aligned in the file (for splice, O_DIRECT and mmap). */
	img_header_fill(&h, IMG_PAGES);
	memcpy(first, &h, sizeof(h));
	ret = pwrite_all(w->pages_fd, first, w->page_size, 0);
	if (ret)
		return ferr_sys(err, -ret, "write %s/pages.img", w->path);
	w->pages_off = w->page_size;
	if (!w->sink)
		return 0;
	ret = w->sink->open(w->sink, w->path, err);
	return ret ? ret : w->sink->write(w->sink, 0, first, w->page_size, err);
}

static int writer_read_parent(struct img_writer *w, const char *parent, struct ferr *err)
{
	cleanup_free char *ppath = NULL;
	cleanup(img_image) struct img_image *pimg = NULL;
	int ret;

	if (!*parent || parent[0] == '/')
		return ferr_new(err, EINVAL, "parent `%s` must be a relative path", parent);
	if (asprintf(&ppath, "%s/%s", w->path, parent) < 0)
		return ferr_sys(err, ENOMEM, "parent path");
	ret = img_open(&pimg, ppath, err);
	if (ret)
		return ferr_wrap(err, "parent dump");
	unsigned len = 0;
	for (const struct img_image *i = pimg; i; i = i->parent)
		len++;
	if (len >= IMG_CHAIN_MAX)
		return ferr_new(err, ELOOP, "parent `%s` already heads a chain of %d dumps, the most "
				"a reader follows", ppath, IMG_CHAIN_MAX);
	memcpy(w->parent_id, pimg->inv->id.data, IMG_ID_SIZE);
	/* Without the parent's hashes its pages get none here: the next
	 * round then counts them as changed, which is only slower. */
	if (w->page_hashes) {
		ret = img_hashes_load(pimg, &w->parent_hashes, err);
		if (ret == -ENOENT)
			ret = 0;
		if (ret)
			return ferr_wrap(err, "parent dump");
	}
	w->parent = strdup(parent);
	if (!w->parent)
		return ferr_sys(err, ENOMEM, "parent path");
	return 0;
}

int img_writer_create(struct img_writer **out, const char *dir, const struct img_writer_opts *opts,
		      struct ferr *err)
{
	cleanup(img_writer) struct img_writer *w = NULL;
	Ferry__PagemapHead head = FERRY__PAGEMAP_HEAD__INIT;
	int ret;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return ferr_sys(err, ENOMEM, "image writer");
	w->dirfd = -1;
	w->pages_fd = -1;
	for (int t = 0; t < IMG_NR_TYPES; t++)
		w->files[t].fd = -1;
	ferry__pagemap_stats__init(&w->stats);
	w->kind = opts->kind;
	w->sink = opts->sink;
	w->page_hashes = opts->page_hashes;
	w->root_pid = opts->root_pid;
	w->page_size = (uint32_t)ferry_page_size();
	w->path = strdup(dir);
	w->run_hash = XXH3_createState();
	w->tracker = opts->tracker ? strdup(opts->tracker) : NULL;
	if (w->page_hashes)
		w->hbuf = malloc(IMG_HASH_ENTRY_PAGES * sizeof(*w->hbuf));
	if (!w->path || !w->run_hash || (opts->tracker && !w->tracker) ||
	    (w->page_hashes && !w->hbuf))
		return ferr_sys(err, ENOMEM, "image writer");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ferr_sys(err, errno, "create image directory `%s`", dir);
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0)
		return ferr_sys(err, errno, "open image directory `%s`", dir);
	/* Before anything is overwritten, the old dump stops looking complete. */
	if (unlinkat(w->dirfd, IMG_INVENTORY_NAME, 0) == 0) {
		if (fsync(w->dirfd) < 0)
			return ferr_sys(err, errno, "fsync `%s`", dir);
	} else if (errno != ENOENT) {
		return ferr_sys(err, errno, "remove old %s/%s", dir, IMG_INVENTORY_NAME);
	}
	if (opts->parent) {
		ret = writer_read_parent(w, opts->parent, err);
		if (ret)
			return ret;
	}
	if (getrandom(w->id, sizeof(w->id), 0) != (ssize_t)sizeof(w->id))
		return ferr_sys(err, errno, "getrandom for the dump id");
	for (int t = IMG_PROCESS; t <= IMG_PAGEMAP; t++) {
		bool pre_skip = t == IMG_PROCESS || t == IMG_THREADS || t == IMG_FDS;

		if (w->kind == FERRY__DUMP_KIND__DUMP_PRE && pre_skip)
			continue;
		ret = writer_open_file(w, (enum img_type)t, err);
		if (ret)
			return ret;
	}
	if (w->page_hashes) {
		cleanup_free void *zero = calloc(1, w->page_size);

		if (!zero)
			return ferr_sys(err, ENOMEM, "image writer");
		w->zero_hash = XXH3_64bits(zero, w->page_size);
		ret = writer_open_file(w, IMG_HASHES, err);
		if (ret)
			return ret;
	}
	ret = writer_open_pages(w, err);
	if (ret)
		return ret;
	head.page_size = w->page_size;
	head.pages_file = (char *)img_type_file(IMG_PAGES);
	ret = img_fw_entry(&w->files[IMG_PAGEMAP], &head.base, err);
	if (ret)
		return ret;
	*out = steal_ptr(w);
	return 0;
}

static int writer_entry(struct img_writer *w, enum img_type t, const ProtobufCMessage *m,
			struct ferr *err)
{
	if (!w->open[t])
		return ferr_new(err, EINVAL, "%s: a %s dump has no %s", w->path,
				w->kind == FERRY__DUMP_KIND__DUMP_PRE ? "pre-" : "full", img_type_file(t));
	return img_fw_entry(&w->files[t], m, err);
}

int img_write_process(struct img_writer *w, const Ferry__Process *p, struct ferr *err)
{
	int ret = writer_entry(w, IMG_PROCESS, &p->base, err);

	if (!ret && w->have_process)
		return ferr_new(err, EINVAL, "%s: only one process entry per dump", w->path);
	w->have_process = true;
	return ret;
}

int img_write_thread(struct img_writer *w, const Ferry__Thread *t, struct ferr *err)
{
	int ret = writer_entry(w, IMG_THREADS, &t->base, err);

	if (!ret)
		w->nr_threads++;
	return ret;
}

int img_write_vma(struct img_writer *w, const Ferry__Vma *v, struct ferr *err)
{
	return writer_entry(w, IMG_VMAS, &v->base, err);
}

int img_write_fd(struct img_writer *w, const Ferry__Fd *f, struct ferr *err)
{
	return writer_entry(w, IMG_FDS, &f->base, err);
}

static int writer_emit_run(struct img_writer *w, struct ferr *err)
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
		ret = writer_emit_run(w, err);
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
			ret = writer_emit_run(w, err);
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

int img_pages_write_at(struct img_writer *w, uint64_t off, const void *data, size_t len,
		       struct ferr *err)
{
	int ret;

	if (w->sink)
		return w->sink->write(w->sink, off, data, len, err);
	ret = pwrite_all(w->pages_fd, data, len, off);
	if (ret)
		return ferr_sys(err, -ret, "write %s/pages.img", w->path);
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
	ret = writer_emit_run(w, err);
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

const Ferry__PagemapStats *img_writer_stats(const struct img_writer *w)
{
	return &w->stats;
}

const uint8_t *img_writer_id(const struct img_writer *w)
{
	return w->id;
}

static int writer_write_inventory(struct img_writer *w, uint64_t freeze_ns, struct ferr *err)
{
	Ferry__ImageFile files[IMG_NR_TYPES], *fp[IMG_NR_TYPES];
	Ferry__Inventory inv = FERRY__INVENTORY__INIT;
	struct img_file_writer fw;
	struct timespec now;
	struct utsname u;
	size_t nf = 0;
	int ret;

	for (int t = IMG_PROCESS; t < IMG_NR_TYPES; t++) {
		if (t != IMG_PAGES && !w->open[t])
			continue;
		ferry__image_file__init(&files[nf]);
		files[nf].name = (char *)img_type_file((enum img_type)t);
		if (t == IMG_PAGES) {
			files[nf].size = w->pages_off;
		} else {
			files[nf].size = w->files[t].size;
			files[nf].has_xxh3 = true;
			files[nf].xxh3 = XXH3_64bits_digest(w->files[t].hash);
		}
		fp[nf] = &files[nf];
		nf++;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (uname(&u) < 0)
		return ferr_sys(err, errno, "uname");

	inv.format_major = IMG_FORMAT_MAJOR;
	inv.format_minor = IMG_FORMAT_MINOR;
	inv.ferry_version = (char *)FERRY_VERSION;
	inv.kind = w->kind;
	inv.id.data = w->id;
	inv.id.len = IMG_ID_SIZE;
	if (w->parent) {
		inv.parent = w->parent;
		inv.has_parent_id = true;
		inv.parent_id.data = w->parent_id;
		inv.parent_id.len = IMG_ID_SIZE;
	}
	inv.root_pid = w->root_pid;
	inv.created_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	inv.page_size = w->page_size;
	inv.arch = u.machine;
	inv.kernel = u.release;
	inv.n_files = nf;
	inv.files = fp;
	inv.stats = &w->stats;
	inv.tracker = w->tracker;
	if (freeze_ns) {
		inv.has_freeze_ns = true;
		inv.freeze_ns = freeze_ns;
	}

	/* Written under a temporary name and renamed: readers see all or nothing. */
	ret = img_fw_open(&fw, w->dirfd, w->path, IMG_INVENTORY, IMG_INVENTORY_NAME ".tmp", err);
	if (!ret)
		ret = img_fw_entry(&fw, &inv.base, err);
	if (!ret)
		ret = img_fw_close(&fw, err);
	img_fw_release(&fw);
	if (ret)
		return ret;
	if (renameat(w->dirfd, IMG_INVENTORY_NAME ".tmp", w->dirfd, IMG_INVENTORY_NAME) < 0)
		return ferr_sys(err, errno, "rename %s/%s.tmp", w->path, IMG_INVENTORY_NAME);
	if (fsync(w->dirfd) < 0)
		return ferr_sys(err, errno, "fsync `%s`", w->path);
	return 0;
}

int img_writer_commit(struct img_writer *w, uint64_t freeze_ns, struct ferr *err)
{
	int ret;

	if (w->committed)
		return ferr_new(err, EINVAL, "%s: committed twice", w->path);
	if (w->kind == FERRY__DUMP_KIND__DUMP_FULL && (!w->have_process || !w->nr_threads))
		return ferr_new(err, EINVAL, "%s: a full dump needs a process and at least one thread",
				w->path);
	ret = writer_emit_run(w, err);
	if (ret)
		return ret;
	for (int t = IMG_PROCESS; t < IMG_NR_TYPES; t++) {
		if (t == IMG_PAGES || !w->open[t])
			continue;
		ret = img_fw_close(&w->files[t], err);
		if (ret)
			return ret;
	}
	/* Reserved space never written (a live read that found a range gone,
	 * or data that went to a sink instead) reads as a hole. */
	if (ftruncate(w->pages_fd, (off_t)w->pages_off) < 0)
		return ferr_sys(err, errno, "size %s/pages.img", w->path);
	if (fsync(w->pages_fd) < 0)
		return ferr_sys(err, errno, "fsync %s/pages.img", w->path);
	ret = writer_write_inventory(w, freeze_ns, err);
	if (ret)
		return ret;
	w->committed = true;
	return 0;
}

void img_writer_free(struct img_writer *w)
{
	if (!w)
		return;
	for (int t = 0; t < IMG_NR_TYPES; t++)
		if (w->open[t])
			img_fw_release(&w->files[t]);
	if (w->pages_fd >= 0)
		close(w->pages_fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	if (w->run_hash)
		XXH3_freeState(w->run_hash);
	free(w->parent);
	free(w->tracker);
	free(w->hbuf);
	img_hashes_free(&w->parent_hashes);
	free(w->path);
	free(w);
}
