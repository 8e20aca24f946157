/* Internal to images/: the buffered, hashing entry writer and file naming. */
#ifndef FERRY_IMAGES_FORMAT_H
#define FERRY_IMAGES_FORMAT_H

#include <fcntl.h>
#include <limits.h>
#include <xxhash.h>

#include "images/img.h"

DEFINE_CLEANUP(XXH3_state_s, XXH3_freeState)

struct img_file_writer {
	int fd;
	enum img_type type;
	char what[PATH_MAX + 32];   /* "dir/file.img" for messages */
	uint8_t *buf;
	size_t len;
	uint64_t size;              /* bytes written so far, header included */
	XXH3_state_t *hash;         /* of every byte, for the inventory */
};

enum img_type img_type_by_file(const char *name);

/* Create name in dirfd afresh (O_EXCL, O_NOFOLLOW, 0600), removing what
 * had the name: the fd, or -errno. */
int img_create_at(int dirfd, const char *name);

/* Create dir/name (the type's own file name when name is NULL), header written. */
int img_fw_open(struct img_file_writer *fw, int dirfd, const char *dirpath, enum img_type type,
		const char *name, struct ferr *err);
int img_fw_write(struct img_file_writer *fw, const void *data, size_t len, struct ferr *err);
int img_fw_entry(struct img_file_writer *fw, const ProtobufCMessage *msg, struct ferr *err);
int img_fw_flush(struct img_file_writer *fw, struct ferr *err);
/* Flush and fsync; the fd stays open until img_fw_release. */
int img_fw_close(struct img_file_writer *fw, struct ferr *err);
void img_fw_release(struct img_file_writer *fw);

#endif
