/* Small helpers every module uses: cleanup attributes so early returns cannot
 * leak, ownership steals, and a few macros. */
#ifndef FERRY_COMMON_UTIL_H
#define FERRY_COMMON_UTIL_H

#include <dirent.h>
#include <errno.h>
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

#define cleanup_free __attribute__((cleanup(freep)))
#define cleanup_close __attribute__((cleanup(closep)))
#define cleanup_fclose __attribute__((cleanup(fclosep)))
#define cleanup_dir __attribute__((cleanup(closedirp)))

/* Take ownership out of a cleanup-managed variable. */
#define steal_ptr(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define steal_fd(fd) ({ int _t = (fd); (fd) = -1; _t; })

#define PAGE_SHIFT_4K 12

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline int ferry_page_size(void)
{
	return (int)sysconf(_SC_PAGESIZE);
}

/* Read a whole small file (procfs, sysfs) into a NUL-terminated buffer. */
int read_small_file_at(int dirfd, const char *path, char *buf, size_t size);

/* pwrite() all of buf at off, retrying short writes and EINTR. */
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* pread() exactly len bytes; -EIO-like short read is reported as -ENODATA. */
int pread_all(int fd, void *buf, size_t len, uint64_t off);

#endif
