/* Opening a dump directory and its parent chain. Everything read here is
 * untrusted: sizes, names, versions, ids and checksums are all checked, and
 * each error names the file and what is wrong with it. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "images/format.h"
#include "images/load.h"

#define IMG_INVENTORY_MAX (1u << 20)

/* Identities of the directories on the chain being opened, to refuse cycles. */
struct chain_seen {
	dev_t dev[IMG_CHAIN_MAX + 1];
	ino_t ino[IMG_CHAIN_MAX + 1];
	unsigned n;
};

static bool file_name_ok(const char *name)
{
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		      *p == '_'))
			return false;
	return true;
}

static int check_inventory(const struct img_image *img, struct ferr *err)
{
	const Ferry__Inventory *inv = img->inv;
	const char *p = img->path;
	static const enum img_type full_needs[] = { IMG_PROCESS, IMG_THREADS, IMG_VMAS, IMG_FDS,
						    IMG_PAGEMAP, IMG_PAGES };
	static const enum img_type pre_needs[] = { IMG_VMAS, IMG_PAGEMAP, IMG_PAGES };
	const enum img_type *needs;
	size_t nneeds;

	if (inv->format_major != IMG_FORMAT_MAJOR)
		return ferr_new(err, EPROTONOSUPPORT,
				"%s/inventory.img: format version %u.%u is not supported (this ferry reads %u.x)",
				p, inv->format_major, inv->format_minor, IMG_FORMAT_MAJOR);
	if (inv->kind != FERRY__DUMP_KIND__DUMP_FULL && inv->kind != FERRY__DUMP_KIND__DUMP_PRE)
		return ferr_new(err, EBADMSG, "%s/inventory.img: unknown dump kind %d", p, inv->kind);
	if (inv->id.len != IMG_ID_SIZE)
		return ferr_new(err, EBADMSG, "%s/inventory.img: id is %zu bytes, not %d", p,
				inv->id.len, IMG_ID_SIZE);
	if (inv->page_size < 4096 || inv->page_size > (1u << 20) ||
	    (inv->page_size & (inv->page_size - 1)))
		return ferr_new(err, EBADMSG, "%s/inventory.img: page size %u is not a power of two "
				"between 4 KiB and 1 MiB", p, inv->page_size);
	if (inv->parent && !img_parent_path_ok(inv->parent))
		return ferr_new(err, EBADMSG, "%s/inventory.img: parent `%s` is not a path inside the "
				"dump's parent directory (`pre-1`, `../pre-1`)", p, inv->parent);
	if (!inv->parent != !inv->has_parent_id ||
	    (inv->has_parent_id && inv->parent_id.len != IMG_ID_SIZE))
		return ferr_new(err, EBADMSG, "%s/inventory.img: parent path and parent id must come "
				"together", p);
	if (inv->n_files > IMG_FILES_MAX)
		return ferr_new(err, EBADMSG, "%s/inventory.img: %zu files listed, more than %d", p,
				inv->n_files, IMG_FILES_MAX);
	for (size_t i = 0; i < inv->n_files; i++) {
		const char *name = inv->files[i]->name;

		if (!file_name_ok(name) || strcmp(name, IMG_INVENTORY_NAME) == 0)
			return ferr_new(err, EBADMSG, "%s/inventory.img: file entry %zu has a bad name", p, i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(inv->files[j]->name, name) == 0)
				return ferr_new(err, EBADMSG, "%s/inventory.img: file `%s` listed twice", p,
						name);
	}
	if (inv->kind == FERRY__DUMP_KIND__DUMP_FULL) {
		needs = full_needs;
		nneeds = ARRAY_SIZE(full_needs);
	} else {
		needs = pre_needs;
		nneeds = ARRAY_SIZE(pre_needs);
	}
	for (size_t i = 0; i < nneeds; i++)
		if (!img_inv_file(inv, needs[i]))
			return ferr_new(err, EBADMSG, "%s/inventory.img: %s is missing from the file list",
					p, img_type_file(needs[i]));
	return 0;
}

