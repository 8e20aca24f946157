/* Internal to images/: loading and validating the parts of an image being
 * opened (load.c), and the lookups in its sorted tables that the
 * validation uses (pagemap.c). reader.c opens images with the one, and
 * pagemap.c never calls back into load.c. */
#ifndef FERRY_IMAGES_LOAD_H
#define FERRY_IMAGES_LOAD_H

#include "images/img.h"

/* ---- load.c ------------------------------------------------------------- */

/* The inventory's record of a file of type t, or NULL. */
const Ferry__ImageFile *img_inv_file(const Ferry__Inventory *inv, enum img_type t);
/* Load a metadata file whole, checking its size and checksum against the inventory. */
/* name in dirfd, no symlink, a regular file of exactly size bytes (as the
 * inventory records): its fd, or -errno with what named. */
int img_open_sized(int dirfd, const char *name, const char *what, uint64_t size,
		   struct ferr *err);

int img_load_file(const struct img_image *img, enum img_type t, uint8_t **buf, size_t *len,
		  struct ferr *err);
bool img_has_file(const struct img_image *img, enum img_type t);
int img_load_entries(const struct img_image *img, enum img_type t,
		     const ProtobufCMessageDescriptor *desc, ProtobufCMessage ***out, size_t *n,
		     struct ferr *err);

/* vmas.img: sorted, aligned, non-overlapping, known kinds. */
int img_load_vmas(struct img_image *img, struct ferr *err);
/* pagemap.img: runs checked against the VMAs, pages.img and the parent chain
 * (which must already be open). */
int img_load_pagemap(struct img_image *img, struct ferr *err);

/* ---- check.c ------------------------------------------------------------ */

/* Bounds on every count, length and number in these entries (what names
 * the file in messages). */
int img_check_process(const char *what, const Ferry__Process *p, struct ferr *err);
int img_check_threads(const char *what, Ferry__Thread *const *t, size_t n, struct ferr *err);
int img_check_fds(const char *what, Ferry__Fd *const *f, size_t n, struct ferr *err);
int img_check_tree(const char *what, Ferry__TreeItem *const *t, size_t n, struct ferr *err);
/* Every FileData inside fdata.img's fdata_size bytes (0: the dump has none). */
int img_check_fd_data(const char *what, Ferry__Fd *const *f, size_t n, uint64_t fdata_size,
		      struct ferr *err);
/* Open the parent directory rel names, relative to dirfd, one name at a
 * time and never through a symbolic link: the fd, or -errno. */
int img_open_parent_dir(int dirfd, const char *rel, const char *what, struct ferr *err);

/* ---- pagemap.c ---------------------------------------------------------- */

/* Is [start, end) covered by img's VMAs without a gap? */
bool img_vmas_cover(const struct img_image *img, uint64_t start, uint64_t end);
/* Is [start, end) described by img's runs without a gap? */
bool img_runs_cover(const struct img_image *img, uint64_t start, uint64_t end);

#endif
