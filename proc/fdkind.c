/* The state of fds that are kernel objects of the process: what fdinfo
 * shows for eventfd, timerfd, signalfd, epoll and inotify; name, seals and
 * size for a memfd; path, mode and size for a file deleted while open (the
 * contents are copied when the images are written, dump/fdata.c). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "common/log.h"
#include "proc/fdkind.h"
#include "proc/state.h"

#define FDINFO_MAX (64u << 20)   /* an epoll or inotify fd with a million entries */
#define HUGETLBFS_MAGIC_ 0x958458f6
#define MEMFD_NAME_MAX 249       /* MFD_NAME_MAX_LEN */

static const char *const kind_names[] = {
	[FERRY__FD_KIND__FD_EVENTFD] = "eventfd",   [FERRY__FD_KIND__FD_TIMERFD] = "timerfd",
	[FERRY__FD_KIND__FD_SIGNALFD] = "signalfd", [FERRY__FD_KIND__FD_EPOLL] = "epoll",
	[FERRY__FD_KIND__FD_INOTIFY] = "inotify",   [FERRY__FD_KIND__FD_MEMFD] = "memfd",
	[FERRY__FD_KIND__FD_DELETED] = "deleted file",
};

const char *fdkind_name(Ferry__FdKind k)
{
	if ((size_t)k >= ARRAY_SIZE(kind_names))
		return NULL;
	return kind_names[k];
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && !strcmp(s + n - m, tail);
}

Ferry__FdKind fdkind_of(const struct stat *st, const char *link)
{
	static const struct {
		const char *link;
		Ferry__FdKind kind;
	} anon[] = {
		{ "anon_inode:[eventfd]", FERRY__FD_KIND__FD_EVENTFD },
		{ "anon_inode:[timerfd]", FERRY__FD_KIND__FD_TIMERFD },
		{ "anon_inode:[signalfd]", FERRY__FD_KIND__FD_SIGNALFD },
		{ "anon_inode:[eventpoll]", FERRY__FD_KIND__FD_EPOLL },
		{ "anon_inode:inotify", FERRY__FD_KIND__FD_INOTIFY },
	};

	if (S_ISREG(st->st_mode) && ends_with(link, " (deleted)"))
		return strncmp(link, "/memfd:", 7) ? FERRY__FD_KIND__FD_DELETED
						   : FERRY__FD_KIND__FD_MEMFD;
	for (size_t i = 0; i < ARRAY_SIZE(anon); i++)
		if (!strcmp(link, anon[i].link))
			return anon[i].kind;
	return 0;
}

