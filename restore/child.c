/* The restored processes start as forks of ferry ("stubs"): the root is
 * ferry's child, every other process the child of its restored parent,
 * each with its dumped PID (clone3 with set_tid) and, where it had them, its
 * parent's fd table (CLONE_FILES) and fs struct (CLONE_FS). ferry seizes the
 * root before it does anything; its descendants are seized as they are
 * forked (PTRACE_O_TRACEFORK). In two phases, each ended by a SIGSTOP ferry
 * waits for in every process:
 *   1. session and own group (setsid / setpgid before the children, who
 *      inherit them), then the children;
 *   2. a group led by another process of the tree, the fds (the shared
 *      objects ferry made before the fork are inherited at high fd numbers
 *      and moved to the dumped ones; files are reopened as the process;
 *      every other fd closed, ferry's stdio too), cwd, umask, personality.
 *      A zombie exits here, with its dumped status.
 * Between the two, ferry puts the queued data into pipes and sockets (the
 * credentials a message carries name processes that now exist). From then
 * on ferry drives each process from outside. This file is the stubs' side;
 * ferry's (creating, waiting, killing) is spawn.c. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "common/log.h"
#include "proc/fds.h"
#include "proc/locks.h"
#include "restore/rst.h"
#include "restore/validate.h"

static void __attribute__((noreturn, format(printf, 2, 3))) child_fail(int fd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	ssize_t n;
	int k;

	/* One write per message: several processes share the pipe. */
	k = snprintf(msg, sizeof(msg), "process %ld: ", (long)syscall(SYS_getpid));
	va_start(ap, fmt);
	vsnprintf(msg + k, sizeof(msg) - (size_t)k, fmt, ap);
	va_end(ap);
	n = write(fd, msg, strlen(msg));
	(void)n;
	_exit(127);
}

/* open(2) flags to re-open an fd with: what fdinfo showed, minus what only
 * means something at creation. */
int rst_reopen_flags(const Ferry__Fd *f)
{
	int fl = (int)f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC);

	if (f->kind == FERRY__FD_KIND__FD_DIR)
		fl |= O_DIRECTORY;
	return fl | O_NOCTTY | (f->cloexec ? O_CLOEXEC : 0);
}

/* Opened non-blocking, so that a FIFO or a device put where the image
 * promised a file cannot hang the restore; the dumped flags come back once
 * it is known to be the right kind of file. The fd, not moved yet. */
static int open_checked(const struct rst *r, const Ferry__Fd *f, struct stat *pst, int errfd)
{
	struct stat st;
	int fd, fl = rst_reopen_flags(f);

	fd = open(f->path, fl | O_NONBLOCK);
	if (fd < 0)
		child_fail(errfd, "fd %u: open `%s`: %s", f->fd, f->path, strerror(errno));
	if (fstat(fd, &st) < 0)
		child_fail(errfd, "fd %u: fstat `%s`: %s", f->fd, f->path, strerror(errno));
	if (!rst_fd_type_fits(f, st.st_mode))
		child_fail(errfd, "fd %u: `%s` is not the kind of file it was at dump time", f->fd,
			   f->path);
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		child_fail(errfd, "fd %u: `%s`: clear O_NONBLOCK: %s", f->fd, f->path, strerror(errno));
	if (f->file && !rst_file_is(&r->files, f->path, &st))
		child_fail(errfd, "fd %u: `%s` is another file than the one checked", f->fd, f->path);
	if (f->kind == FERRY__FD_KIND__FD_CHR && (!S_ISCHR(st.st_mode) ||
						  (f->has_rdev && st.st_rdev != f->rdev)))
		child_fail(errfd, "fd %u: `%s` is not the device it was at dump time", f->fd, f->path);
	if (pst)
		*pst = st;
	return fd;
}

