/* File descriptors from /proc/PID/fd and fdinfo, identified by stat so that
 * restore can check it reopens the same file. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "proc/fdkind.h"
#include "proc/fds.h"
#include "proc/locks.h"
#include "proc/state.h"

static Ferry__FdKind kind_of(const struct stat *st, const char *link)
{
	Ferry__FdKind k = fdkind_of(st, link);

	if (k)
		return k;
	if (S_ISREG(st->st_mode))
		return strstr(link, " (deleted)") ? FERRY__FD_KIND__FD_OTHER : FERRY__FD_KIND__FD_REG;
	if (S_ISDIR(st->st_mode))
		return FERRY__FD_KIND__FD_DIR;
	if (S_ISCHR(st->st_mode))
		return FERRY__FD_KIND__FD_CHR;
	if (S_ISFIFO(st->st_mode))
		return FERRY__FD_KIND__FD_PIPE;
	if (S_ISSOCK(st->st_mode))
		return FERRY__FD_KIND__FD_SOCKET;
	if (strcmp(link, "anon_inode:[eventfd]") == 0)
		return FERRY__FD_KIND__FD_EVENTFD;
	return FERRY__FD_KIND__FD_OTHER;
}

bool fd_supported(const Ferry__Fd *f)
{
	if ((f->kind == FERRY__FD_KIND__FD_PIPE || f->kind == FERRY__FD_KIND__FD_SOCKET) &&
	    f->has_obj_id)
		return true; /* its object was taken (proc/shared.c) */
	return f->kind == FERRY__FD_KIND__FD_REG || f->kind == FERRY__FD_KIND__FD_DIR ||
	       f->kind == FERRY__FD_KIND__FD_CHR || fdkind_supported(f);
}

static int read_fdinfo(struct target *t, int fd, Ferry__Fd *e, struct ferr *err)
{
	char path[64], buf[4096], *p;

	snprintf(path, sizeof(path), "fdinfo/%d", fd);
	if (read_small_file_at(t->procfd, path, buf, sizeof(buf)) < 0)
		return ferr_sys(err, errno, "read /proc/%d/fdinfo/%d", t->pid, fd);
	p = strstr(buf, "pos:");
	if (p) {
		e->has_pos = true;
		e->pos = strtoull(p + 4, NULL, 10);
	}
	p = strstr(buf, "flags:");
	if (p)
		e->flags = (uint32_t)strtoul(p + 6, NULL, 8);
	e->has_cloexec = true;
	e->cloexec = (e->flags & O_CLOEXEC) != 0;
	return locks_parse(buf, e, t->pid, err);
}

static int cmp_fd(const void *a, const void *b)
{
	const Ferry__Fd *x = *(Ferry__Fd *const *)a, *y = *(Ferry__Fd *const *)b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

int fds_collect(struct target *t, struct fd_list *out, struct ferr *err)
{
	cleanup_val(fd_list) struct fd_list l = { 0 };
	cleanup_dir DIR *d = opendir_at(t->procfd, "fd");
	struct dirent *de;

	memset(out, 0, sizeof(*out));
	if (!d)
		return ferr_sys(err, errno, "open /proc/%d/fd", t->pid);
	while ((de = readdir(d))) {
		char link[PATH_MAX];
		struct stat st;
		Ferry__Fd *e, **nf;
		ssize_t n;
		int fd, ret;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0 || fstatat(dirfd(d), de->d_name, &st, 0) < 0) {
			if (errno == ENOENT)
				continue; /* closed meanwhile (the target was not frozen yet) */
			return ferr_sys(err, errno, "inspect fd %d of process %d", fd, t->pid);
		}
		link[n] = '\0';
		nf = realloc(l.fds, (l.n + 1) * sizeof(*nf));
		if (!nf)
			return ferr_sys(err, ENOMEM, "fd list");
		l.fds = nf;
		e = malloc(sizeof(*e));
		if (!e)
			return ferr_sys(err, ENOMEM, "fd list");
		ferry__fd__init(e);
		l.fds[l.n++] = e;
		e->fd = (uint32_t)fd;
		e->kind = kind_of(&st, link);
		e->path = strdup(link);
		if (S_ISCHR(st.st_mode)) {
			e->has_rdev = true;
			e->rdev = st.st_rdev;
		}
		if (e->kind == FERRY__FD_KIND__FD_REG || e->kind == FERRY__FD_KIND__FD_DIR)
			e->file = state_file_id(dirfd(d), de->d_name);
		ret = read_fdinfo(t, fd, e, err);
		if (!ret && fdkind_name(e->kind))
			ret = fdkind_collect(t, e, err);
		if (ret)
			return ret;
		if (!fd_supported(e))
			l.nr_unsupported++;
	}
	if (l.n > 1)
		qsort(l.fds, l.n, sizeof(*l.fds), cmp_fd);
	fdkind_finish(&l);
	*out = steal_val(l);
	return 0;
}

void fds_describe_unsupported(const struct fd_list *l, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n && off + 1 < len; i++) {
		if (fd_supported(l->fds[i]))
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%sfd %u (%s)", off ? ", " : "",
					l->fds[i]->fd, l->fds[i]->path ? l->fds[i]->path : "?");
	}
}

void fds_free(struct fd_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		protobuf_c_message_free_unpacked(&l->fds[i]->base, NULL);
	free(l->fds);
	memset(l, 0, sizeof(*l));
}
