/* Test fixture: craft hostile images with the image library, as an attacker
 * who can write image bytes would. Copies a real dump SRC to DST through
 * the reader and the writer, changing what the options say, or rewrites a
 * dump's parent path in place.
 *
 *   badimage SRC DST [--uid N] [--caps HEX] [--no-ids] [--fd N:PATH]
 *                    [--map-shared PATH]
 *   badimage --set-parent DIR REL
 *
 * --uid N        every uid and gid N, no groups, no capabilities
 * --caps HEX     permitted and effective capabilities HEX
 * --no-ids       credentials without uids or gids
 * --fd N:PATH    an fd N on PATH (a regular file, read-only), identity from stat
 * --map-shared P a writable MAP_SHARED page of P, where the dump has nothing
 * --fdata-size N the first fd with contents in fdata.img announces N bytes
 * --fdata-cut N  fdata.img loses its last N bytes (the inventory unchanged) */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "images/format.h"
#include "proc/filesum.h"

#define LOW (1ull << 32)
#define HIGH 0x7ff000000000ull

/* A page with a free page on either side, above 4 GiB, that no VMA of
 * the dump uses (ASan's shadow takes most of the address space). */
static uint64_t free_page(const struct img_image *img)
{
	uint64_t ps = (uint64_t)ferry_page_size(), lo = LOW;

	for (size_t i = 0; i <= img->nr_vmas; i++) {
		uint64_t hi = i < img->nr_vmas ? img->vmas[i]->start : HIGH;

		if (hi > HIGH)
			hi = HIGH;
		if (hi > lo && hi - lo >= 3 * ps)
			return lo + ps;
		if (i < img->nr_vmas && img->vmas[i]->end > lo)
			lo = img->vmas[i]->end;
	}
	return 0;
}

struct opts {
	const char *src, *dst;
	bool set_uid, no_ids, set_caps;
	uint32_t uid;
	uint64_t caps;
	int fd;
	const char *fd_path, *map_path;
	bool set_fdata_size;
	uint64_t fdata_size, fdata_cut;
};

static Ferry__FileId *file_id(const char *path, Ferry__FileId *id)
{
	static uint8_t sum[FILESUM_LEN];
	struct ferr err;
	struct stat st;
	int fd;

	if (stat(path, &st) < 0)
		return NULL;
	ferry__file_id__init(id);
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->has_size = true;
	id->size = (uint64_t)st.st_size;
	/* Its content checksum too, as an attacker who knows what the file
	 * holds (a system file) could write it: only the open as the restored
	 * user stands in the way then. */
	fd = S_ISREG(st.st_mode) ? open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : -1;
	ferr_clear(&err);
	if (fd >= 0 && filesum_hash(fd, (uint64_t)st.st_size, path, sum, &err) == 0) {
		id->has_xxh128 = true;
		id->xxh128.data = sum;
		id->xxh128.len = sizeof(sum);
	}
	if (fd >= 0)
		close(fd);
	return id;
}

static int write_vmas(struct img_writer *w, const struct img_image *img, const struct opts *o,
		      struct ferr *err)
{
	Ferry__Vma v = FERRY__VMA__INIT;
	Ferry__FileId id;
	bool added = !o->map_path;
	int ret = 0;

	v.start = free_page(img);
	if (!v.start)
		return ferr_new(err, ENOMEM, "no free page in the dump's layout");
	v.end = v.start + (uint64_t)ferry_page_size();
	v.prot = PROT_READ | PROT_WRITE;
	v.flags = MAP_SHARED;
	v.kind = FERRY__VMA_KIND__VMA_FILE;
	v.path = v.name = (char *)o->map_path;
	v.file = o->map_path ? file_id(o->map_path, &id) : NULL;
	for (size_t i = 0; !ret && i < img->nr_vmas; i++) {
		if (!added && img->vmas[i]->start >= v.end) {
			ret = img_write_vma(w, &v, err);
			added = true;
		}
		if (!ret)
			ret = img_write_vma(w, img->vmas[i], err);
	}
	if (!ret && !added)
		ret = img_write_vma(w, &v, err);
	return ret;
}

/* fdata.img copied contents by contents (through a memfd, as the writer
 * reads an fd), each FileData moved to where the copy put it. */
