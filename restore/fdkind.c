/* Fds that are kernel objects of the process, re-created by the child
 * itself before its first stop (child.c), as the process (its fs
 * credentials are taken first): eventfd, timerfd, signalfd, epoll, inotify,
 * memfd and deleted files, each with its state. Epoll interest lists come
 * last, in a pass of their own, once every fd of the process is in place.
 * The contents of memfds and deleted files come from fdata.img, mapped by
 * ferry before the fork: the child reads the mapping it inherits. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "restore/rst.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, __u64)
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#define INOTIFY_ADD_MASK (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK | IN_ONLYDIR | IN_DONT_FOLLOW)
/* Flags that only mean something when a file is created. */
#define OPEN_ONLY_FLAGS (O_CREAT | O_EXCL | O_TRUNC | O_TMPFILE | O_DIRECTORY)

bool rst_fdkind_owns(const Ferry__Fd *f)
{
	return f->kind == FERRY__FD_KIND__FD_EVENTFD || f->kind >= FERRY__FD_KIND__FD_TIMERFD;
}

static const char *kind_name(const Ferry__Fd *f)
{
	switch (f->kind) {
	case FERRY__FD_KIND__FD_EVENTFD: return "eventfd";
	case FERRY__FD_KIND__FD_TIMERFD: return "timerfd";
	case FERRY__FD_KIND__FD_SIGNALFD: return "signalfd";
	case FERRY__FD_KIND__FD_EPOLL: return "epoll";
	case FERRY__FD_KIND__FD_INOTIFY: return "inotify";
	case FERRY__FD_KIND__FD_MEMFD: return "memfd";
	case FERRY__FD_KIND__FD_DELETED: return "deleted file";
	default: return "fd";
	}
}

static bool same_file(const Ferry__Fd *a, const Ferry__Fd *b)
{
	return a->file && b->file && a->file->dev == b->file->dev && a->file->ino == b->file->ino;
}

/* The earlier fd whose entry carries the contents of f's file, or NULL. */
static const Ferry__Fd *data_owner(Ferry__Fd *const *fds, size_t n, const Ferry__Fd *f)
{
	if (f->data)
		return f;
	for (size_t i = 0; i < n && fds[i] != f; i++)
		if (fds[i]->data && fds[i]->kind == f->kind && same_file(fds[i], f))
			return fds[i];
	return NULL;
}

int rst_fdkind_load(struct rst *r, struct ferr *err)
{
	bool need = false;
	int ret;

	for (size_t i = 0; i < r->nr_fds; i++) {
		const Ferry__Fd *f = r->fds[i];

		if (f->kind != FERRY__FD_KIND__FD_MEMFD && f->kind != FERRY__FD_KIND__FD_DELETED)
			continue;
		if (!f->file || !data_owner(r->fds, r->nr_fds, f))
			return ferr_new(err, EBADMSG, "%s/fds.img: fd %u (%s `%s`): no contents saved "
					"for its file", r->img->path, f->fd, kind_name(f),
					f->path ? f->path : "?");
		need = true;
	}
	if (!need)
		return 0;
	ret = img_fdata_map(r->img, &r->fdata, err);
	if (ret == -ENOENT)
		return ferr_new(err, EBADMSG, "%s: fds with contents, but no fdata.img", r->img->path);
	return ret;
}

const Ferry__Fd *rst_fdkind_backing(Ferry__Fd *const *fds, size_t n, const Ferry__Vma *v)
{
	if (!v->file || !v->path || !strstr(v->path, " (deleted)"))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((fds[i]->kind == FERRY__FD_KIND__FD_MEMFD ||
		     fds[i]->kind == FERRY__FD_KIND__FD_DELETED) && fds[i]->file &&
		    fds[i]->file->dev == v->file->dev && fds[i]->file->ino == v->file->ino)
			return fds[i];
	return NULL;
}

/* ---- in the child ---------------------------------------------------------- */

