/* The framing every image file shares: the header, and entries as a
 * little-endian u32 length followed by a protobuf-c message. */
#include <endian.h>
#include <string.h>

#include "images/format.h"

static const char *const type_files[IMG_NR_TYPES] = {
	[IMG_INVENTORY] = IMG_INVENTORY_NAME,
	[IMG_PROCESS] = "process.img",
	[IMG_THREADS] = "threads.img",
	[IMG_VMAS] = "vmas.img",
	[IMG_FDS] = "fds.img",
	[IMG_PAGEMAP] = "pagemap.img",
	[IMG_PAGES] = "pages.img",
	[IMG_HASHES] = "hashes.img",
	[IMG_FDATA] = "fdata.img",
	[IMG_TREE] = "tree.img",
};

const char *img_type_file(enum img_type t)
{
	if (t <= 0 || t >= IMG_NR_TYPES)
		return "?";
	return type_files[t];
}

enum img_type img_type_by_file(const char *name)
{
	for (int t = 1; t < IMG_NR_TYPES; t++)
		if (strcmp(type_files[t], name) == 0)
			return (enum img_type)t;
	return 0;
}

void img_header_fill(struct img_header *h, enum img_type type)
{
	h->magic = htole32(IMG_MAGIC);
	h->type = htole32((uint32_t)type);
	h->major = htole16(IMG_FORMAT_MAJOR);
	h->minor = htole16(IMG_FORMAT_MINOR);
	h->reserved = 0;
}

int img_header_check(const void *buf, size_t len, enum img_type type, const char *what,
		     struct ferr *err)
{
	struct img_header h;

	if (len < sizeof(h))
		return ferr_new(err, EBADMSG, "%s: truncated: %zu bytes, shorter than the %zu-byte header",
				what, len, sizeof(h));
	memcpy(&h, buf, sizeof(h));
	if (le32toh(h.magic) != IMG_MAGIC)
		return ferr_new(err, EBADMSG, "%s: wrong magic 0x%08x: not a ferry image", what,
				le32toh(h.magic));
	if (le32toh(h.type) != (uint32_t)type)
		return ferr_new(err, EBADMSG, "%s: file type %u, expected %u (%s)", what,
				le32toh(h.type), (unsigned)type, img_type_file(type));
	if (le16toh(h.major) != IMG_FORMAT_MAJOR)
		return ferr_new(err, EPROTONOSUPPORT,
				"%s: format version %u.%u is not supported (this ferry reads %u.x)", what,
				le16toh(h.major), le16toh(h.minor), IMG_FORMAT_MAJOR);
	return 0;
}

int img_decode_entries(const uint8_t *buf, size_t len, enum img_type type,
		       const ProtobufCMessageDescriptor *desc, const char *what,
		       ProtobufCMessage ***out, size_t *n, struct ferr *err)
{
	ProtobufCMessage **msgs = NULL;
	size_t nr = 0, cap = 0, pos = IMG_HEADER_SIZE;
	int ret;

	ret = img_header_check(buf, len, type, what, err);
	if (ret)
		return ret;
	while (pos < len) {
		uint32_t elen;
		ProtobufCMessage *m;

		if (len - pos < sizeof(elen)) {
			ret = ferr_new(err, EBADMSG, "%s: entry %zu: truncated length prefix at offset %zu",
				       what, nr, pos);
			goto fail;
		}
		memcpy(&elen, buf + pos, sizeof(elen));
		elen = le32toh(elen);
		pos += sizeof(elen);
		if (elen > IMG_ENTRY_MAX) {
			ret = ferr_new(err, EBADMSG, "%s: entry %zu: length %u exceeds the %u-byte limit",
				       what, nr, elen, IMG_ENTRY_MAX);
			goto fail;
		}
		if (elen > len - pos) {
			ret = ferr_new(err, EBADMSG,
				       "%s: entry %zu: truncated: %u bytes announced, %zu present", what,
				       nr, elen, len - pos);
			goto fail;
		}
		m = protobuf_c_message_unpack(desc, NULL, elen, buf + pos);
		if (!m) {
			ret = ferr_new(err, EBADMSG, "%s: entry %zu: does not decode as %s", what, nr,
				       desc->name);
			goto fail;
		}
		if (nr == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			ProtobufCMessage **t = realloc(msgs, ncap * sizeof(*t));
			if (!t) {
				protobuf_c_message_free_unpacked(m, NULL);
				ret = ferr_sys(err, ENOMEM, "%s: entry %zu", what, nr);
				goto fail;
			}
			msgs = t;
			cap = ncap;
		}
		msgs[nr++] = m;
		pos += elen;
	}
	*out = msgs;
	*n = nr;
	return 0;
fail:
	img_free_entries(msgs, nr);
	return ret;
}

