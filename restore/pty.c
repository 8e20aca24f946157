/* A tree's terminal whose master was outside it, made again (restore/pty.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "common/util.h"
#include "restore/pty.h"

/* At most this many ptys are opened to reach the dumped index (criu's
 * bound too): a devpts has given out that many already only if it is not
 * the container's fresh one. */
#define PTY_TRIES 32


/* A master at the index wanted (any, without same_index). */
static int open_master(const struct rst_pty *p, int dirfd, const char *name, bool same_index,
		       char *why, size_t len)
{
	int held[PTY_TRIES], n = 0, master = -1;

	while (master < 0) {
		int fd = openat(dirfd, name, O_RDWR | O_NOCTTY | O_CLOEXEC), idx;

		if (fd < 0 || ioctl(fd, TIOCGPTN, &idx) < 0) {
			err_text(why, len, errno, "open %s for the terminal %s", name, p->img->path);
			if (fd >= 0)
				close(fd);
			break;
		}
		if (!same_index || idx == (int)p->img->index) {
			master = fd;
		} else if (idx > (int)p->img->index || n == PTY_TRIES) {
			err_text(why, len, 0, "the terminal %s: index %u is taken in its devpts (a new "
			     "pty got %d)", p->img->path, p->img->index, idx);
			close(fd);
			break;
		} else {
			held[n++] = fd;
		}
	}
	while (n > 0)
		close(held[--n]);
	return master;
}

/* The dumped termios and window size, on the new terminal. */
static int set_state(const Ferry__Pty *y, int slave, char *why, size_t len)
{
	struct winsize ws = { 0 };
	struct termios tio;

	if (tcgetattr(slave, &tio) < 0)
		return err_text(why, len, errno, "the terminal %s: read its termios", y->path);
	tio.c_iflag = y->iflag;
	tio.c_oflag = y->oflag;
	tio.c_cflag = y->cflag;
	tio.c_lflag = y->lflag;
	if (y->has_line)
		tio.c_line = (cc_t)y->line;
	if (y->has_cc)
		memcpy(tio.c_cc, y->cc.data, y->cc.len < sizeof(tio.c_cc) ? y->cc.len :
		       sizeof(tio.c_cc));
	if (y->has_ispeed)
		cfsetispeed(&tio, (speed_t)y->ispeed);
	if (y->has_ospeed)
		cfsetospeed(&tio, (speed_t)y->ospeed);
	if (tcsetattr(slave, TCSANOW, &tio) < 0)
		return err_text(why, len, errno, "the terminal %s: set its termios", y->path);
	ws.ws_row = (unsigned short)y->rows;
	ws.ws_col = (unsigned short)y->cols;
	ws.ws_xpixel = (unsigned short)y->xpixel;
	ws.ws_ypixel = (unsigned short)y->ypixel;
	if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
		return err_text(why, len, errno, "the terminal %s: set its window size", y->path);
	return 0;
}

int rst_pty_make(const struct rst_pty *p, int dirfd, const char *name, bool same_index,
		 char *why, size_t len)
{
	cleanup_close int master = open_master(p, dirfd, name, same_index, why, len);
	cleanup_close int slave = -1;
	int unlock = 0;

	if (master < 0)
		return -1;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		return err_text(why, len, errno, "the terminal %s: unlock it", p->img->path);
	/* The slave through the master: no path, whichever devpts it is of. */
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return err_text(why, len, errno, "the terminal %s: open its slave", p->img->path);
	if (set_state(p->img, slave, why, len) < 0)
		return -1;
	if (dup3(master, p->master_at, O_CLOEXEC) < 0 || dup3(slave, p->slave_at, O_CLOEXEC) < 0)
		return err_text(why, len, errno, "the terminal %s: move its ends", p->img->path);
	return 0;
}

int rst_pty_ctty(const struct rst_pty *p, const Ferry__TreeProc *self,
		 const Ferry__TreeProc *const *tp, size_t n, char *why, size_t len)
{
	if (!p->img || !self->ctty || self->zombie || self->sid != self->pid)
		return 0;
	if (ioctl(p->slave_at, TIOCSCTTY, 0) < 0)
		return err_text(why, len, errno, "make %s the controlling terminal of session %u",
			    p->img->path, self->sid);
	/* The session's foreground group (all signals are blocked in the
	 * stubs: no SIGTTOU). */
	for (size_t k = 0; k < n; k++)
		if (tp[k]->tty_fg && !tp[k]->zombie && tp[k]->sid == self->sid &&
		    tcsetpgrp(p->slave_at, (pid_t)tp[k]->pgid) < 0)
			return err_text(why, len, errno, "give the terminal %s's foreground to process "
				    "group %u", p->img->path, tp[k]->pgid);
	return 0;
}

int rst_pty_take(struct rst_pty *p, pid_t root, struct ferr *err)
{
	cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, root, 0);

	if (pidfd < 0)
		return ferr_sys(err, errno, "pidfd_open the new process %d", root);
	p->master = (int)syscall(SYS_pidfd_getfd, pidfd, p->master_at, 0);
	if (p->master < 0)
		return ferr_sys(err, errno, "take the terminal %s's master from the new process %d",
				p->img->path, root);
	return 0;
}