static void child_open_fd(const struct rst *r, const Ferry__Fd *f, int errfd)
{
	int fd = open_checked(r, f, NULL, errfd);

	if (fd != (int)f->fd) {
		if (dup3(fd, (int)f->fd, f->cloexec ? O_CLOEXEC : 0) < 0)
			child_fail(errfd, "fd %u: dup3: %s", f->fd, strerror(errno));
		close(fd);
	}
	if (f->has_pos && f->kind == FERRY__FD_KIND__FD_REG &&
	    lseek((int)f->fd, (off_t)f->pos, SEEK_SET) != (off_t)f->pos)
		child_fail(errfd, "fd %u: seek `%s` to %" PRIu64 ": %s", f->fd, f->path, f->pos,
			   strerror(errno));
}

/* ---- in the stubs: ferry's code, on ferry's memory ------------------------ */

#define SETFL_MASK (O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME)

static void stop_self(void)
{
	syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
}

pid_t rst_clone_pid(pid_t want, uint64_t flags)
{
	struct clone_args ca;

	memset(&ca, 0, sizeof(ca));
	ca.flags = flags;
	/* clone3 refuses an exit signal with CLONE_PARENT: the child gets
	 * ferry's own (SIGCHLD for its parent, the runtime). */
	ca.exit_signal = flags & CLONE_PARENT ? 0 : SIGCHLD;
	if (want > 0) {
		ca.set_tid = (uintptr_t)&want;
		ca.set_tid_size = 1;
	}
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

static bool in_tree(const struct rst_tree *t, uint32_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->tp[i]->pid == pid && !t->tp[i]->zombie)
			return true;
	return false;
}

/* The process whose table (fs struct) i's parent has: itself or the one it
 * shares with. */
static uint32_t files_owner(const Ferry__TreeProc *p)
{
	return p->files_with ? p->files_with : p->pid;
}

static uint32_t fs_owner(const Ferry__TreeProc *p)
{
	return p->fs_with ? p->fs_with : p->pid;
}

static int cmp_int(const void *a, const void *b)
{
	return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* Close every fd but those in keep (n of them). */
static void close_all_but(int *keep, size_t n)
{
	unsigned lo = 0;

	if (n > 1)
		qsort(keep, n, sizeof(*keep), cmp_int);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)keep[i] > lo)
			syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0);
}

/* A FIFO is opened by its path (ferry holds it open read-write meanwhile,
 * so neither end blocks). */
