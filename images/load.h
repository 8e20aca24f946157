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

/* ---- pagemap.c ---------------------------------------------------------- */

/* Is [start, end) covered by img's VMAs without a gap? */
bool img_vmas_cover(const struct img_image *img, uint64_t start, uint64_t end);
/* Is [start, end) described by img's runs without a gap? */
bool img_runs_cover(const struct img_image *img, uint64_t start, uint64_t end);

#endif
