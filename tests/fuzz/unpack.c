/* A fuzz input unpacked into a dump directory tree (the format is in
 * tests/fuzz/unpack.h), its inventories made to match what was unpacked. */
#include <ctype.h>
#include <endian.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "images/img.h"
#include "tests/fuzz/unpack.h"

#define DIR_NAME_MAX 48
#define DIR_DEPTH_MAX 3
#define FILE_MAX (64u << 20)   /* larger than any input: a file is read whole */

static int rm_below(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

/* Is name[0..len) a path slot 0 takes: plain names joined by '/'? */
static bool dir_ok(const uint8_t *name, size_t len)
{
	size_t start = 0, depth = 0;

	if (len > DIR_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && name[i] != '/') {
			if (!isalnum(name[i]) && !memchr("._-", name[i], 3))
				return false;
			continue;
		}
		/* The end of a component: not empty, ".", or "..". */
		size_t c = i - start;

		if (!c || (c <= 2 && !memcmp(name + start, "..", c)) || ++depth > DIR_DEPTH_MAX)
			return false;
		start = i + 1;
	}
	return true;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return;
	if (write(fd, data, len) < 0) {
		/* a short file is one more input to handle */
	}
	close(fd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	uint8_t *buf = NULL;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= FILE_MAX) {
		buf = malloc((size_t)st.st_size + 1);
		if (buf && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)st.st_size;
	}
	close(fd);
	return buf;
}

/* dir/inventory.img, if it decodes, rewritten to give each file it names
 * the size and checksum of that file as unpacked. */
static void fix_inventory(const char *dir)
{
	char path[PATH_MAX];
	ProtobufCMessage **msgs = NULL;
	Ferry__Inventory *inv;
	size_t len, n = 0, packed;
	uint8_t *buf, *out;
	struct ferr err;
	uint32_t le;

	snprintf(path, sizeof(path), "%s/%s", dir, IMG_INVENTORY_NAME);
	buf = read_file(path, &len);
	if (!buf)
		return;
	if (len < IMG_HEADER_SIZE ||
	    img_decode_entries(buf, len, IMG_INVENTORY, &ferry__inventory__descriptor, path, &msgs,
			       &n, &err) || n != 1) {
		img_free_entries(msgs, n);
		free(buf);
		return;
	}
	inv = (Ferry__Inventory *)msgs[0];
	for (size_t i = 0; i < inv->n_files; i++) {
		Ferry__ImageFile *f = inv->files[i];
		char fpath[PATH_MAX];
		uint8_t *data;
		size_t flen;

		if (!f->name || !*f->name || strchr(f->name, '/'))
			continue;
		snprintf(fpath, sizeof(fpath), "%s/%s", dir, f->name);
		data = read_file(fpath, &flen);
		if (!data)
			continue;
		f->size = flen;
		if (f->has_xxh3)
			f->xxh3 = XXH3_64bits(data, flen);
		free(data);
	}
	packed = protobuf_c_message_get_packed_size(&inv->base);
	out = malloc(IMG_HEADER_SIZE + 4 + packed);
	if (out) {
		memcpy(out, buf, IMG_HEADER_SIZE);
		le = htole32((uint32_t)packed);
		memcpy(out + IMG_HEADER_SIZE, &le, 4);
		protobuf_c_message_pack(&inv->base, out + IMG_HEADER_SIZE + 4);
		write_file(path, out, IMG_HEADER_SIZE + 4 + packed);
		free(out);
	}
	img_free_entries(msgs, n);
	free(buf);
}

/* root/name[0..len) (dir_ok), made with every directory on the way. */
static bool make_dir(const char *root, const uint8_t *name, size_t len, char *out, size_t size)
{
	size_t base = strlen(root) + 1;

	if ((size_t)snprintf(out, size, "%s/%.*s", root, (int)len, (const char *)name) >= size)
		return false;
	for (size_t i = base; out[i]; i++) {
		if (out[i] != '/')
			continue;
		out[i] = '\0';
		mkdir(out, 0700);
		out[i] = '/';
	}
	mkdir(out, 0700);
	return true;
}

void fuzz_unpack(const char *root, const uint8_t *data, size_t size)
{
	char dirs[FUZZ_DIRS_MAX + 1][PATH_MAX];
	size_t ndirs = 1, cur = 0;
	bool keep = false;

	nftw(root, rm_below, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(dirs[0], sizeof(dirs[0]), "%s", root);
	while (size >= 5) {
		uint8_t slot = data[0];
		uint32_t len;

		memcpy(&len, data + 1, 4);
		len = le32toh(len);
		data += 5;
		size -= 5;
		if (len > size)
			len = (uint32_t)size;
		if (slot == FUZZ_SLOT_DIR) {
			if (!len) {
				cur = 0;
			} else if (ndirs <= FUZZ_DIRS_MAX && dir_ok(data, len) &&
				   make_dir(root, data, len, dirs[ndirs], sizeof(dirs[ndirs]))) {
				cur = ndirs++;
			}
		} else if (slot >= 1 && slot < IMG_NR_TYPES) {
			char path[PATH_MAX + 32];

			snprintf(path, sizeof(path), "%s/%s", dirs[cur], img_type_file((enum img_type)slot));
			write_file(path, data, len);
		} else if (slot == FUZZ_SLOT_KEEP_INVENTORY) {
			keep = true;
		}
		data += len;
		size -= len;
	}
	for (size_t i = 0; !keep && i < ndirs; i++)
		fix_inventory(dirs[i]);
}