static int fail(struct ferr *err, const Ferry__Fd *f, const char *what)
{
	return ferr_sys(err, errno, "fd %u (%s): %s", f->fd, kind_name(f), what);
}

static int make_eventfd(const Ferry__Fd *f, struct ferr *err)
{
	const Ferry__EventfdState *s = f->eventfd;
	int fd, fl = (f->flags & O_NONBLOCK) ? EFD_NONBLOCK : 0;

	if (!s)
		return ferr_new(err, EBADMSG, "fd %u (eventfd): no state in the image", f->fd);
	if (s->has_semaphore && s->semaphore)
		fl |= EFD_SEMAPHORE;
	fd = eventfd(0, fl | EFD_CLOEXEC);
	if (fd < 0)
		return fail(err, f, "eventfd");
	/* eventfd() takes an int; the count is 64 bits. */
	if (s->count && write(fd, &s->count, sizeof(s->count)) != sizeof(s->count)) {
		close(fd);
		return fail(err, f, "set its count");
	}
	return fd;
}

static struct timespec ts_of(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ull),
				  .tv_nsec = (long)(ns % 1000000000ull) };
}

static int make_timerfd(const Ferry__Fd *f, struct ferr *err)
{
	const Ferry__TimerfdState *s = f->timerfd;
	struct itimerspec its;
	int fd, sflags = 0;

	if (!s)
		return ferr_new(err, EBADMSG, "fd %u (timerfd): no state in the image", f->fd);
	fd = timerfd_create((clockid_t)s->clockid,
			    TFD_CLOEXEC | ((f->flags & O_NONBLOCK) ? TFD_NONBLOCK : 0));
	if (fd < 0)
		return fail(err, f, "timerfd_create");
	its.it_value = ts_of(s->value_ns);
	its.it_interval = ts_of(s->interval_ns);
	/* The time left counts from now. An absolute timer stays absolute
	 * (a realtime one keeps TFD_TIMER_CANCEL_ON_SET), due as much later
	 * as it had left. */
	if (s->value_ns && s->has_settime_flags && (s->settime_flags & TFD_TIMER_ABSTIME)) {
		struct timespec now;

		if (clock_gettime((clockid_t)s->clockid, &now) < 0) {
			close(fd);
			return fail(err, f, "read its clock");
		}
		its.it_value = ts_of((uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec +
				     s->value_ns);
		sflags = (int)(s->settime_flags & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET));
	}
	if (s->value_ns && timerfd_settime(fd, sflags, &its, NULL) < 0) {
		close(fd);
		return fail(err, f, "timerfd_settime");
	}
	/* After settime, which clears them: expirations not read yet. */
	if (s->has_ticks && s->ticks) {
		uint64_t ticks = s->ticks;

		if (ioctl(fd, TFD_IOC_SET_TICKS, &ticks) < 0) {
			close(fd);
			return fail(err, f, "restore its unread expirations (TFD_IOC_SET_TICKS needs "
				    "a kernel with CONFIG_CHECKPOINT_RESTORE)");
		}
	}
	return fd;
}

static int make_signalfd(const Ferry__Fd *f, struct ferr *err)
{
	uint64_t mask = f->sigmask;
	int fd;

	if (!f->has_sigmask)
		return ferr_new(err, EBADMSG, "fd %u (signalfd): no mask in the image", f->fd);
	/* The kernel's own 64-bit set: glibc's sigaddset refuses its two
	 * internal signals, which a process may still have asked for. */
	fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask),
			  O_CLOEXEC | (f->flags & O_NONBLOCK));
	if (fd < 0)
		return fail(err, f, "signalfd");
	return fd;
}