static int copy_fdata(struct img_writer *w, const struct img_image *img, Ferry__Fd **fds, size_t n,
		      const struct opts *o, struct ferr *err)
{
	struct img_fdata d;
	bool first = true;
	int ret = img_fdata_map(img, &d, err);

	if (ret == -ENOENT)
		return 0;
	for (size_t i = 0; !ret && i < n; i++) {
		Ferry__FileData *fd = fds[i]->data;
		int m;

		if (!fd)
			continue;
		m = memfd_create("badimage", MFD_CLOEXEC);
		if (m < 0 || pwrite_all(m, d.map + fd->offset, fd->size, 0))
			ret = ferr_sys(err, errno, "memfd");
		if (!ret)
			ret = img_write_fdata(w, m, fd->size, &fd->offset, err);
		if (m >= 0)
			close(m);
		if (first && o->set_fdata_size)
			fd->size = o->fdata_size;
		first = false;
	}
	img_fdata_unmap(&d);
	return ret;
}

static int write_fds(struct img_writer *w, Ferry__Fd **fds, size_t n, const struct opts *o,
		     struct ferr *err)
{
	Ferry__Fd f = FERRY__FD__INIT;
	Ferry__FileId id;
	bool added = !o->fd_path;
	int ret = 0;

	f.fd = (uint32_t)o->fd;
	f.kind = FERRY__FD_KIND__FD_REG;
	f.flags = O_RDONLY;
	f.path = (char *)o->fd_path;
	f.file = o->fd_path ? file_id(o->fd_path, &id) : NULL;
	for (size_t i = 0; !ret && i < n; i++) {
		if (fds[i]->fd == f.fd && !added)
			continue; /* replaced */
		if (!added && fds[i]->fd > f.fd) {
			ret = img_write_fd(w, &f, err);
			added = true;
		}
		if (!ret)
			ret = img_write_fd(w, fds[i], err);
	}
	if (!ret && !added)
		ret = img_write_fd(w, &f, err);
	return ret;
}

static int write_pages(struct img_writer *w, const struct img_image *img, struct ferr *err)
{
	size_t ps = img->page_size;
	int ret = 0;

	for (size_t i = 0; !ret && i < img->nr_runs; i++) {
		const struct img_run *r = &img->runs[i];
		uint8_t *buf;

		if (r->flags & IMG_RUN_IN_PARENT)
			return ferr_new(err, ENOTSUP, "badimage copies dumps without a parent");
		if (r->flags & IMG_RUN_ZERO) {
			ret = img_pages_zero(w, r->vaddr, r->nr_pages, err);
			continue;
		}
		buf = malloc(r->nr_pages * ps);
		if (!buf)
			return ferr_sys(err, ENOMEM, "pages");
		ret = img_read_pages(img, r->vaddr, r->nr_pages, buf, err);
		if (!ret)
			ret = img_pages_data(w, r->vaddr, buf, r->nr_pages, err);
		free(buf);
	}
	return ret;
}

static int copy(const struct opts *o, struct ferr *err)
{
	struct img_writer_opts wo = { .kind = FERRY__DUMP_KIND__DUMP_FULL };
	cleanup(img_image) struct img_image *img = NULL;
	cleanup(img_writer) struct img_writer *w = NULL;
	Ferry__Process *p = NULL;
	Ferry__Thread **th = NULL;
	Ferry__Fd **fds = NULL;
	size_t nth = 0, nfds = 0, old_n[2] = { 0, 0 };
	uint32_t ids[4], *old_ids[2] = { NULL, NULL };
	int ret;

	ret = img_open(&img, o->src, err);
	if (!ret)
		ret = img_read_process(img, &p, err);
	if (!ret)
		ret = img_read_threads(img, &th, &nth, err);
	if (!ret)
		ret = img_read_fds(img, &fds, &nfds, err);
	if (ret)
		goto out;
	if (p->creds && o->set_uid) {
		for (int i = 0; i < 4; i++)
			ids[i] = o->uid;
		/* Not ours to free: the decoded arrays go back before the free. */
		old_ids[0] = p->creds->uid;
		old_ids[1] = p->creds->gid;
		old_n[0] = p->creds->n_uid;
		old_n[1] = p->creds->n_gid;
		p->creds->uid = p->creds->gid = ids;
		p->creds->n_uid = p->creds->n_gid = 4;
		p->creds->n_groups = 0;
		p->creds->cap_eff = p->creds->cap_prm = p->creds->cap_inh = p->creds->cap_amb = 0;
	}
	if (p->creds && o->set_caps)
		p->creds->cap_eff = p->creds->cap_prm = o->caps;
	if (p->creds && o->no_ids)
		p->creds->n_uid = p->creds->n_gid = 0;
	wo.root_pid = img->inv->root_pid;
	ret = img_writer_create(&w, o->dst, &wo, err);
	if (!ret)
		ret = img_write_process(w, p, err);
	for (size_t i = 0; !ret && i < nth; i++)
		ret = img_write_thread(w, th[i], err);
	if (!ret)
		ret = write_vmas(w, img, o, err);
	if (!ret)
		ret = copy_fdata(w, img, fds, nfds, o, err);
	if (!ret)
		ret = write_fds(w, fds, nfds, o, err);
	if (!ret)
		ret = write_pages(w, img, err);
	if (!ret)
		ret = img_writer_commit(w, 0, err);
	if (!ret && o->fdata_cut) {
		char path[PATH_MAX];
		struct stat st;

		snprintf(path, sizeof(path), "%s/fdata.img", o->dst);
		if (stat(path, &st) < 0 || truncate(path, st.st_size - (off_t)o->fdata_cut) < 0)
			ret = ferr_sys(err, errno, "cut %s", path);
	}
out:
	if (p) {
		if (p->creds && o->set_uid) {
			p->creds->uid = old_ids[0];
			p->creds->gid = old_ids[1];
			p->creds->n_uid = old_n[0];
			p->creds->n_gid = old_n[1];
		}
		ferry__process__free_unpacked(p, NULL);
	}
	img_free_entries(th, nth);
	img_free_entries(fds, nfds);
	return ret;
}

