/* A read window on a pages.img (window.c). */
#ifndef FERRY_IMAGES_WINDOW_H
#define FERRY_IMAGES_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

/* Sized to stay in a core's cache between the read and its use. */
#define IMG_WINDOW_SIZE (256u << 10)

struct img_window {
	uint8_t *buf;       /* page-aligned, cap bytes */
	size_t cap;
	int fd;             /* the file the window holds, or -1 */
	uint64_t off, len;  /* the part of it held */
};

/* 0, or -ENOMEM. */
int img_window_init(struct img_window *w, size_t cap);
void img_window_free(struct img_window *w);
DEFINE_CLEANUP_VAL(img_window, img_window_free)

/* Are the len bytes at off of fd in the window now (a get would not read)? */
bool img_window_holds(const struct img_window *w, int fd, uint64_t off, uint64_t len);
/* The len bytes at off of fd, a file of size bytes: from the window if it
 * holds them, else read from off on (as much as the window takes, for the
 * runs that follow). NULL with *ret -errno: -ENODATA where the file is
 * shorter, -EINVAL where len is more than the window. The pointer is valid
 * until the next call. */
const uint8_t *img_window_get(struct img_window *w, int fd, uint64_t size, uint64_t off,
			      uint64_t len, int *ret);

#endif