static int make_inotify(const Ferry__Fd *f, struct ferr *err)
{
	int fd = inotify_init1(IN_CLOEXEC | ((f->flags & O_NONBLOCK) ? IN_NONBLOCK : 0));

	if (fd < 0)
		return fail(err, f, "inotify_init1");
	/* The kernel hands out watch descriptors in order from 1: added in
	 * the dumped order, each must get its dumped number back. */
	for (size_t i = 0; i < f->n_inotify; i++) {
		const Ferry__InotifyWatch *w = f->inotify[i];
		struct stat st;
		int wd;

		if (stat(w->path, &st) < 0 || (w->has_ino && st.st_ino != w->ino) ||
		    (w->has_dev && st.st_dev != w->dev)) {
			close(fd);
			return ferr_new(err, ESTALE, "fd %u (inotify): watch %u: `%s` is not the file "
					"it watched at dump time", f->fd, w->wd, w->path);
		}
		wd = inotify_add_watch(fd, w->path, w->mask & INOTIFY_ADD_MASK);
		if (wd < 0) {
			ferr_sys(err, errno, "fd %u (inotify): watch %u on `%s`", f->fd, w->wd, w->path);
			close(fd);
			return -err->code;
		}
		if ((uint32_t)wd != w->wd) {
			close(fd);
			return ferr_new(err, EEXIST, "fd %u (inotify): watch on `%s` came back as "
					"descriptor %d, the process knows it as %u (ferry re-creates "
					"watches in order; one removed before the dump leaves a gap "
					"it cannot fill)", f->fd, w->path, wd, w->wd);
		}
	}
	return fd;
}

static int write_contents(int fd, const struct img_fdata *d, const Ferry__FileData *fdd)
{
	uint64_t done = 0;

	while (done < fdd->size) {
		ssize_t n = pwrite(fd, d->map + fdd->offset + done, fdd->size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (uint64_t)n;
	}
	return 0;
}

/* An unlinked file for a deleted one: O_TMPFILE in its directory if that
 * is still there, else in /tmp; a name removed at once where the file
 * system has no O_TMPFILE. */
static int make_unlinked(const Ferry__Fd *f, struct ferr *err)
{
	char dir[PATH_MAX], name[PATH_MAX + 32];
	const char *cut = strstr(f->path, " (deleted)");
	size_t n = cut ? (size_t)(cut - f->path) : strlen(f->path);
	const char *slash;
	int fd;

	memcpy(dir, f->path, n);
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		dir[slash - dir] = '\0';
	else
		strcpy(dir, "/");
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	for (unsigned i = 0; fd < 0 && i < 100; i++) {
		snprintf(name, sizeof(name), "/tmp/.ferry-deleted-%d-%u", (int)getpid(), i);
		fd = open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0)
			unlink(name);
		else if (errno != EEXIST)
			break;
	}
	if (fd < 0)
		return ferr_sys(err, errno, "fd %u (deleted file `%s`): create an unlinked file in "
				"`%s` or /tmp", f->fd, f->path, dir);
	return fd;
}

/* A memfd or an unlinked file with the dumped contents, mode and seals,
 * opened read-write; the fd's own flags come with the reopen. */
static int make_file(const struct rst *r, const Ferry__Fd *f, struct ferr *err)
{
	const Ferry__FileData *d = f->data;
	int fd;

	if (f->kind == FERRY__FD_KIND__FD_MEMFD) {
		fd = memfd_create(f->memfd->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0)
			return fail(err, f, "memfd_create");
	} else {
		fd = make_unlinked(f, err);
		if (fd < 0)
			return fd;
	}
	if (write_contents(fd, &r->fdata, d) < 0 || ftruncate(fd, (off_t)d->size) < 0) {
		fail(err, f, "write its contents");
		close(fd);
		return -err->code;
	}
	if (f->has_mode && fchmod(fd, (mode_t)f->mode) < 0) {
		fail(err, f, "fchmod");
		close(fd);
		return -err->code;
	}
	if (f->kind == FERRY__FD_KIND__FD_MEMFD && f->memfd->has_seals && f->memfd->seals &&
	    fcntl(fd, F_ADD_SEALS, (int)f->memfd->seals) < 0) {
		ferr_sys(err, errno, "fd %u (memfd `%s`): seals 0x%x", f->fd, f->memfd->name,
			 f->memfd->seals);
		close(fd);
		return -err->code;
	}
	return fd;
}