void img_free_entries(void *entries, size_t n)
{
	ProtobufCMessage **msgs = entries;

	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(msgs[i], NULL);
	free(msgs);
}

/* ---- the buffered entry writer ----------------------------------------- */

#define IMG_WBUF_SIZE (1u << 20)

/* A file of ours, new: whatever had the name (an old dump's file, or a
 * symbolic link someone planted) is removed, never followed or reused. */
int img_create_at(int dirfd, const char *name)
{
	int fd;

	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int img_fw_open(struct img_file_writer *fw, int dirfd, const char *dirpath, enum img_type type,
		const char *name, struct ferr *err)
{
	struct img_header h;

	if (!name)
		name = img_type_file(type);

	memset(fw, 0, sizeof(*fw));
	fw->fd = -1;
	fw->type = type;
	snprintf(fw->what, sizeof(fw->what), "%s/%s", dirpath, name);
	fw->buf = malloc(IMG_WBUF_SIZE);
	fw->hash = XXH3_createState();
	if (!fw->buf || !fw->hash)
		return ferr_sys(err, ENOMEM, "%s", fw->what);
	XXH3_64bits_reset(fw->hash);
	fw->fd = img_create_at(dirfd, name);
	if (fw->fd < 0)
		return ferr_sys(err, -fw->fd, "create %s", fw->what);
	img_header_fill(&h, type);
	return img_fw_write(fw, &h, sizeof(h), err);
}

int img_fw_flush(struct img_file_writer *fw, struct ferr *err)
{
	int ret;

	if (!fw->len)
		return 0;
	/* size counts every byte accepted, the buffered ones included. */
	ret = pwrite_all(fw->fd, fw->buf, fw->len, fw->size - fw->len);
	if (ret)
		return ferr_sys(err, -ret, "write %s", fw->what);
	fw->len = 0;
	return 0;
}

int img_fw_write(struct img_file_writer *fw, const void *data, size_t len, struct ferr *err)
{
	const uint8_t *p = data;

	XXH3_64bits_update(fw->hash, data, len);
	while (len) {
		size_t n = IMG_WBUF_SIZE - fw->len;
		int ret;

		if (n > len)
			n = len;
		memcpy(fw->buf + fw->len, p, n);
		fw->len += n;
		/* Counted as it is buffered: a flush writes at size - len. */
		fw->size += n;
		p += n;
		len -= n;
		if (fw->len == IMG_WBUF_SIZE) {
			ret = img_fw_flush(fw, err);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int img_fw_entry(struct img_file_writer *fw, const ProtobufCMessage *msg, struct ferr *err)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t small[512];
	cleanup_free uint8_t *big = NULL;
	uint8_t *p = small;
	uint32_t le;
	int ret;

	if (len > IMG_ENTRY_MAX)
		return ferr_new(err, EOVERFLOW, "%s: %s entry of %zu bytes exceeds the limit",
				fw->what, msg->descriptor->name, len);
	if (len > sizeof(small)) {
		big = malloc(len);
		if (!big)
			return ferr_sys(err, ENOMEM, "%s", fw->what);
		p = big;
	}
	protobuf_c_message_pack(msg, p);
	le = htole32((uint32_t)len);
	ret = img_fw_write(fw, &le, sizeof(le), err);
	if (!ret)
		ret = img_fw_write(fw, p, len, err);
	return ret;
}

int img_fw_close(struct img_file_writer *fw, struct ferr *err)
{
	int ret = img_fw_flush(fw, err);

	if (ret)
		return ret;
	if (fsync(fw->fd) < 0)
		return ferr_sys(err, errno, "fsync %s", fw->what);
	return 0;
}

void img_fw_release(struct img_file_writer *fw)
{
	if (fw->fd >= 0)
		close(fw->fd);
	fw->fd = -1;
	free(fw->buf);
	fw->buf = NULL;
	if (fw->hash)
		XXH3_freeState(fw->hash);
	fw->hash = NULL;
}
