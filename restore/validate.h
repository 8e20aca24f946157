/* Restore's first step: check that an image chain can be restored here
 * before anything is created (docs/IMAGES.md, issue "ferry restore"). */
#ifndef FERRY_RESTORE_VALIDATE_H
#define FERRY_RESTORE_VALIDATE_H

#include <sys/types.h>

#include "images/img.h"
#include "proc/filesum.h"
#include "restore/restore.h"

/* A file restore checked, as it is now on this host: what the child and
 * the mappings then open must be this one (same device and inode now). */
struct rst_file_seen {
	char *path;
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	bool summed;              /* its first sum_len bytes have the XXH3-128 sum */
	uint64_t sum_len;
	uint8_t sum[FILESUM_LEN];
};

/* The files one restore checked (a warm restore's across its rounds: a file
 * unchanged since an earlier round is not read again). */
/* Where the paths of the images are looked up: ferry's own root, or a
 * container's (restore --root) through rootfd, whose other mounts (points:
 * mounted anew, bound or external) the restore builds only later: a path
 * on one of them is not checked here. */
struct rst_view {
	int rootfd;
	const char *const *points;
	size_t nr_points;
};

struct rst_files {
	enum rst_file_validation mode;
	const struct rst_view *view;   /* NULL: ferry's root */
	struct rst_file_seen *v;
	size_t n;
	uint64_t hashed_files, hashed_bytes, hash_ns;
};

void rst_files_free(struct rst_files *f);

/* stat or open path as the restored process will see it: 1 and st (or the
 * fd) where it can be seen now, 0 where it lies on a mount the restore
 * builds later, -errno where it cannot be looked up. */
int rst_view_stat(const struct rst_view *v, const char *path, struct stat *st);
int rst_view_open(const struct rst_view *v, const char *path, int flags, int *fd);

#define RST_FILE_MAY_GROW 1u      /* an O_APPEND fd's file: may be larger now */

/* Is path (what names it in a message: "fd 3", "executable", ...) what id
 * says, as far as f->mode checks: its type always (a directory: nothing
 * else), then its size, then its build-id and content. Recorded in f. A
 * refusal names the file and what differs. */
int __must_check rst_file_check(struct rst_files *f, const char *what, const char *path,
				const Ferry__FileId *id, unsigned how, struct ferr *err);

/* Is st (of a file just opened at path) the file rst_file_check saw there? */
bool rst_file_is(const struct rst_files *f, const char *path, const struct stat *st);

struct rst_check_report {
	struct img_verify_report verify;
	size_t files_checked;     /* distinct files behind mappings, fds and exe */
};

/* A full dump (not a pre-dump) for this architecture and page size, every
 * page checksum right through the chain, and every file that backs a
 * mapping, an fd or the executable the same file as far as files->mode
 * checks (rst_file_check). The first failure is returned with a message
 * naming it. */
int __must_check rst_validate(struct img_image *img, struct rst_check_report *rep, bool chain,
			      struct rst_files *files, struct ferr *err);

/* Only the files behind img's mappings (a warm restore's rounds). */
int __must_check rst_validate_mappings(struct img_image *img, struct rst_files *files,
				       size_t *checked, struct ferr *err);

/* Is rdev one of the character devices whose open cannot block or act
 * (null, zero, full, random, urandom)? */
bool rst_dev_harmless(dev_t rdev);

/* Does the file type in mode fit what the image says the fd is? */
bool rst_fd_type_fits(const Ferry__Fd *f, mode_t mode);

#endif
