/* fdata.img: the contents of files that exist nowhere but in the process
 * (memfds, files deleted while open), one after the other behind the
 * header. Fd entries say where each is (FileData); the inventory carries
 * the file's size and checksum like any metadata file's, but a reader maps
 * it instead of loading it whole. */
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "images/format.h"
#include "images/load.h"
#include "images/writer.h"

#define FDATA_CHUNK (1u << 20)

int img_write_fdata(struct img_writer *w, int src, uint64_t size, uint64_t *off, struct ferr *err)
{
	struct img_file_writer *fw = &w->files[IMG_FDATA];
	cleanup_free uint8_t *buf = NULL;
	uint64_t done = 0;
	int ret;

	if (w->kind != FERRY__DUMP_KIND__DUMP_FULL)
		return ferr_new(err, EINVAL, "%s: a pre-dump has no file contents", w->path);
	if (!w->open[IMG_FDATA]) {
		ret = img_fw_open(fw, w->dirfd, w->path, IMG_FDATA, NULL, err);
		w->open[IMG_FDATA] = true; /* so that release closes a half-opened one */
		if (ret)
			return ret;
	}
	buf = malloc(FDATA_CHUNK);
	if (!buf)
		return ferr_sys(err, ENOMEM, "%s", fw->what);
	*off = fw->size;
	while (done < size) {
		size_t want = size - done < FDATA_CHUNK ? (size_t)(size - done) : FDATA_CHUNK;

		ret = pread_all(src, buf, want, (off_t)done);
		if (ret == -ENODATA)
			return ferr_new(err, EIO, "the file ended at less than the %llu bytes it had "
					"when the dump began", (unsigned long long)size);
		if (ret)
			return ferr_sys(err, -ret, "read the file's contents");
		ret = img_fw_write(fw, buf, want, err);
		if (ret)
			return ret;
		done += want;
	}
	return 0;
}

int img_fdata_map(const struct img_image *img, struct img_fdata *out, struct ferr *err)
{
	const Ferry__ImageFile *f = img_inv_file(img->inv, IMG_FDATA);
	cleanup_close int fd = -1;
	char what[PATH_MAX + 32];
	void *m;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!f)
		return -ENOENT;
	snprintf(what, sizeof(what), "%s/%s", img->path, f->name);
	fd = img_open_sized(img->dirfd, f->name, what, f->size, err);
	if (fd < 0)
		return fd;
	if (f->size < IMG_HEADER_SIZE || f->size > SIZE_MAX)
		return ferr_new(err, EBADMSG, "%s: shorter than its header", what);
	m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return ferr_sys(err, errno, "map %s", what);
	out->map = m;
	out->size = (size_t)f->size;
	ret = img_header_check(m, out->size, IMG_FDATA, what, err);
	if (!ret && (!f->has_xxh3 || XXH3_64bits(m, out->size) != f->xxh3))
		ret = ferr_new(err, EBADMSG, "%s: checksum does not match the inventory", what);
	if (ret)
		img_fdata_unmap(out);
	return ret;
}

void img_fdata_unmap(struct img_fdata *d)
{
	if (d->map)
		munmap((void *)d->map, d->size);
	memset(d, 0, sizeof(*d));
}
