/* The restored process starts as a fork of ferry: it takes the dumped PID
 * where it is free (clone3 with set_tid), waits until ferry has seized it,
 * puts its fds, cwd, umask and session in place with ordinary calls, and
 * stops itself. From then on ferry drives it from outside. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/log.h"
#include "proc/fds.h"
#include "restore/rst.h"
#include "restore/validate.h"

static void __attribute__((noreturn, format(printf, 2, 3))) child_fail(int fd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	ssize_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
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
 * it is known to be the right kind of file. */
static void child_open_fd(const Ferry__Fd *f, int errfd)
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
	if (f->file && (st.st_dev != f->file->dev || st.st_ino != f->file->ino))
		child_fail(errfd, "fd %u: `%s` is another file than at dump time", f->fd, f->path);
	if (f->kind == FERRY__FD_KIND__FD_CHR && (!S_ISCHR(st.st_mode) ||
						  (f->has_rdev && st.st_rdev != f->rdev)))
		child_fail(errfd, "fd %u: `%s` is not the device it was at dump time", f->fd, f->path);
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

/* Runs in the child, on ferry's own memory, before its first stop. */
static void __attribute__((noreturn)) child_main(struct rst *r, int go, int errfd)
{
	const Ferry__Process *p = r->proc;
	unsigned top = 3;
	struct ferr err;
	sigset_t all;
	char c;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (read(go, &c, 1) != 1) /* ferry gave up before seizing us */
		_exit(127);
	/* Everything from here on is opened as the process, not as ferry:
	 * an image cannot hand its process a file its user could not open. */
	if (rst_creds_fs_self(r, &err))
		child_fail(errfd, "%s", err.msg);
	for (size_t i = 0; i < r->nr_fds; i++)
		if (r->fds[i]->fd + 1 > top)
			top = r->fds[i]->fd + 1;
	/* Our error pipe goes above every fd the process will have. */
	errfd = fcntl(errfd, F_DUPFD_CLOEXEC, (int)top);
	if (errfd < 0)
		_exit(127);
	syscall(SYS_close_range, 3, (unsigned)errfd - 1, 0);
	syscall(SYS_close_range, (unsigned)errfd + 1, ~0u, 0);
	for (size_t i = 0; i < r->nr_fds; i++)
		if (fd_supported(r->fds[i]) && rst_fdkind_owns(r->fds[i])) {
			if (rst_fdkind_open(r, r->fds[i], &err))
				child_fail(errfd, "%s", err.msg);
		} else if (r->fds[i]->path && fd_supported(r->fds[i]))
			child_open_fd(r->fds[i], errfd);
	if (rst_fdkind_epoll(r, &err))
		child_fail(errfd, "%s", err.msg);
	if (p->has_sid && p->sid == p->pid) {
		if (setsid() < 0)
			child_fail(errfd, "setsid: %s", strerror(errno));
	} else if (p->has_pgid && p->pgid == p->pid && setpgid(0, 0) < 0) {
		child_fail(errfd, "setpgid: %s", strerror(errno));
	}
	if (p->cwd && chdir(p->cwd) < 0)
		child_fail(errfd, "working directory `%s`: %s", p->cwd, strerror(errno));
	if (p->has_umask)
		umask((mode_t)p->umask);
	if (p->has_personality && personality(p->personality) < 0)
		child_fail(errfd, "personality 0x%x: %s", p->personality, strerror(errno));
	close(errfd);
	syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
	_exit(127); /* only reached if ferry let us run on: never a process */
}

static pid_t clone_with_pid(pid_t want)
{
	struct clone_args ca;

	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	if (want > 0) {
		ca.set_tid = (uintptr_t)&want;
		ca.set_tid_size = 1;
	}
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

/* Wait for the child's SIGSTOP: the stop ferry takes over from. */
static int wait_first_stop(struct rst *r, int errfd, struct ferr *err)
{
	char msg[512];
	int status;
	ssize_t n;

	for (;;) {
		if (waitpid(r->pid, &status, __WALL) < 0)
			return ferr_sys(err, errno, "wait for the new process %d", r->pid);
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			n = read(errfd, msg, sizeof(msg) - 1);
			msg[n > 0 ? n : 0] = '\0';
			r->pid = 0; /* reaped: nothing to kill */
			return ferr_new(err, EIO, "setting up the new process failed: %s",
					n > 0 ? msg : "it died without saying why");
		}
		if (WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP && (status >> 16) == 0)
			return 0;
		/* Anything else (a stray signal) is suppressed: it stays blocked. */
		if (ptrace(PTRACE_CONT, r->pid, NULL, NULL) < 0)
			return ferr_sys(err, errno, "PTRACE_CONT new process %d", r->pid);
	}
}

int rst_child_create(struct rst *r, struct ferr *err)
{
	pid_t want = (pid_t)r->proc->pid;
	cleanup_close int go_rd = -1, go_wr = -1, err_rd = -1, err_wr = -1;
	long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE;
	char path[32];
	int p[2], ret;

	if (pipe2(p, O_CLOEXEC) < 0)
		return ferr_sys(err, errno, "pipe");
	go_rd = p[0];
	go_wr = p[1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ferr_sys(err, errno, "pipe");
	err_rd = p[0];
	err_wr = p[1];
	fflush(NULL);
	r->pid = clone_with_pid(want);
	/* EPERM: choosing a PID needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN). */
	if (r->pid < 0 && want > 0 && (errno == EEXIST || errno == EPERM)) {
		const char *why = errno == EEXIST ? "is in use" : "cannot be chosen by this caller";

		if (r->opts->require_same_pid) {
			ret = -errno;
			r->pid = 0;
			return ferr_new(err, -ret, "PID %d %s, and --require-same-pid was given", want,
					why);
		}
		pr_warn("PID %d %s: the process gets another one", want, why);
		r->res->same_pid = false;
		r->pid = clone_with_pid(0);
	}
	if (r->pid < 0) {
		ret = ferr_sys(err, errno, "create the process (clone3%s)", want ? " with set_tid" : "");
		r->pid = 0;
		return ret;
	}
	if (r->pid == 0) {
		close(go_wr);
		close(err_rd);
		child_main(r, go_rd, err_wr);
	}
	close(steal_fd(go_rd));
	close(steal_fd(err_wr));
	/* Seized before it does anything; EXITKILL: if ferry dies, so does it. */
	if (ptrace(PTRACE_SEIZE, r->pid, NULL, (void *)opts) < 0)
		return ferr_sys(err, errno, "PTRACE_SEIZE the new process %d", r->pid);
	if (write(go_wr, "g", 1) != 1)
		return ferr_sys(err, errno, "start the new process");
	ret = wait_first_stop(r, err_rd, err);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/proc/%d", r->pid);
	r->procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->procfd < 0)
		return ferr_sys(err, errno, "open %s", path);
	return 0;
}
