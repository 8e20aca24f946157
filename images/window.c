/* Reading pages.img through a window: pread of the run asked for and the
 * pages after it, into a buffer that the next runs of the same file are
 * then served from. Both readers of a whole image (the checksum check and
 * the restore's fill) go this way, not through mmap: mapping the page cache
 * costs a page-table entry per page, which a virtualised machine makes
 * dearer than the copy pread does (docs/PERFORMANCE.md, "Session 11"). */
#include <errno.h>
#include <sys/mman.h>

#include "common/util.h"
#include "images/window.h"

int img_window_init(struct img_window *w, size_t cap)
{
	*w = (struct img_window){ .fd = -1 };
	w->buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->buf == MAP_FAILED) {
		w->buf = NULL;
		return -ENOMEM;
	}
	w->cap = cap;
	return 0;
}

void img_window_free(struct img_window *w)
{
	if (w->buf)
		munmap(w->buf, w->cap);
	w->buf = NULL;
}

bool img_window_holds(const struct img_window *w, int fd, uint64_t off, uint64_t len)
{
	return fd == w->fd && off >= w->off && off + len <= w->off + w->len;
}

const uint8_t *img_window_get(struct img_window *w, int fd, uint64_t size, uint64_t off,
			      uint64_t len, int *ret)
{
	uint64_t want;

	*ret = 0;
	if (off > size || len > size - off || len > w->cap) {
		*ret = off > size || len > size - off ? -ENODATA : -EINVAL;
		return NULL;
	}
	if (img_window_holds(w, fd, off, len))
		return w->buf + (off - w->off);
	want = size - off < w->cap ? size - off : w->cap;
	w->fd = -1;
	*ret = pread_all(fd, w->buf, (size_t)want, off);
	if (*ret)
		return NULL;
	w->fd = fd;
	w->off = off;
	w->len = want;
	return w->buf;
}