static int open_fifo(const Ferry__Fd *f, int errfd)
{
	int fd = open(f->path, ((int)f->flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		child_fail(errfd, "fd %u: FIFO `%s`: %s", f->fd, f->path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		child_fail(errfd, "fd %u: `%s` is not a FIFO", f->fd, f->path);
	return fd;
}

/* The locks f was dumped holding (--file-locks), taken again: POSIX ones
 * by this process (their owner), flock and OFD ones on this open file. */
static void take_locks(const Ferry__Fd *f, int errfd)
{
	for (size_t i = 0; i < f->n_locks; i++) {
		const Ferry__FileLock *l = f->locks[i];
		struct flock fl = { .l_type = l->write ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET,
				    .l_start = (off_t)l->start, .l_len = (off_t)l->len };
		const char *kind = l->kind == LOCK_KIND_FLOCK ? "flock" :
				   l->kind == LOCK_KIND_OFD ? "OFD" : "POSIX";
		int rc;

		if (l->kind == LOCK_KIND_FLOCK)
			rc = flock((int)f->fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB);
		else
			rc = fcntl((int)f->fd, l->kind == LOCK_KIND_OFD ? F_OFD_SETLK : F_SETLK, &fl);
		if (rc < 0)
			child_fail(errfd, "fd %u (`%s`): take its %s %s lock again: %s%s", f->fd,
				   f->path ? f->path : "?", kind, l->write ? "write" : "read",
				   strerror(errno), errno == EAGAIN || errno == EWOULDBLOCK ?
				   " (another process holds the file locked)" : "");
	}
}

/* The open file descriptions process i opens for the fds that share them
 * (in it and in its descendants, who inherit them), at errfd + 1 + j. The
 * path must be a regular file (looked at through O_PATH before anything is
 * opened for real, so nothing else is); each holder proves it may open it
 * before it gets it (shared_fd). */
static void open_descs(const struct rst_tree *t, size_t i, int errfd)
{
	for (size_t j = 0; j < t->nr_descs; j++) {
		const struct rst_desc *d = &t->descs[j];
		const Ferry__Fd *f = d->f;
		char self[40];
		struct stat st;
		int at, fd, fl = rst_reopen_flags(f) | O_CLOEXEC;

		if (d->owner != i)
			continue;
		at = open(f->path, O_PATH | O_CLOEXEC);
		if (at < 0 || fstat(at, &st) < 0 || !S_ISREG(st.st_mode))
			child_fail(errfd, "fd %u: `%s` is not a regular file%s%s", f->fd, f->path,
				   at < 0 ? ": " : "", at < 0 ? strerror(errno) : "");
		snprintf(self, sizeof(self), "/proc/self/fd/%d", at);
		fd = open(self, fl);
		close(at);
		if (fd < 0 || dup3(fd, errfd + 1 + (int)j, O_CLOEXEC) < 0)
			child_fail(errfd, "fd %u: open `%s`: %s", f->fd, f->path, strerror(errno));
		close(fd);
		if (f->has_pos && lseek(errfd + 1 + (int)j, (off_t)f->pos, SEEK_SET) != (off_t)f->pos)
			child_fail(errfd, "fd %u: seek `%s` to %" PRIu64 ": %s", f->fd, f->path, f->pos,
				   strerror(errno));
	}
}

/* f's shared open file description (errfd + 1 + its index), once this
 * process has opened the file as itself and found it the same one; or -1 if
 * f opens its own. */
static int shared_fd(const struct rst_tree *t, const struct rst *r, const Ferry__Fd *f, int errfd)
{
	for (size_t j = 0; f->has_desc && j < t->nr_descs; j++) {
		struct stat mine, shared;
		int probe, fd = errfd + 1 + (int)j;

		if (t->descs[j].desc != f->desc)
			continue;
		probe = open_checked(r, f, &mine, errfd);
		close(probe);
		if (fstat(fd, &shared) < 0 || shared.st_dev != mine.st_dev ||
		    shared.st_ino != mine.st_ino)
			child_fail(errfd, "fd %u: `%s` is not the file its shared open file "
				   "description is of", f->fd, f->path);
		return fd;
	}
	return -1;
}

/* --inherit-fd: the caller's fd that replaces f, or -1. */
static int inherited(const struct rst_tree *t, const Ferry__Fd *f)
{
	for (size_t k = 0; f->path && k < t->opts->nr_inherit; k++)
		if (!strcmp(t->opts->inherit[k].key, f->path))
			return t->inherit_fd[k];
	return -1;
}

/* Every fd of the process at its number, and nothing else. */
static void setup_fds(const struct rst_tree *t, const struct rst *r, int errfd)
{
	struct ferr err;
	size_t nkeep = 0;
	int *keep = malloc((r->nr_fds + 1 + (t->pool ? t->pool->n : 0)) * sizeof(*keep));

	if (!keep)
		child_fail(errfd, "out of memory");
	for (size_t i = 0; i < r->nr_fds; i++) {
		const Ferry__Fd *f = r->fds[i];
		int src, fd = (int)f->fd;

		if ((src = inherited(t, f)) >= 0) {
			if (dup3(src, fd, f->cloexec ? O_CLOEXEC : 0) < 0)
				child_fail(errfd, "fd %u: --inherit-fd: %s", f->fd, strerror(errno));
		} else if (f->orphan_pty) {
			/* --orphan-pts: the new terminal's slave (restore/pty.h). */
			src = t->pty.slave_at;
			if (dup3(src, fd, f->cloexec ? O_CLOEXEC : 0) < 0)
				child_fail(errfd, "fd %u: the terminal %s: %s", f->fd,
					   t->pty.img->path, strerror(errno));
		} else if (f->tty) {
			/* --shell-job: the terminal is the restoring one. */
			if (dup3(t->tty_fd, fd, f->cloexec ? O_CLOEXEC : 0) < 0)
				child_fail(errfd, "fd %u: the terminal: %s", f->fd, strerror(errno));
			src = t->tty_fd;
		} else if ((src = rst_pool_fd(t->pool, f)) < 0 && f->kind == FERRY__FD_KIND__FD_PIPE &&
			   f->has_obj_id && f->path && f->path[0] == '/') {
			src = open_fifo(f, errfd);
			if (dup3(src, fd, f->cloexec ? O_CLOEXEC : 0) < 0)
				child_fail(errfd, "fd %u: dup3: %s", f->fd, strerror(errno));
			close(src);
		} else if (src >= 0 || (src = shared_fd(t, r, f, errfd)) >= 0) {
			if (dup3(src, fd, f->cloexec ? O_CLOEXEC : 0) < 0)
				child_fail(errfd, "fd %u: dup3: %s", f->fd, strerror(errno));
		} else if (fd_supported(f) && rst_fdkind_owns(f)) {
			/* eventfd, timerfd, signalfd, epoll, inotify, memfd, deleted
			 * files: made here, as the process (restore/fdkind.c). */
			if (rst_fdkind_open(r, f, &err))
				child_fail(errfd, "%s", err.msg);
		} else if (f->path && fd_supported(f)) {
			child_open_fd(r, f, errfd);
		} else {
			continue; /* skipped at dump time: left closed */
		}
		if ((src >= 0 || f->has_obj_id) &&
		    fcntl(fd, F_SETFL, (fcntl(fd, F_GETFL) & ~SETFL_MASK) | ((int)f->flags & SETFL_MASK)) < 0)
			child_fail(errfd, "fd %u: set its flags: %s", f->fd, strerror(errno));
		take_locks(f, errfd);
		keep[nkeep++] = fd;
	}
	keep[nkeep++] = errfd;
	/* Shared memory objects stay until the memory is built (ferry closes
	 * them by injection). */
	for (size_t i = 0; t->pool && i < t->pool->n; i++)
		if (t->pool->o[i].it->shm)
			keep[nkeep++] = t->pool->o[i].fd[0];
	close_all_but(keep, nkeep);
	free(keep);
	/* Interest lists once every fd they name is in place. */
	if (rst_fdkind_epoll(r, &err))
		child_fail(errfd, "%s", err.msg);
}

static void __attribute__((noreturn)) zombie_exit(const Ferry__TreeProc *p)
{
	int st = p->exit_status;
	struct rlimit none = { 0, 0 };
	sigset_t one;

	if (p->comm)
		prctl(PR_SET_NAME, p->comm);
	if (WIFSIGNALED(st)) {
		setrlimit(RLIMIT_CORE, &none);
		signal(WTERMSIG(st), SIG_DFL);
		sigemptyset(&one);
		sigaddset(&one, WTERMSIG(st));
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		syscall(SYS_kill, syscall(SYS_getpid), WTERMSIG(st));
	}
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 127);
}

static void phase_one(const struct rst_tree *t, size_t i, int errfd)
{
	const Ferry__TreeProc *p = t->tp[i];
	char why[400];

	if (!p->zombie && p->sid == p->pid) {
		if (setsid() < 0)
			child_fail(errfd, "setsid: %s", strerror(errno));
	} else if (!p->zombie && p->pgid == p->pid && setpgid(0, 0) < 0) {
		child_fail(errfd, "setpgid: %s", strerror(errno));
	}
	open_descs(t, i, errfd);
	/* Before the children: what they inherit copy-on-write. */
	if (rst_cow_premap(t, i, why, sizeof(why)))
		child_fail(errfd, "%s", why);
	for (size_t k = 1; k < t->n; k++) {
		const Ferry__TreeProc *c = t->tp[k];
		uint64_t flags = 0;
		pid_t pid;

		if (c->ppid != p->pid)
			continue;
		if (c->files_with && c->files_with == files_owner(p))
			flags |= CLONE_FILES;
		if (c->fs_with && c->fs_with == fs_owner(p))
			flags |= CLONE_FS;
		pid = rst_clone_pid((pid_t)c->pid, flags);
		if (pid == 0)
			rst_stub_main(t, k, errfd);
		if (pid < 0)
			child_fail(errfd, "create child process %u: %s", c->pid, strerror(errno));
	}
}

static void phase_two(const struct rst_tree *t, size_t i, int errfd)
{
	const Ferry__TreeProc *p = t->tp[i];
	const struct rst *r = t->r[i];
	const Ferry__Process *pr = r->proc;
	struct ferr err;
	char why[400];

	if (p->pgid != p->pid && in_tree(t, p->pgid) && getpgrp() != (pid_t)p->pgid &&
	    setpgid(0, (pid_t)p->pgid) < 0)
		child_fail(errfd, "join process group %u: %s", p->pgid, strerror(errno));
	/* A shell job that was in the foreground is again (SIGTTOU is
	 * blocked here, so a background caller may do it). */
	if (p->tty_fg && t->tty_fd >= 0 && p->pgid == p->pid && tcsetpgrp(t->tty_fd, getpgrp()) < 0)
		child_fail(errfd, "take the terminal's foreground: %s", strerror(errno));
	/* A session leader on the --orphan-pts terminal has it again; its
	 * slave is still at pty.slave_at (setup_fds closes it). */
	if (rst_pty_ctty(&t->pty, p, t->tp, t->n, why, sizeof(why)))
		child_fail(errfd, "%s", why);
	/* Everything from here on is opened as the process, not as ferry:
	 * an image cannot hand its process a file its user could not open. */
	if (rst_creds_fs_self(r, &err))
		child_fail(errfd, "%s", err.msg);
	if (!p->files_with)
		setup_fds(t, r, errfd);
	if (pr->cwd && chdir(pr->cwd) < 0)
		child_fail(errfd, "working directory `%s`: %s", pr->cwd, strerror(errno));
	if (pr->has_umask)
		umask((mode_t)pr->umask);
	if (pr->has_personality && personality(pr->personality) < 0)
		child_fail(errfd, "personality 0x%x: %s", pr->personality, strerror(errno));
	if (!p->files_with)
		close(errfd);
}

void rst_stub_main(const struct rst_tree *t, size_t i, int errfd)
{
	char why[400];

	/* The root makes the tree's namespaces before anything of its own,
	 * and the terminal there (or here, without a devpts of the tree's),
	 * which its children inherit. */
	if (i == 0 && rst_ns_build(t->ns, &t->pty, why, sizeof(why)))
		child_fail(errfd, "%s", why);
	if (i == 0 && t->pty.img && !rst_ns_makes_pty(t->ns, &t->pty) &&
	    rst_pty_make(&t->pty, AT_FDCWD, "/dev/ptmx", false, why, sizeof(why)))
		child_fail(errfd, "%s", why);
	phase_one(t, i, errfd);
	stop_self();
	if (t->tp[i]->zombie)
		zombie_exit(t->tp[i]);
	phase_two(t, i, errfd);
	stop_self();
	_exit(127); /* only reached if ferry let us run on: never a process */
}

/* ---- in ferry ------------------------------------------------------------- */

int rst_tree_check(const struct rst_tree *t, struct ferr *err)
{
	for (size_t i = 0; i < t->n; i++) {
		bool tty_fds = false, pty_fds = false;

		for (size_t k = 0; t->r[i] && k < t->r[i]->nr_fds; k++) {
			tty_fds |= t->r[i]->fds[k]->tty;
			pty_fds |= t->r[i]->fds[k]->orphan_pty;
		}
		if (pty_fds && !t->pty.img)
			return ferr_new(err, EBADMSG, "process %u has fds on the tree's terminal, but "
					"tree.img has none", t->tp[i]->pid);
		/* With a terminal of the tree's, a controlling terminal is it. */
		if (((t->tp[i]->ctty && !t->pty.img) || tty_fds) && !t->opts->shell_job)
			return ferr_new(err, EOPNOTSUPP, "process %u was dumped as a shell job (with its "
					"controlling terminal): restore it with --shell-job, on a "
					"terminal", t->tp[i]->pid);
	}
	if (t->pty.img && !t->opts->pty_master)
		return ferr_new(err, EOPNOTSUPP, "the tree was dumped on a terminal whose master was "
				"outside it (%s, dump --orphan-pts): restore it with --console-socket "
				"PATH (criu's orphan_pts_master), which gets the new terminal's "
				"master", t->pty.img->path);
	for (size_t i = 1; i < t->n; i++) {
		const Ferry__TreeProc *c = t->tp[i], *p = NULL;

		for (size_t k = 0; k < t->n && !p; k++)
			if (t->tp[k]->pid == c->ppid)
				p = t->tp[k];
		if (!p)
			return ferr_new(err, EBADMSG, "process %u: parent %u is not in the tree", c->pid,
					c->ppid);
		if (p->zombie)
			return ferr_new(err, EBADMSG, "process %u: its parent %u is a zombie", c->pid,
					p->pid);
		if (c->zombie)
			continue;
		if (c->sid != p->sid && c->sid != c->pid)
			return ferr_new(err, EOPNOTSUPP, "process %u is in session %u, which neither it "
					"nor its parent %u leads: ferry cannot re-create that", c->pid,
					c->sid, p->pid);
		if (c->pgid != c->pid && c->pgid != p->pgid && !in_tree(t, c->pgid))
			return ferr_new(err, EOPNOTSUPP, "process %u is in process group %u, whose "
					"leader is not in the tree", c->pid, c->pgid);
		if (c->files_with && c->files_with != files_owner(p))
			return ferr_new(err, EOPNOTSUPP, "process %u shares its fd table with process "
					"%u, which is not its parent's", c->pid, c->files_with);
		if (c->fs_with && c->fs_with != fs_owner(p))
			return ferr_new(err, EOPNOTSUPP, "process %u shares its working directory with "
					"process %u, which is not its parent's", c->pid, c->fs_with);
	}
	return 0;
}

void rst_pidns_init(void)
{
	/* pid 1 of the restored tree's namespace: reap, and end with the last
	 * process (which ends the namespace). */
	syscall(SYS_close_range, 0, ~0u, 0);
	prctl(PR_SET_NAME, "ferry-init");
	for (;;)
		if (waitpid(-1, NULL, __WALL) < 0 && errno == ECHILD)
			_exit(0);
}

/* The namespace's init, a child of ferry: it forks the root, then execs
 * ferry as a plain reaper (nothing of ferry's memory stays in it). */
void rst_ns_init_main(struct rst_tree *t, int go_rd, int err_wr)
{
	char c;
	pid_t root;

	if (read(go_rd, &c, 1) != 1)
		_exit(127);
	root = rst_clone_pid((pid_t)t->tp[0]->pid, 0);
	if (root == 0)
		rst_stub_main(t, 0, err_wr);
	if (root < 0)
		child_fail(err_wr, "create process %u in the new PID namespace: %s", t->tp[0]->pid,
			   strerror(errno));
	execl("/proc/self/exe", "ferry-init", "__pidns-init", (char *)NULL);
	_exit(127);
}