/* f's file, created or (a second fd on it) found among those made, then
 * opened again with f's flags: a new open file, as the dumped one was. */
static int open_file(const struct rst *r, const Ferry__Fd *f, struct ferr *err)
{
	const Ferry__Fd *owner = data_owner(r->fds, r->nr_fds, f);
	int src = -1, fd, fl;
	char self[40];

	if (!owner)
		return ferr_new(err, EBADMSG, "fd %u (%s): no contents in the image", f->fd,
				kind_name(f));
	if (owner == f) {
		src = make_file(r, f, err);
		if (src < 0)
			return src;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", src >= 0 ? src : (int)owner->fd);
	fl = (rst_reopen_flags(f) & ~OPEN_ONLY_FLAGS) | O_CLOEXEC;
	fd = open(self, fl);
	if (fd < 0)
		fail(err, f, "open it again with its flags");
	if (src >= 0)
		close(src);
	if (fd >= 0 && f->has_pos && lseek(fd, (off_t)f->pos, SEEK_SET) != (off_t)f->pos) {
		fail(err, f, "seek");
		close(fd);
		fd = -1;
	}
	return fd < 0 ? -err->code : fd;
}

int rst_fdkind_open(const struct rst *r, const Ferry__Fd *f, struct ferr *err)
{
	int fd;

	switch (f->kind) {
	case FERRY__FD_KIND__FD_EVENTFD:
		fd = make_eventfd(f, err);
		break;
	case FERRY__FD_KIND__FD_TIMERFD:
		fd = make_timerfd(f, err);
		break;
	case FERRY__FD_KIND__FD_SIGNALFD:
		fd = make_signalfd(f, err);
		break;
	case FERRY__FD_KIND__FD_EPOLL:
		fd = epoll_create1(EPOLL_CLOEXEC);
		if (fd < 0)
			fd = fail(err, f, "epoll_create1");
		break;
	case FERRY__FD_KIND__FD_INOTIFY:
		fd = make_inotify(f, err);
		break;
	case FERRY__FD_KIND__FD_MEMFD:
	case FERRY__FD_KIND__FD_DELETED:
		fd = open_file(r, f, err);
		break;
	default:
		return ferr_new(err, EOPNOTSUPP, "fd %u: ferry does not restore this kind", f->fd);
	}
	if (fd < 0)
		return fd;
	if (fd != (int)f->fd) {
		if (dup3(fd, (int)f->fd, f->cloexec ? O_CLOEXEC : 0) < 0) {
			fail(err, f, "dup3");
			close(fd);
			return -err->code;
		}
		close(fd);
	} else if (!f->cloexec && fcntl(fd, F_SETFD, 0) < 0) {
		return fail(err, f, "clear FD_CLOEXEC");
	}
	return 0;
}

int rst_fdkind_epoll(const struct rst *r, struct ferr *err)
{
	for (size_t i = 0; i < r->nr_fds; i++) {
		const Ferry__Fd *f = r->fds[i];

		if (f->kind != FERRY__FD_KIND__FD_EPOLL)
			continue;
		for (size_t k = 0; k < f->n_epoll; k++) {
			const Ferry__EpollTarget *t = f->epoll[k];
			struct epoll_event ev = { .events = t->events, .data.u64 = t->data };

			if (epoll_ctl((int)f->fd, EPOLL_CTL_ADD, (int)t->tfd, &ev) < 0)
				return ferr_sys(err, errno, "fd %u (epoll): watch fd %u (events 0x%x)",
						f->fd, t->tfd, t->events);
		}
	}
	return 0;
}
