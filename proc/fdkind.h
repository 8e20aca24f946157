/* Fds that are kernel objects of the process rather than paths: eventfd,
 * timerfd, signalfd, epoll, inotify, memfd and files deleted while open.
 * fds.c asks here for their kind and their state. */
#ifndef FERRY_PROC_FDKIND_H
#define FERRY_PROC_FDKIND_H

#include <stdbool.h>
#include <sys/stat.h>

#include "proc/fds.h"

/* The kind of one of these fds from its /proc/PID/fd link and stat, or 0
 * when it is none of them. */
Ferry__FdKind fdkind_of(const struct stat *st, const char *link);
/* Its state into e (e->fd, e->kind set): from fdinfo, and for inotify
 * the watched files found by handle. What cannot be read leaves e without
 * its state, and fdkind_supported() then says no (the reason logged). */
int __must_check fdkind_collect(struct target *t, Ferry__Fd *e, struct ferr *err);
bool fdkind_supported(const Ferry__Fd *f);
/* After the whole list is read: one file's contents are saved once, with
 * the lowest fd that has it open. */
void fdkind_finish(struct fd_list *l);
/* "timerfd", "memfd", ...; NULL for the path kinds. */
const char *fdkind_name(Ferry__FdKind k);

#endif
