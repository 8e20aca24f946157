/* Writing one dump directory: its files created, entries streamed out with
 * bounded memory, the inventory written last, atomically. Page runs and
 * their data are pageout.c's. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include "images/format.h"
#include "images/writer.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.0.0-dev"
#endif

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
	w->pages_fd = img_create_at(w->dirfd, img_type_file(IMG_PAGES));
	if (w->pages_fd < 0)
		return ferr_sys(err, -w->pages_fd, "create %s/pages.img", w->path);
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

static int writer_read_parent(struct img_writer *w, const char *parent,
			      const struct img_image *opened, struct ferr *err)
{
	cleanup_free char *ppath = NULL;
	cleanup(img_image) struct img_image *own = NULL;
	const struct img_image *pimg = opened;
	int ret;

	/* Never write what a reader refuses. */
	if (!img_parent_path_ok(parent))
		return ferr_new(err, EINVAL, "parent `%s` must be a path inside the new dump's parent "
				"directory (`pre-1`, `../pre-1`)", parent);
	if (asprintf(&ppath, "%s/%s", w->path, parent) < 0)
		return ferr_sys(err, ENOMEM, "parent path");
	if (!pimg) {
		ret = img_open(&own, ppath, err);
		if (ret)
			return ferr_wrap(err, "parent dump");
		pimg = own;
	}
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

/* DIR, created 0700 if new. One that exists must be the caller's and
 * writable by nobody else, and not a symbolic link: another local user
 * could otherwise plant or swap files in it as ferry writes. */
int img_own_dir(const char *dir, int *out, struct ferr *err)
{
	cleanup_close int fd = -1;
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ferr_sys(err, errno, "create image directory `%s`", dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		return ferr_new(err, errno, "image directory `%s` is not a directory (a symbolic link "
				"is not followed)", dir);
	if (fd < 0)
		return ferr_sys(err, errno, "open image directory `%s`", dir);
	if (fstat(fd, &st) < 0)
		return ferr_sys(err, errno, "stat image directory `%s`", dir);
	if (st.st_uid != geteuid())
		return ferr_new(err, EPERM, "image directory `%s` belongs to uid %u, not to the caller "
				"(uid %u): ferry writes images only into a directory of its caller",
				dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return ferr_new(err, EPERM, "image directory `%s` is writable by %s (mode %04o): "
				"other users could plant files in it", dir,
				st.st_mode & S_IWOTH ? "others" : "its group", st.st_mode & 07777);
	*out = steal_fd(fd);
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
	w->start_time = opts->start_time;
	w->page_size = (uint32_t)ferry_page_size();
	w->path = strdup(dir);
	w->run_hash = XXH3_createState();
	w->tracker = opts->tracker ? strdup(opts->tracker) : NULL;
	if (w->page_hashes)
		w->hbuf = malloc(IMG_HASH_ENTRY_PAGES * sizeof(*w->hbuf));
	if (!w->path || !w->run_hash || (opts->tracker && !w->tracker) ||
	    (w->page_hashes && !w->hbuf))
		return ferr_sys(err, ENOMEM, "image writer");
	ret = img_own_dir(dir, &w->dirfd, err);
	if (ret)
		return ret;
	/* Before anything is overwritten, the old dump stops looking complete. */
	if (unlinkat(w->dirfd, IMG_INVENTORY_NAME, 0) == 0) {
		if (fsync(w->dirfd) < 0)
			return ferr_sys(err, errno, "fsync `%s`", dir);
	} else if (errno != ENOENT) {
		return ferr_sys(err, errno, "remove old %s/%s", dir, IMG_INVENTORY_NAME);
	}
	if (opts->parent) {
		ret = writer_read_parent(w, opts->parent, opts->parent_img, err);
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
	if (opts->tree && w->kind == FERRY__DUMP_KIND__DUMP_FULL) {
		ret = writer_open_file(w, IMG_TREE, err);
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

int img_write_tree_item(struct img_writer *w, const Ferry__TreeItem *t, struct ferr *err)
{
	return writer_entry(w, IMG_TREE, &t->base, err);
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
	inv.has_start_time = w->start_time != 0;
	inv.start_time = w->start_time;
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
	ret = img_writer_emit_run(w, err);
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
