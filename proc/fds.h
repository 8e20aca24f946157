/* The target's file descriptors: regular files, directories and character
 * devices are dumped; anything else is listed so the dump can refuse it. */
#ifndef FERRY_PROC_FDS_H
#define FERRY_PROC_FDS_H

#include <stdbool.h>

#include "proc/target.h"
#include "proto/images.pb-c.h"

struct fd_list {
	Ferry__Fd **fds;
	size_t n;
	size_t nr_unsupported;
};

/* On error *out is left empty: there is nothing to free. */
int __must_check fds_collect(struct target *t, struct fd_list *out, struct ferr *err);
bool fd_supported(const Ferry__Fd *f);
/* "fd 3 (pipe:[1234]), fd 5 (socket:[99])" for an error message. */
void fds_describe_unsupported(const struct fd_list *l, char *buf, size_t len);
/* Free and zero; harmless on a zeroed list or one freed already. */
void fds_free(struct fd_list *l);
DEFINE_CLEANUP_VAL(fd_list, fds_free)

#endif