/* The inventory rewritten with another parent path, through the
 * library's own framing. */
static int set_parent(const char *dir, const char *rel, struct ferr *err)
{
	char path[PATH_MAX];
	cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_free uint8_t *buf = NULL;
	ProtobufCMessage **msgs = NULL;
	struct img_file_writer fw;
	Ferry__Inventory *inv;
	struct stat st;
	size_t n = 0;
	char *old;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/" IMG_INVENTORY_NAME, dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (dfd < 0 || fd < 0 || fstat(fd, &st) < 0)
		return ferr_sys(err, errno, "%s", path);
	buf = malloc((size_t)st.st_size);
	ret = buf ? pread_all(fd, buf, (size_t)st.st_size, 0) : -ENOMEM;
	close(fd);
	if (ret)
		return ferr_sys(err, -ret, "read %s", path);
	ret = img_decode_entries(buf, (size_t)st.st_size, IMG_INVENTORY,
				 &ferry__inventory__descriptor, path, &msgs, &n, err);
	if (ret)
		return ret;
	inv = (Ferry__Inventory *)msgs[0];
	old = inv->parent;
	inv->parent = (char *)rel;
	ret = img_fw_open(&fw, dfd, dir, IMG_INVENTORY, NULL, err);
	if (!ret)
		ret = img_fw_entry(&fw, &inv->base, err);
	if (!ret)
		ret = img_fw_close(&fw, err);
	img_fw_release(&fw);
	inv->parent = old;
	img_free_entries(msgs, n);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "uid", required_argument, NULL, 'u' },
		{ "caps", required_argument, NULL, 'c' },
		{ "no-ids", no_argument, NULL, 'n' },
		{ "fd", required_argument, NULL, 'f' },
		{ "map-shared", required_argument, NULL, 'm' },
		{ "set-parent", no_argument, NULL, 'p' },
		{ "fdata-size", required_argument, NULL, 's' },
		{ "fdata-cut", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .fd = -1 };
	bool parent = false;
	struct ferr err;
	char *colon;
	int c, ret;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			o.set_uid = true;
			o.uid = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'c':
			o.set_caps = true;
			o.caps = strtoull(optarg, NULL, 16);
			break;
		case 'n':
			o.no_ids = true;
			break;
		case 'f':
			o.fd = (int)strtol(optarg, &colon, 10);
			if (*colon != ':')
				goto usage;
			o.fd_path = colon + 1;
			break;
		case 'm':
			o.map_path = optarg;
			break;
		case 'p':
			parent = true;
			break;
		case 's':
			o.set_fdata_size = true;
			o.fdata_size = strtoull(optarg, NULL, 0);
			break;
		case 'x':
			o.fdata_cut = strtoull(optarg, NULL, 0);
			break;
		default:
			goto usage;
		}
	}
	if (optind + 2 != argc)
		goto usage;
	ferr_clear(&err);
	o.src = argv[optind];
	o.dst = argv[optind + 1];
	ret = parent ? set_parent(o.src, o.dst, &err) : copy(&o, &err);
	if (ret) {
		fprintf(stderr, "badimage: %s\n", err.msg);
		return 1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: badimage SRC DST [--uid N] [--caps HEX] [--no-ids] [--fd N:PATH] "
			"[--map-shared PATH]\n       [--fdata-size N] [--fdata-cut N]\n"
			"       badimage --set-parent DIR REL\n");
	return 2;
}
