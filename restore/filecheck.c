/* Is a file behind the process the one the dump saw? Checked by what it
 * is (type, size, build-id, content), never by where it lives: device and
 * inode differ for every file on another host, and for a copy on this one. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <unistd.h>

#include "restore/validate.h"

int rst_file_validation_parse(const char *s, enum rst_file_validation *out)
{
	static const enum rst_file_validation all[] = { RST_FILES_CONTENT, RST_FILES_SIZE,
							RST_FILES_NONE };

	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		if (!strcmp(s, rst_file_validation_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

const char *rst_file_validation_name(enum rst_file_validation m)
{
	switch (m) {
	case RST_FILES_CONTENT:
		return "content";
	case RST_FILES_SIZE:
		return "size";
	case RST_FILES_NONE:
		return "none";
	}
	return "?";
}

void rst_files_free(struct rst_files *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].path);
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

static struct rst_file_seen *seen_at(const struct rst_files *f, const char *path)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->v[i].path, path))
			return &f->v[i];
	return NULL;
}

/* On a mount of the view other than its root: the innermost point path
 * lies under. */
static bool on_later_mount(const struct rst_view *v, const char *path)
{
	for (size_t i = 0; v && i < v->nr_points; i++) {
		size_t n = strlen(v->points[i]);

		if (!strncmp(path, v->points[i], n) && (path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return false;
}

int rst_view_open(const struct rst_view *v, const char *path, int flags, int *fd)
{
	if (!v || v->rootfd < 0) {
		*fd = open(path, flags | O_CLOEXEC);
		return *fd < 0 ? -errno : 1;
	}
	if (on_later_mount(v, path))
		return 0;
	/* Symlinks inside resolve in the container's root, not ferry's. */
	*fd = openat2_resolve(v->rootfd, path, flags, RESOLVE_IN_ROOT);
	return *fd < 0 ? -errno : 1;
}

int rst_view_stat(const struct rst_view *v, const char *path, struct stat *st)
{
	int fd, ret;

	if (!v || v->rootfd < 0)
		return stat(path, st) < 0 ? -errno : 1;
	ret = rst_view_open(v, path, O_PATH, &fd);
	if (ret <= 0)
		return ret;
	ret = fstat(fd, st) < 0 ? -errno : 1;
	close(fd);
	return ret;
}

bool rst_file_is(const struct rst_files *f, const char *path, const struct stat *st)
{
	const struct rst_file_seen *s = seen_at(f, path);

	/* What a later mount holds could not be checked before it was built. */
	if (!s && f->view && on_later_mount(f->view, path))
		return true;
	return s && s->dev == st->st_dev && s->ino == st->st_ino;
}

/* The entry for path, as st says it is now (a checksum known for an
 * earlier state of it forgotten). */
static struct rst_file_seen *remember(struct rst_files *f, const char *path, const struct stat *st,
				      struct ferr *err)
{
	struct rst_file_seen *s = seen_at(f, path);

	if (!s) {
		s = realloc(f->v, (f->n + 1) * sizeof(*s));
		if (!s)
			return ferr_sys(err, ENOMEM, "checked files"), NULL;
		f->v = s;
		s = &f->v[f->n];
		memset(s, 0, sizeof(*s));
		s->path = strdup(path);
		if (!s->path)
			return ferr_sys(err, ENOMEM, "checked files"), NULL;
		f->n++;
	}
	if (s->dev != st->st_dev || s->ino != st->st_ino || s->size != (uint64_t)st->st_size ||
	    s->mtime_ns != filesum_ns(&st->st_mtim) || s->ctime_ns != filesum_ns(&st->st_ctim))
		s->summed = false;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = (uint64_t)st->st_size;
	s->mtime_ns = filesum_ns(&st->st_mtim);
	s->ctime_ns = filesum_ns(&st->st_ctim);
	return s;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG:
		return "a regular file";
	case S_IFDIR:
		return "a directory";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFIFO:
		return "a FIFO";
	case S_IFSOCK:
		return "a socket";
	case S_IFLNK:
		return "a symbolic link";
	}
	return "of an unknown type";
}

static void hex(const uint8_t *p, size_t n, char *out, size_t len)
{
	size_t k = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && k + 3 <= len; i++)
		k += (size_t)snprintf(out + k, len - k, "%02x", p[i]);
}

/* Build-id (a quick refusal of another build), then the checksum over the
 * dumped size. */
static int check_content(struct rst_files *f, struct rst_file_seen *s, const char *what,
			 const char *path, const Ferry__FileId *id, struct ferr *err)
{
	uint8_t bid[FILESUM_BUILD_ID_MAX], sum[FILESUM_LEN];
	char then[2 * FILESUM_BUILD_ID_MAX + 1], now[2 * FILESUM_BUILD_ID_MAX + 1];
	cleanup_close int fd = -1;
	struct stat st;
	size_t bid_len;
	uint64_t t0;
	int ret;

	if (!id->has_xxh128 || id->xxh128.len != FILESUM_LEN)
		return ferr_new(err, ESTALE, "%s `%s`: the image holds no content checksum for it "
				"(dumped by an older ferry, or unreadable then): "
				"--file-validation=size accepts it by its size", what, path);
	if (s->summed && s->sum_len == id->size && !memcmp(s->sum, id->xxh128.data, FILESUM_LEN))
		return 0;
	ret = rst_view_open(f->view, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, &fd);
	if (ret <= 0)
		return ferr_sys(err, ret ? -ret : ENOENT, "%s `%s`", what, path);
	if (fstat(fd, &st) < 0)
		return ferr_sys(err, errno, "%s `%s`", what, path);
	if (st.st_dev != s->dev || st.st_ino != s->ino)
		return ferr_new(err, ESTALE, "%s `%s` was replaced while it was checked", what, path);
	if (id->has_build_id) {
		ret = filesum_build_id(fd, (uint64_t)st.st_size, bid, &bid_len, err);
		if (ret)
			return ferr_wrap(err, "%s `%s`", what, path);
		if (bid_len != id->build_id.len || memcmp(bid, id->build_id.data, bid_len)) {
			hex(id->build_id.data, id->build_id.len, then, sizeof(then));
			hex(bid, bid_len, now, sizeof(now));
			return ferr_new(err, ESTALE, "%s `%s`: build-id differs (%s then, %s now)", what,
					path, then, bid_len ? now : "none");
		}
	}
	t0 = now_ns();
	ret = filesum_hash(fd, id->size, path, sum, err);
	if (ret)
		return ferr_wrap(err, "%s", what);
	f->hashed_files++;
	f->hashed_bytes += id->size;
	f->hash_ns += now_ns() - t0;
	if (memcmp(sum, id->xxh128.data, FILESUM_LEN))
		return ferr_new(err, ESTALE, "%s `%s`: content differs%s", what, path,
				id->size < (uint64_t)st.st_size ? " in the part it had when dumped" : "");
	/* Still the file stat saw: what was read is what is remembered. */
	if (fstat(fd, &st) < 0 || st.st_ino != s->ino || filesum_ns(&st.st_ctim) != s->ctime_ns)
		return ferr_new(err, ESTALE, "%s `%s` changed while it was checked", what, path);
	s->summed = true;
	s->sum_len = id->size;
	memcpy(s->sum, sum, FILESUM_LEN);
	return 0;
}

int rst_file_check(struct rst_files *f, const char *what, const char *path,
		   const Ferry__FileId *id, unsigned how, struct ferr *err)
{
	struct rst_file_seen *s;
	struct stat st;
	int ret;

	if (!path || !id)
		return 0;
	if (strstr(path, " (deleted)"))
		return ferr_new(err, ENOENT, "%s `%s` was already deleted when dumped: ferry cannot "
				"restore it", what, path);
	ret = rst_view_stat(f->view, path, &st);
	if (ret == 0)
		return 0; /* on a mount the restore builds: not there yet */
	if (ret < 0)
		return ferr_sys(err, -ret, "%s `%s`", what, path);
	if (id->has_mode && (st.st_mode & S_IFMT) != (id->mode & S_IFMT))
		return ferr_new(err, ESTALE, "%s `%s` was %s when dumped, it is %s now", what, path,
				type_name(id->mode), type_name(st.st_mode));
	s = remember(f, path, &st, err);
	if (!s)
		return -ENOMEM;
	/* A directory may have gained or lost entries: it is the same one. */
	if (!S_ISREG(st.st_mode) || f->mode == RST_FILES_NONE)
		return 0;
	if (id->has_size && ((how & RST_FILE_MAY_GROW) ? (uint64_t)st.st_size < id->size
						       : (uint64_t)st.st_size != id->size))
		return ferr_new(err, ESTALE, "%s `%s`: size %" PRIu64 " then, %" PRIu64 " now%s", what,
				path, id->size, (uint64_t)st.st_size,
				(how & RST_FILE_MAY_GROW) ? " (opened O_APPEND: it may only grow)" : "");
	/* Mapped shared and writable: its content is the process's to change. */
	if (f->mode == RST_FILES_SIZE || (id->has_live && id->live))
		return 0;
	return check_content(f, s, what, path, id, err);
}
