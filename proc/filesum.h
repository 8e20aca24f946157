/* What a file holds, not where it lives: the XXH3-128 of its content and
 * its ELF build-id, so that a restore on another host (where every file is
 * a copy with another inode) can tell it is the same file. The dump records
 * them in FileId (docs/IMAGES.md "Files behind the process"); restore/
 * computes them again on the files it finds. */
#ifndef FERRY_PROC_FILESUM_H
#define FERRY_PROC_FILESUM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/util.h"
#include "proto/images.pb-c.h"

#define FILESUM_LEN 16            /* XXH3-128, canonical (big-endian) */
#define FILESUM_BUILD_ID_MAX 64   /* longest build-id kept (SHA-1 ones are 20) */

/* XXH3-128 of the first len bytes of fd (read with pread, from 0). A file
 * shorter than len is -ESTALE with a message naming what. */
int __must_check filesum_hash(int fd, uint64_t len, const char *what, uint8_t out[FILESUM_LEN],
			      struct ferr *err);

/* The descriptor of the GNU build-id note of the ELF file fd (size bytes),
 * through its PT_NOTE program headers. 0 and *len 0 when it is no ELF file
 * or has none: only a read error is an error. */
int __must_check filesum_build_id(int fd, uint64_t size, uint8_t out[FILESUM_BUILD_ID_MAX],
				  size_t *len, struct ferr *err);

/* One file's content identity, keyed by what changes whenever its content
 * can have: device, inode, size, mtime and ctime. */
struct filesum {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	uint8_t xxh128[FILESUM_LEN];
	uint8_t build_id[FILESUM_BUILD_ID_MAX];
	uint8_t build_id_len;
};

/* A dump's files, each hashed once however many VMAs and fds show it, and
 * seeded from the parent's images so that rounds hash only what is new. */
struct filesum_cache {
	struct filesum *v;
	size_t n, cap;
	uint64_t (*live)[2];      /* dev, ino of files mapped shared and writable */
	size_t nr_live;
	uint64_t hashed_files, hashed_bytes, hits, hash_ns;
};

void filesum_cache_free(struct filesum_cache *c);
DEFINE_CLEANUP_VAL(filesum_cache, filesum_cache_free)

/* Remember what an earlier dump recorded in id (dev, ino, size, mtime,
 * ctime and a checksum; anything less is ignored). */
int __must_check filesum_seed(struct filesum_cache *c, const Ferry__FileId *id, struct ferr *err);

/* The file dev/ino is mapped shared and writable: the process changes its
 * content as it runs (without always moving its mtime), so no checksum of
 * it could be trusted. filesum_fill marks it live instead. */
int __must_check filesum_mark_live(struct filesum_cache *c, uint64_t dev, uint64_t ino,
				   struct ferr *err);

/* Record the content identity of the regular file at dirfd/path (a
 * /proc/PID link: the file the process has, wherever it is) in id, from the
 * cache when dev, ino, size, mtime and ctime are those of an entry, else
 * read and hashed, and cached. If the file changed since id was taken,
 * id's size and times become those of what was hashed. A file that is not
 * regular is left alone. */
int __must_check filesum_fill(struct filesum_cache *c, int dirfd, const char *path,
			      Ferry__FileId *id, struct ferr *err);

/* The key fields of st in nanoseconds. */
static inline int64_t filesum_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000ll + ts->tv_nsec;
}

#endif
