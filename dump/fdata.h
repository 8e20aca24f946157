/* The contents of memfds and deleted files, copied into fdata.img while the
 * target is frozen. */
#ifndef FERRY_DUMP_FDATA_H
#define FERRY_DUMP_FDATA_H

#include "images/img.h"
#include "proc/target.h"

/* f's contents (when it carries a FileData) from /proc/PID/fd/N into
 * fdata.img; their offset there goes into f->data. */
int __must_check dump_fd_data(struct target *t, struct img_writer *w, Ferry__Fd *f,
			      struct ferr *err);

#endif
