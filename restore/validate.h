/* Restore's first step: check that an image chain can be restored here
 * before anything is created (docs/IMAGES.md, issue "ferry restore"). */
#ifndef FERRY_RESTORE_VALIDATE_H
#define FERRY_RESTORE_VALIDATE_H

#include <sys/types.h>

#include "images/img.h"

struct rst_check_report {
	struct img_verify_report verify;
	size_t files_checked;     /* distinct files behind mappings, fds and exe */
};

/* A full dump (not a pre-dump) for this architecture and page size, every
 * page checksum right through the chain, and every file that backs a
 * mapping, an fd or the executable still the same file (device, inode,
 * size, mtime). The first failure is returned with a message naming it. */
int __must_check rst_validate(struct img_image *img, struct rst_check_report *rep, bool chain,
			      struct ferr *err);

/* Is rdev one of the character devices whose open cannot block or act
 * (null, zero, full, random, urandom)? */
bool rst_dev_harmless(dev_t rdev);

/* Does the file type in mode fit what the image says the fd is? */
bool rst_fd_type_fits(const Ferry__Fd *f, mode_t mode);

#endif