/* /proc/PID/fdinfo/N whole (epoll and inotify list one line per entry). */
static char *read_fdinfo(struct target *t, int fd, struct ferr *err)
{
	cleanup_free char *buf = NULL;
	cleanup_close int f = -1;
	size_t len = 0, cap = 4096;
	char path[64];

	snprintf(path, sizeof(path), "fdinfo/%d", fd);
	f = openat(t->procfd, path, O_RDONLY | O_CLOEXEC);
	if (f < 0) {
		ferr_sys(err, errno, "read /proc/%d/%s", t->pid, path);
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			char *nb;

			if (cap >= FDINFO_MAX) {
				ferr_new(err, EFBIG, "/proc/%d/%s is larger than %u bytes", t->pid,
					 path, FDINFO_MAX);
				return NULL;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				ferr_sys(err, ENOMEM, "/proc/%d/%s", t->pid, path);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		if (!buf && !(buf = malloc(cap))) {
			ferr_sys(err, ENOMEM, "/proc/%d/%s", t->pid, path);
			return NULL;
		}
		n = read(f, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ferr_sys(err, errno, "read /proc/%d/%s", t->pid, path);
			return NULL;
		}
		if (!n)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return steal_ptr(buf);
}

/* The value after "\nkey" (or key at the start), or NULL. */
static const char *field(const char *info, const char *key)
{
	size_t n = strlen(key);
	const char *p = info;

	if (!strncmp(p, key, n))
		return p + n;
	while ((p = strchr(p, '\n'))) {
		p++;
		if (!strncmp(p, key, n))
			return p + n;
	}
	return NULL;
}

static bool eventfd_state(const char *info, Ferry__Fd *e)
{
	const char *c = field(info, "eventfd-count:"), *s = field(info, "eventfd-semaphore:");

	if (!c)
		return false;
	e->eventfd = malloc(sizeof(*e->eventfd));
	if (!e->eventfd)
		return false;
	ferry__eventfd_state__init(e->eventfd);
	e->eventfd->count = strtoull(c, NULL, 16);
	/* Kernels before 6.7 do not say; a semaphore eventfd then counts as
	 * an ordinary one. */
	if (s) {
		e->eventfd->has_semaphore = true;
		e->eventfd->semaphore = strtoul(s, NULL, 10) != 0;
	}
	return true;
}

static bool timespec_field(const char *info, const char *key, uint64_t *ns)
{
	const char *p = field(info, key);
	unsigned long long s, n;

	if (!p || sscanf(p, " (%llu, %llu)", &s, &n) != 2)
		return false;
	*ns = (uint64_t)s * 1000000000ull + n;
	return true;
}

static bool timerfd_state(const char *info, Ferry__Fd *e)
{
	const char *c = field(info, "clockid:"), *tk = field(info, "ticks:"),
		   *fl = field(info, "settime flags:");
	Ferry__TimerfdState *ts;

	if (!c || !tk || !fl)
		return false;
	ts = e->timerfd = malloc(sizeof(*ts));
	if (!ts)
		return false;
	ferry__timerfd_state__init(ts);
	ts->clockid = (uint32_t)strtoul(c, NULL, 10);
	ts->has_ticks = ts->has_settime_flags = true;
	ts->ticks = strtoull(tk, NULL, 10);
	ts->settime_flags = (uint32_t)strtoul(fl, NULL, 8);
	if (!timespec_field(info, "it_value:", &ts->value_ns) ||
	    !timespec_field(info, "it_interval:", &ts->interval_ns)) {
		ferry__timerfd_state__free_unpacked(ts, NULL);
		e->timerfd = NULL;
		return false;
	}
	return true;
}

static bool signalfd_state(const char *info, Ferry__Fd *e)
{
	const char *m = field(info, "sigmask:");

	if (!m)
		return false;
	e->has_sigmask = true;
	e->sigmask = strtoull(m, NULL, 16);
	return true;
}

/* The kernel's s_dev (20-bit minor) against a stat's st_dev. */
static bool same_dev(unsigned long kdev, dev_t dev)
{
	return (kdev >> 20) == major(dev) && (kdev & 0xfffff) == minor(dev);
}

static bool epoll_state(struct target *t, const char *info, Ferry__Fd *e)
{
	for (const char *p = field(info, "tfd:"); p; p = field(p, "tfd:")) {
		Ferry__EpollTarget *et, **ne;
		unsigned long long data, ino;
		unsigned events, sdev;
		char link[32];
		struct stat st;
		int tfd;

		if (sscanf(p, " %d events: %x data: %llx pos:%*d ino:%llx sdev:%x", &tfd, &events,
			   &data, &ino, &sdev) != 5 || tfd < 0)
			return false;
		snprintf(link, sizeof(link), "fd/%d", tfd);
		if (fstatat(t->procfd, link, &st, 0) < 0 || st.st_ino != ino ||
		    !same_dev(sdev, st.st_dev)) {
			pr_warn("process %d: epoll fd %u watches a file registered as fd %d, which is "
				"closed or another file now", t->pid, e->fd, tfd);
			return false;
		}
		ne = realloc(e->epoll, (e->n_epoll + 1) * sizeof(*ne));
		et = malloc(sizeof(*et));
		if (ne)
			e->epoll = ne;
		if (!ne || !et) {
			free(et);
			return false;
		}
		ferry__epoll_target__init(et);
		et->tfd = (uint32_t)tfd;
		et->events = events;
		et->data = data;
		e->epoll[e->n_epoll++] = et;
	}
	return true;
}

/* A mount of the target's on device kdev, opened through its root, for
 * open_by_handle_at. */
static int mount_of(struct target *t, unsigned long kdev)
{
	cleanup_fclose FILE *f = NULL;
	char *line = NULL, path[PATH_MAX + 16];
	size_t cap = 0;
	int fd = -1, mfd = openat(t->procfd, "mountinfo", O_RDONLY | O_CLOEXEC);

	if (mfd < 0 || !(f = fdopen(mfd, "r"))) {
		if (mfd >= 0)
			close(mfd);
		return -1;
	}
	while (fd < 0 && getline(&line, &cap, f) > 0) {
		unsigned ma, mi;
		char mp[PATH_MAX];

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &ma, &mi, mp) != 3 ||
		    ma != (kdev >> 20) || mi != (kdev & 0xfffff))
			continue;
		snprintf(path, sizeof(path), "root%s", mp);
		fd = openat(t->procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	free(line);
	return fd;
}

/* The path of the inode an inotify watch names, from its file handle. */
static char *watch_path(struct target *t, const char *p, unsigned long kdev, uint64_t ino)
{
	struct {
		struct file_handle fh;
		unsigned char b[MAX_HANDLE_SZ];
	} h;
	unsigned bytes, type;
	cleanup_close int mfd = -1, fd = -1;
	char self[40], path[PATH_MAX];
	const char *hex;
	struct stat st;
	ssize_t n;

	p = strstr(p, "fhandle-bytes:");
	if (!p || sscanf(p, "fhandle-bytes:%x fhandle-type:%x", &bytes, &type) != 2 ||
	    bytes > MAX_HANDLE_SZ || !(hex = strstr(p, "f_handle:")))
		return NULL;
	hex += 9;
	for (unsigned i = 0; i < bytes; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &h.b[i]) != 1)
			return NULL;
	h.fh.handle_bytes = bytes;
	h.fh.handle_type = (int)type;
	mfd = mount_of(t, kdev);
	if (mfd < 0)
		return NULL;
	fd = open_by_handle_at(mfd, &h.fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	n = readlink(self, path, sizeof(path) - 1);
	if (n <= 0)
		return NULL;
	path[n] = '\0';
	/* The name must lead back to the watched inode at restore. */
	if (path[0] != '/' || ends_with(path, " (deleted)") || stat(path, &st) < 0 ||
	    st.st_ino != ino || !same_dev(kdev, st.st_dev))
		return NULL;
	return strdup(path);
}

static bool inotify_state(struct target *t, const char *info, Ferry__Fd *e)
{
	for (const char *p = field(info, "inotify wd:"); p; p = field(p, "inotify wd:")) {
		Ferry__InotifyWatch *w, **nw;
		unsigned long long ino;
		unsigned wd, sdev, mask;

		if (sscanf(p, "%x ino:%llx sdev:%x mask:%x", &wd, &ino, &sdev, &mask) != 4)
			return false;
		nw = realloc(e->inotify, (e->n_inotify + 1) * sizeof(*nw));
		w = malloc(sizeof(*w));
		if (nw)
			e->inotify = nw;
		if (!nw || !w) {
			free(w);
			return false;
		}
		ferry__inotify_watch__init(w);
		e->inotify[e->n_inotify++] = w;
		w->wd = wd;
		w->mask = mask;
		w->has_ino = w->has_dev = true;
		w->ino = ino;
		w->dev = makedev(sdev >> 20, sdev & 0xfffff);
		w->path = watch_path(t, p, sdev, ino);
		if (!w->path) {
			pr_warn("process %d: inotify fd %u: the file of watch %u (inode %llu) cannot "
				"be found by name", t->pid, e->fd, wd, ino);
			return false;
		}
	}
	return true;
}

/* Memfd and deleted file: mode, identity, size; a memfd's name and seals. */
static bool file_state(struct target *t, Ferry__Fd *e)
{
	cleanup_close int fd = -1;
	char link[32];
	struct statfs sfs;
	struct stat st;

	snprintf(link, sizeof(link), "fd/%u", e->fd);
	fd = openat(t->procfd, link, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (st.st_nlink) {
		pr_warn("process %d: fd %u `%s` was deleted but has another name still: ferry "
			"would restore a copy", t->pid, e->fd, e->path);
		return false;
	}
	if ((unsigned long)sfs.f_type == HUGETLBFS_MAGIC_) {
		pr_warn("process %d: fd %u `%s` is on hugetlbfs", t->pid, e->fd, e->path);
		return false;
	}
	e->file = state_file_id(t->procfd, link);
	e->data = malloc(sizeof(*e->data));
	if (!e->file || !e->data)
		return false;
	ferry__file_data__init(e->data);
	e->data->size = (uint64_t)st.st_size;
	e->mode = st.st_mode & 07777;
	if (e->kind == FERRY__FD_KIND__FD_MEMFD) {
		size_t n = strlen(e->path) - strlen(" (deleted)") - strlen("/memfd:");
		int seals = fcntl(fd, F_GET_SEALS);

		e->memfd = malloc(sizeof(*e->memfd));
		if (!e->memfd || n > MEMFD_NAME_MAX)
			return false;
		ferry__memfd_state__init(e->memfd);
		e->memfd->name = strndup(e->path + 7, n);
		if (!e->memfd->name)
			return false;
		if (seals >= 0) {
			e->memfd->has_seals = true;
			e->memfd->seals = (uint32_t)seals;
		}
	}
	e->has_mode = true; /* the mark of a complete state */
	return true;
}

int fdkind_collect(struct target *t, Ferry__Fd *e, struct ferr *err)
{
	cleanup_free char *info = NULL;

	if (e->kind == FERRY__FD_KIND__FD_MEMFD || e->kind == FERRY__FD_KIND__FD_DELETED) {
		file_state(t, e);
		return 0;
	}
	info = read_fdinfo(t, (int)e->fd, err);
	if (!info)
		return -err->code;
	switch (e->kind) {
	case FERRY__FD_KIND__FD_EVENTFD:
		eventfd_state(info, e);
		break;
	case FERRY__FD_KIND__FD_TIMERFD:
		timerfd_state(info, e);
		break;
	case FERRY__FD_KIND__FD_SIGNALFD:
		signalfd_state(info, e);
		break;
	case FERRY__FD_KIND__FD_EPOLL:
		/* An incomplete list is no list: the fd is then refused. */
		if (!epoll_state(t, info, e))
			e->kind = FERRY__FD_KIND__FD_OTHER;
		break;
	case FERRY__FD_KIND__FD_INOTIFY:
		if (!inotify_state(t, info, e))
			e->kind = FERRY__FD_KIND__FD_OTHER;
		break;
	default:
		break;
	}
	return 0;
}

bool fdkind_supported(const Ferry__Fd *f)
{
	switch (f->kind) {
	case FERRY__FD_KIND__FD_EVENTFD:
		return f->eventfd;
	case FERRY__FD_KIND__FD_TIMERFD:
		return f->timerfd;
	case FERRY__FD_KIND__FD_SIGNALFD:
		return f->has_sigmask;
	case FERRY__FD_KIND__FD_EPOLL:
	case FERRY__FD_KIND__FD_INOTIFY:
		return true;
	case FERRY__FD_KIND__FD_MEMFD:
	case FERRY__FD_KIND__FD_DELETED:
		return f->has_mode;
	default:
		return false;
	}
}

void fdkind_finish(struct fd_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		Ferry__Fd *f = l->fds[i];

		if (!f->data || !f->file)
			continue;
		/* Quadratic only in the fds that hold such files: a handful. */
		for (size_t j = i + 1; j < l->n; j++) {
			Ferry__Fd *g = l->fds[j];

			if (g->data && g->file && g->file->dev == f->file->dev &&
			    g->file->ino == f->file->ino) {
				ferry__file_data__free_unpacked(g->data, NULL);
				g->data = NULL;
			}
		}
	}
}
