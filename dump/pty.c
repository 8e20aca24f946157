/* The tree's terminal whose master is outside it (dump/pty.h): found among
 * the frozen processes' fds, judged, and its state read. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/pty.h"
#include "proc/fds.h"

/* Unix98 pty slaves (devices.txt): majors 136-143, 256 minors each. */
#define PTS_MAJOR_FIRST 136u
#define PTS_MAJOR_LAST 143u

static bool is_pts(dev_t rdev)
{
	return major(rdev) >= PTS_MAJOR_FIRST && major(rdev) <= PTS_MAJOR_LAST;
}

/* /dev/ptmx, or the ptmx node of a devpts: a master is opened there. */
static bool is_ptmx(dev_t rdev)
{
	return major(rdev) == 5 && minor(rdev) == 2;
}

/* The first fd of the terminal seen: where its state is read from. */
struct seen {
	const struct ptree_proc *p;
	int fd;
	dev_t rdev, dev;           /* the slave's device; its devpts's */
	unsigned mnt;              /* the devpts mount (fdinfo mnt_id), 0 if unknown */
	char path[PATH_MAX];
};

static unsigned fd_mnt(const struct ptree_proc *p, const char *fd)
{
	char path[300], buf[1024], *m;
	unsigned mnt = 0;

	snprintf(path, sizeof(path), "fdinfo/%s", fd);
	if (read_small_file_at(p->t.procfd, path, buf, sizeof(buf)) > 0 &&
	    (m = strstr(buf, "mnt_id:")))
		sscanf(m, "mnt_id: %u", &mnt);
	return mnt;
}

/* Process p's fds: a pty master is refused, the slaves must all be one. */
static int scan(const struct ptree_proc *p, struct seen *s, struct ferr *err)
{
	cleanup_dir DIR *d = opendir_at(p->t.procfd, "fd");
	struct dirent *de;

	if (!d)
		return ferr_sys(err, errno, "open /proc/%d/fd", p->pid);
	while ((de = readdir(d))) {
		struct stat st;
		char link[PATH_MAX];
		ssize_t n;

		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
		    !S_ISCHR(st.st_mode))
			continue;
		if (is_ptmx(st.st_rdev))
			return ferr_new(err, EOPNOTSUPP, "process %d holds a pseudo-terminal master "
					"(fd %s): ferry does not dump a terminal's both ends yet, only "
					"a slave whose master is outside the tree", p->pid, de->d_name);
		if (!is_pts(st.st_rdev))
			continue;
		if (s->p && (s->rdev != st.st_rdev || s->dev != st.st_dev))
			return ferr_new(err, EOPNOTSUPP, "process %d has fd %s on another terminal "
					"(%u:%u) than process %d's fd %d (%s): --orphan-pts takes one "
					"terminal", p->pid, de->d_name, major(st.st_rdev),
					minor(st.st_rdev), s->p->pid, s->fd, s->path);
		if (s->p)
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		*s = (struct seen){ .p = p, .fd = atoi(de->d_name), .rdev = st.st_rdev,
				    .dev = st.st_dev, .mnt = fd_mnt(p, de->d_name) };
		snprintf(s->path, sizeof(s->path), "%s", link);
	}
	return 0;
}

/* Every session with the terminal as its own is led from inside the tree:
 * only its leader can make it the session's terminal again. */
static int check_sessions(const struct ptree *pt, dev_t rdev, struct ferr *err)
{
	for (size_t i = 0; i < pt->n; i++) {
		const struct ptree_proc *p = &pt->p[i];
		bool led = false;

		if (p->zombie || p->tty != rdev)
			continue;
		for (size_t k = 0; k < pt->n && !led; k++)
			led = !pt->p[k].zombie && pt->p[k].pid == p->sid && pt->p[k].sid == p->sid;
		if (!led)
			return ferr_new(err, EOPNOTSUPP, "process %d has the terminal %u:%u as its "
					"controlling terminal, but its session (%d) is not led by a "
					"process of the tree: only the leader can make it the "
					"session's terminal again (dump the session's leader)", p->pid,
					major(rdev), minor(rdev), p->sid);
	}
	return 0;
}

