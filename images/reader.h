/* Internal to images/: loading and validating the parts of an open image. */
#ifndef FERRY_IMAGES_READER_H
#define FERRY_IMAGES_READER_H

#include "images/img.h"

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

#endif