static int read_inventory(struct img_image *img, struct ferr *err)
{
	cleanup_free uint8_t *buf = NULL;
	cleanup_close int fd = -1;
	ProtobufCMessage **msgs = NULL;
	char what[PATH_MAX + 32];
	struct stat st;
	size_t n = 0;
	int ret;

	snprintf(what, sizeof(what), "%s/%s", img->path, IMG_INVENTORY_NAME);
	fd = openat(img->dirfd, IMG_INVENTORY_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return ferr_new(err, ENOENT, "%s: incomplete: no %s (the dump did not finish)",
				img->path, IMG_INVENTORY_NAME);
	if (fd < 0)
		return ferr_sys(err, errno, "open %s", what);
	if (fstat(fd, &st) < 0)
		return ferr_sys(err, errno, "stat %s", what);
	if (!S_ISREG(st.st_mode) || st.st_size > IMG_INVENTORY_MAX)
		return ferr_new(err, EBADMSG, "%s: not a regular file of at most %u bytes", what,
				IMG_INVENTORY_MAX);
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return ferr_sys(err, ENOMEM, "%s", what);
	ret = pread_all(fd, buf, (size_t)st.st_size, 0);
	if (ret)
		return ferr_sys(err, ret == -ENODATA ? EBADMSG : -ret, "read %s", what);
	ret = img_decode_entries(buf, (size_t)st.st_size, IMG_INVENTORY,
				 &ferry__inventory__descriptor, what, &msgs, &n, err);
	if (ret)
		return ret;
	if (n != 1) {
		img_free_entries(msgs, n);
		return ferr_new(err, EBADMSG, "%s: %zu entries, expected exactly one", what, n);
	}
	img->inv = (Ferry__Inventory *)msgs[0];
	free(msgs);
	img->page_size = img->inv->page_size;
	return check_inventory(img, err);
}

static int open_pages(struct img_image *img, struct ferr *err)
{
	const Ferry__ImageFile *f = img_inv_file(img->inv, IMG_PAGES);
	uint8_t hdr[IMG_HEADER_SIZE];
	char what[PATH_MAX + 32];
	int ret;

	snprintf(what, sizeof(what), "%s/pages.img", img->path);
	img->pages_fd = img_open_sized(img->dirfd, f->name, what, f->size, err);
	if (img->pages_fd < 0)
		return img->pages_fd;
	if (f->size < img->page_size)
		return ferr_new(err, EBADMSG, "%s: shorter than its header page", what);
	ret = pread_all(img->pages_fd, hdr, sizeof(hdr), 0);
	if (ret)
		return ferr_sys(err, -ret, "read %s", what);
	img->pages_size = f->size;
	return img_header_check(hdr, sizeof(hdr), IMG_PAGES, what, err);
}

static int img_open_chain(struct img_image **out, const char *dir, int dirfd, unsigned depth,
			  struct chain_seen *seen, struct img_image *given, struct ferr *err);

/* The parent already open (img_open_on): it must be the directory the
 * inventory names, and the dump this one was made against. */
static int adopt_parent(struct img_image *img, struct img_image *given, struct ferr *err)
{
	cleanup_close int pfd = -1;
	struct stat a, b;

	if (!img->inv->parent)
		return ferr_new(err, EINVAL, "%s has no parent, %s was expected", img->path,
				given->path);
	pfd = img_open_parent_dir(img->dirfd, img->inv->parent, img->path, err);
	if (pfd < 0)
		return pfd;
	if (fstat(pfd, &a) < 0 || fstat(given->dirfd, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino)
		return ferr_new(err, EINVAL, "%s: parent `%s` is not %s", img->path, img->inv->parent,
				given->path);
	if (memcmp(given->inv->id.data, img->inv->parent_id.data, IMG_ID_SIZE))
		return ferr_new(err, EBADMSG, "%s: parent `%s` is not the dump this one was made against "
				"(id mismatch)", img->path, img->inv->parent);
	if (given->page_size != img->page_size)
		return ferr_new(err, EBADMSG, "%s: parent page size %u differs from %u", img->path,
				given->page_size, img->page_size);
	for (struct img_image *i = given; i; i = i->parent)
		if (i->depth + 1 >= IMG_CHAIN_MAX)
			return ferr_new(err, ELOOP, "%s: parent chain deeper than %d dumps", img->path,
					IMG_CHAIN_MAX);
	for (struct img_image *i = given; i; i = i->parent)
		i->depth++;
	img->parent = given;
	return 0;
}

static int open_parent(struct img_image *img, struct chain_seen *seen, struct ferr *err)
{
	cleanup_free char *ppath = NULL;
	int ret, pfd;

	if (!img->inv->parent)
		return 0;
	if (img->depth + 1 >= IMG_CHAIN_MAX)
		return ferr_new(err, ELOOP, "%s: parent chain deeper than %d dumps", img->path,
				IMG_CHAIN_MAX);
	if (asprintf(&ppath, "%s/%s", img->path, img->inv->parent) < 0)
		return ferr_sys(err, ENOMEM, "parent path");
	/* Reached name by name from this dump's directory, never through a
	 * symbolic link: the chain stays where ferry wrote it. */
	pfd = img_open_parent_dir(img->dirfd, img->inv->parent, img->path, err);
	if (pfd < 0)
		return pfd;
	ret = img_open_chain(&img->parent, ppath, pfd, img->depth + 1, seen, NULL, err);
	if (ret)
		return ferr_wrap(err, "%s: parent `%s`", img->path, img->inv->parent);
	if (memcmp(img->parent->inv->id.data, img->inv->parent_id.data, IMG_ID_SIZE))
		return ferr_new(err, EBADMSG, "%s: parent `%s` is not the dump this one was made against "
				"(id mismatch)", img->path, img->inv->parent);
	if (img->parent->page_size != img->page_size)
		return ferr_new(err, EBADMSG, "%s: parent page size %u differs from %u", img->path,
				img->parent->page_size, img->page_size);
	return 0;
}

/* Give an adopted parent back to the caller as it was. */
static void release_parent(struct img_image *img)
{
	for (struct img_image *i = img->parent; i; i = i->parent)
		i->depth--;
	img->parent = NULL;
}

/* dirfd: dir already open (taken over, closed on error too), or -1. */
static int img_open_chain(struct img_image **out, const char *dir, int dirfd, unsigned depth,
			  struct chain_seen *seen, struct img_image *given, struct ferr *err)
{
	cleanup(img_image) struct img_image *img = NULL;
	cleanup_close int fd = dirfd;
	struct stat st;
	int ret;

	*out = NULL;
	img = calloc(1, sizeof(*img));
	if (!img)
		return ferr_sys(err, ENOMEM, "open `%s`", dir);
	img->dirfd = img->pages_fd = -1;
	img->depth = depth;
	img->path = strdup(dir);
	if (!img->path)
		return ferr_sys(err, ENOMEM, "open `%s`", dir);
	img->dirfd = fd >= 0 ? steal_fd(fd) : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (img->dirfd < 0)
		return ferr_sys(err, errno, "open image directory `%s`", dir);
	if (fstat(img->dirfd, &st) < 0)
		return ferr_sys(err, errno, "stat `%s`", dir);
	for (unsigned i = 0; i < seen->n; i++)
		if (seen->dev[i] == st.st_dev && seen->ino[i] == st.st_ino)
			return ferr_new(err, ELOOP, "%s: the parent chain loops back to this dump", dir);
	seen->dev[seen->n] = st.st_dev;
	seen->ino[seen->n] = st.st_ino;
	seen->n++;

	ret = read_inventory(img, err);
	if (!ret)
		ret = open_pages(img, err);
	if (!ret)
		ret = img_load_vmas(img, err);
	if (!ret)
		ret = given ? adopt_parent(img, given, err) : open_parent(img, seen, err);
	if (!ret)
		ret = img_load_pagemap(img, err);
	if (ret && given && img->parent == given)
		release_parent(img);
	if (ret)
		return ret;
	*out = steal_ptr(img);
	return 0;
}

void img_close_on(struct img_image *img)
{
	release_parent(img);
	img_close(img);
}

int img_open_on(struct img_image **out, const char *dir, struct img_image *parent,
		struct ferr *err)
{
	struct chain_seen seen = { .n = 0 };

	return img_open_chain(out, dir, -1, 0, &seen, parent, err);
}

int img_open(struct img_image **out, const char *dir, struct ferr *err)
{
	struct chain_seen seen = { .n = 0 };

	return img_open_chain(out, dir, -1, 0, &seen, NULL, err);
}

void img_close(struct img_image *img)
{
	while (img) {
		struct img_image *parent = img->parent;

		if (img->inv)
			ferry__inventory__free_unpacked(img->inv, NULL);
		img_free_entries(img->vmas, img->nr_vmas);
		free(img->runs);
		if (img->pages_fd >= 0)
			close(img->pages_fd);
		if (img->dirfd >= 0)
			close(img->dirfd);
		free(img->path);
		free(img);
		img = parent;
	}
}

int img_read_process(struct img_image *img, Ferry__Process **out, struct ferr *err)
{
	char what[PATH_MAX + 32];
	ProtobufCMessage **msgs;
	size_t n;
	int ret;

	ret = img_load_entries(img, IMG_PROCESS, &ferry__process__descriptor, &msgs, &n, err);
	if (ret)
		return ret;
	if (n != 1) {
		img_free_entries(msgs, n);
		return ferr_new(err, EBADMSG, "%s/process.img: %zu entries, expected exactly one",
				img->path, n);
	}
	*out = (Ferry__Process *)msgs[0];
	free(msgs);
	snprintf(what, sizeof(what), "%s/process.img", img->path);
	ret = img_check_process(what, *out, err);
	if (ret) {
		ferry__process__free_unpacked(*out, NULL);
		*out = NULL;
	}
	return ret;
}

int img_read_threads(struct img_image *img, Ferry__Thread ***out, size_t *n, struct ferr *err)
{
	char what[PATH_MAX + 32];
	int ret;

	ret = img_load_entries(img, IMG_THREADS, &ferry__thread__descriptor,
			       (ProtobufCMessage ***)out, n, err);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "%s/threads.img", img->path);
	ret = img_check_threads(what, *out, *n, err);
	if (ret) {
		img_free_entries(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

int img_read_fds(struct img_image *img, Ferry__Fd ***out, size_t *n, struct ferr *err)
{
	char what[PATH_MAX + 32];
	int ret;

	ret = img_load_entries(img, IMG_FDS, &ferry__fd__descriptor, (ProtobufCMessage ***)out, n,
			       err);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "%s/fds.img", img->path);
	ret = img_check_fds(what, *out, *n, err);
	if (!ret) {
		const Ferry__ImageFile *fd = img_inv_file(img->inv, IMG_FDATA);

		ret = img_check_fd_data(what, *out, *n, fd ? fd->size : 0, err);
	}
	if (ret) {
		img_free_entries(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

int img_read_tree(struct img_image *img, Ferry__TreeItem ***out, size_t *n, struct ferr *err)
{
	char what[PATH_MAX + 32];
	int ret;

	*out = NULL;
	*n = 0;
	if (!img_has_file(img, IMG_TREE))
		return 0;
	ret = img_load_entries(img, IMG_TREE, &ferry__tree_item__descriptor,
			       (ProtobufCMessage ***)out, n, err);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "%s/tree.img", img->path);
	ret = img_check_tree(what, *out, *n, err);
	if (ret) {
		img_free_entries(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return ret;
}