/* termios and window size, through a copy of the fd. */
static int read_state(const struct seen *s, Ferry__Pty *y, struct ferr *err)
{
	cleanup_close int fd = (int)syscall(SYS_pidfd_getfd, s->p->t.pidfd, s->fd, 0);
	cleanup_free uint8_t *cc = NULL;
	struct termios tio;
	struct winsize ws;

	if (fd < 0)
		return ferr_sys(err, errno, "process %d, fd %d (%s): pidfd_getfd", s->p->pid, s->fd,
				s->path);
	if (tcgetattr(fd, &tio) < 0 || ioctl(fd, TIOCGWINSZ, &ws) < 0)
		return ferr_sys(err, errno, "process %d, fd %d (%s): read the terminal's state",
				s->p->pid, s->fd, s->path);
	cc = malloc(sizeof(tio.c_cc));
	if (!cc)
		return ferr_sys(err, ENOMEM, "terminal");
	memcpy(cc, tio.c_cc, sizeof(tio.c_cc));
	y->iflag = tio.c_iflag;
	y->oflag = tio.c_oflag;
	y->cflag = tio.c_cflag;
	y->lflag = tio.c_lflag;
	y->has_line = true;
	y->line = tio.c_line;
	y->has_cc = true;
	y->cc.len = sizeof(tio.c_cc);
	y->cc.data = steal_ptr(cc);
	y->has_ispeed = y->has_ospeed = true;
	y->ispeed = (uint32_t)cfgetispeed(&tio);
	y->ospeed = (uint32_t)cfgetospeed(&tio);
	y->has_rows = y->has_cols = y->has_xpixel = y->has_ypixel = true;
	y->rows = ws.ws_row;
	y->cols = ws.ws_col;
	y->xpixel = ws.ws_xpixel;
	y->ypixel = ws.ws_ypixel;
	return 0;
}

int dump_pty_find(const struct ptree *pt, struct dump_pty *out, struct ferr *err)
{
	struct seen s = { 0 };
	Ferry__Pty *y;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; !ret && i < pt->n; i++)
		if (!pt->p[i].zombie)
			ret = scan(&pt->p[i], &s, err);
	for (size_t i = 0; !ret && !s.p && i < pt->n; i++)
		if (!pt->p[i].zombie && is_pts(pt->p[i].tty))
			return ferr_new(err, EOPNOTSUPP, "process %d has the terminal %u:%u as its "
					"controlling terminal, but no process of the tree has it open: "
					"--orphan-pts reads a terminal's state through an fd on it",
					pt->p[i].pid, major(pt->p[i].tty), minor(pt->p[i].tty));
	if (ret || !s.p)
		return ret;
	ret = check_sessions(pt, s.rdev, err);
	if (ret)
		return ret;
	y = malloc(sizeof(*y));
	if (!y)
		return ferr_sys(err, ENOMEM, "terminal");
	ferry__pty__init(y);
	out->img = y;
	out->rdev = s.rdev;
	y->index = (major(s.rdev) - PTS_MAJOR_FIRST) * 256 + minor(s.rdev);
	y->has_mnt = s.mnt != 0;
	y->mnt = s.mnt;
	y->path = strdup(s.path);
	if (!y->path)
		ret = ferr_sys(err, ENOMEM, "terminal");
	if (!ret)
		ret = read_state(&s, y, err);
	if (ret) {
		dump_pty_free(out);
		return ret;
	}
	pr_info("terminal %s (index %u) of process %d, its master outside the tree: %ux%u, "
		"recorded for a new pair at restore", y->path, y->index, s.p->pid, y->cols, y->rows);
	return 0;
}

int dump_pty_check_mount(struct dump_pty *d, Ferry__TreeItem *const *ns, size_t n,
			 struct ferr *err)
{
	bool mounts = false;

	if (!d->img)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const Ferry__MountItem *m = ns[i]->mnt;

		mounts |= m != NULL;
		if (m && d->img->has_mnt && m->id == d->img->mnt &&
		    m->kind == FERRY__MOUNT_KIND__MNT_FRESH && !strcmp(m->fstype, "devpts"))
			return 0;
	}
	if (!mounts) {
		d->img->has_mnt = false; /* made on the restoring side's /dev/ptmx */
		return 0;
	}
	return ferr_new(err, EOPNOTSUPP, "the terminal %s is not of a devpts mounted in the "
			"container's own mount namespace: its new pair could not be made there",
			d->img->path);
}

void dump_pty_mark(const struct dump_pty *d, const struct ptree_proc *p, struct fd_list *fl)
{
	for (size_t i = 0; d->img && i < fl->n; i++) {
		Ferry__Fd *f = fl->fds[i];

		if (f->kind != FERRY__FD_KIND__FD_CHR || !f->has_rdev)
			continue;
		if (f->rdev == d->rdev || (f->rdev == makedev(5, 0) && p->tty == d->rdev))
			f->has_orphan_pty = f->orphan_pty = true;
	}
}

void dump_pty_free(struct dump_pty *d)
{
	if (d->img)
		ferry__pty__free_unpacked(d->img, NULL);
	memset(d, 0, sizeof(*d));
}
