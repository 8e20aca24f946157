/* Small helpers every module uses: cleanup attributes so early returns cannot
 * leak, ownership steals, and a few macros. */
#ifndef FERRY_COMMON_UTIL_H
#define FERRY_COMMON_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define __must_check __attribute__((warn_unused_result))
#define __unused __attribute__((unused))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* One idiom for ferry's own types. DEFINE_CLEANUP(type, fn), next to the
 * type's release function, lets `cleanup(type) struct type *x = NULL;` call
 * fn(x) on every return unless x is NULL. For a type held by value whose
 * release function takes its address and copes with a zeroed or released
 * value (struct target, struct vma_list, ...), DEFINE_CLEANUP_VAL(type, fn)
 * lets `cleanup_val(type) struct type x = {...};` call fn(&x). Ownership
 * leaves with steal_ptr() (or by copying the value and zeroing it). */
#define DEFINE_CLEANUP(type, fn)                                              \
	static inline void cleanup_fn_##type(struct type **p)                 \
	{                                                                     \
		if (*p)                                                       \
			fn(*p);                                               \
	}
#define cleanup(type) __attribute__((__cleanup__(cleanup_fn_##type)))
#define DEFINE_CLEANUP_VAL(type, fn)                                          \
	static inline void cleanup_val_fn_##type(struct type *p)              \
	{                                                                     \
		fn(p);                                                        \
	}
#define cleanup_val(type) __attribute__((__cleanup__(cleanup_val_fn_##type)))

#define cleanup_free __attribute__((__cleanup__(freep)))
#define cleanup_close __attribute__((__cleanup__(closep)))
#define cleanup_fclose __attribute__((__cleanup__(fclosep)))
#define cleanup_dir __attribute__((__cleanup__(closedirp)))

/* Take ownership out of a cleanup-managed variable. */
#define steal_ptr(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define steal_fd(fd) ({ int _t = (fd); (fd) = -1; _t; })
/* The same for a cleanup_val() variable: its value, leaving it zeroed (which
 * its release function treats as nothing to release). */
#define steal_val(v) ({ __typeof__(v) _t = (v); (v) = (__typeof__(v)){ 0 }; _t; })

#define PAGE_SHIFT_4K 12

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline int ferry_page_size(void)
{
	return (int)sysconf(_SC_PAGESIZE);
}

/* The first index i in [0, n) for which below(ctx, i) is false, n if none:
 * a binary search over anything sorted so that below() holds for a prefix.
 * Every sorted table ferry searches (runs, VMAs, hashes) goes through it. */
size_t bsearch_first(size_t n, bool (*below)(const void *ctx, size_t i), const void *ctx);

/* CLOCK_MONOTONIC in nanoseconds: every duration ferry reports. */
uint64_t now_ns(void);

/* Open dirfd/path for reading as a DIR or a FILE (/proc/PID/task,
 * /proc/PID/maps): NULL with errno set, and no fd left behind, on failure. */
DIR *opendir_at(int dirfd, const char *path);
FILE *fopen_at(int dirfd, const char *path);

/* Read a whole small file (procfs, sysfs) into a NUL-terminated buffer. */
int read_small_file_at(int dirfd, const char *path, char *buf, size_t size);

/* openat2(2) with RESOLVE_* flags (resolve), close-on-exec: the fd, or -1
 * with errno set. */
int openat2_resolve(int dirfd, const char *path, int flags, uint64_t resolve);

/* pwrite() all of buf at off, retrying short writes and EINTR. */
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* pread() exactly len bytes; -EIO-like short read is reported as -ENODATA. */
int pread_all(int fd, void *buf, size_t len, uint64_t off);

#endif
