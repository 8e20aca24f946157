/* Holding and freezing the target. Threads are seized with PTRACE_SEIZE and
 * stopped with PTRACE_INTERRUPT; the task list is re-read until a pass finds
 * no new thread, since unfrozen threads may still clone. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cancel.h"
#include "common/log.h"
#include "proc/target.h"

#define FREEZE_MAX_PASSES 64
#define TARGET_SETTLE_NS (5 * 1000000000ull)

/* A pidfd polls readable once its process has exited, zombie or reaped:
 * signalling would still succeed on a zombie. */
static bool pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

bool target_alive(const struct target *t)
{
	return pidfd_alive(t->pidfd);
}

int target_open(struct target *t, pid_t pid, struct ferr *err)
{
	cleanup_close int pidfd = -1;
	cleanup_close int procfd = -1;
	char path[32];

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->pidfd = t->procfd = -1;
	if (pid <= 0)
		return ferr_new(err, EINVAL, "bad pid %d", pid);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		if (errno == ESRCH)
			return ferr_new(err, ESRCH, "no process with pid %d", pid);
		if (errno == EINVAL)
			return ferr_new(err, EINVAL, "pid %d is a thread, not a process: give its "
					"thread-group leader", pid);
		return ferr_sys(err, errno, "pidfd_open(%d)", pid);
	}
	snprintf(path, sizeof(path), "/proc/%d", pid);
	procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return ferr_sys(err, errno, "open %s", path);
	if (faccessat(procfd, "fd", R_OK, 0) < 0 && errno == EACCES)
		return ferr_new(err, EPERM, "not allowed to inspect process %d: ferry needs root or "
				"CAP_SYS_PTRACE over it (and Yama ptrace_scope must allow it)", pid);
	/* If the pid was recycled between pidfd_open and open, the pidfd now
	 * names a dead process: refuse rather than read a stranger. */
	if (!pidfd_alive(pidfd))
		return ferr_new(err, ESRCH, "process %d exited while ferry was opening it", pid);
	t->pidfd = steal_fd(pidfd);
	t->procfd = steal_fd(procfd);
	return 0;
}

static int tracer_of(const struct target *t, pid_t tid)
{
	char path[64], buf[4096], *p;

	snprintf(path, sizeof(path), "task/%d/status", tid);
	if (read_small_file_at(t->procfd, path, buf, sizeof(buf)) < 0)
		return 0;
	p = strstr(buf, "\nTracerPid:");
	return p ? atoi(p + 11) : 0;
}

static struct tthread *find_thread(struct target *t, pid_t tid)
{
	for (size_t i = 0; i < t->nr_th; i++)
		if (t->th[i].tid == tid)
			return &t->th[i];
	return NULL;
}

/* Wait until tid is in the stop our PTRACE_INTERRUPT asked for. A signal
 * that arrives first is taken out of the way and re-sent at release. With
 * a deadline (now_ns), give up then: a thread interrupted in a frozen
 * cgroup that was stopped by a signal there never traps. */
static int wait_interrupt_stop(struct target *t, struct tthread *th, uint64_t deadline,
			       struct ferr *err)
{
	for (;;) {
		int status;
		pid_t r = waitpid(th->tid, &status, __WALL | (deadline ? WNOHANG : 0));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return ferr_sys(err, errno, "wait for thread %d", th->tid);
		}
		if (r == 0) {
			if (now_ns() > deadline)
				return ferr_new(err, ETIMEDOUT, "thread %d of process %d did not stop "
						"after the thaw (stopped by a signal while its cgroup was "
						"frozen?)", th->tid, t->pid);
			usleep(500);
			continue;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return ferr_new(err, ECHILD, "thread %d of process %d exited while being frozen",
					th->tid, t->pid);
		if (!WIFSTOPPED(status))
			continue;
		if ((status >> 16) == PTRACE_EVENT_STOP) {
			th->stopped = true;
			return 0;
		}
		/* Signal-delivery-stop: the signal is out of the queue already.
		 * Keep its siginfo for the dump's pending list, suppress it now,
		 * deliver it again at release. */
		if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP && !th->resend_sig) {
			if (ptrace(PTRACE_GETSIGINFO, th->tid, NULL, th->resend_info) < 0)
				memset(th->resend_info, 0, sizeof(th->resend_info));
			th->resend_sig = WSTOPSIG(status);
			pr_debug("thread %d: signal %d arrived while freezing; re-sent at release",
				 th->tid, th->resend_sig);
		}
		if (ptrace(PTRACE_CONT, th->tid, NULL, NULL) < 0)
			return ferr_sys(err, errno, "resume thread %d to its interrupt stop", th->tid);
	}
}

/* PTRACE_SEIZE one thread. The kernel refuses a thread that is exiting
 * with EPERM, as it refuses a process we may not trace: once one thread of
 * the process is held (so tracing is allowed), EPERM for another is tried
 * again briefly, and a thread gone meanwhile is ESRCH (seen: 1 dump in 8 of
 * a process whose threads come and go, under ASan). */
static int seize_thread(struct target *t, pid_t tid)
{
	char path[32];

	for (int i = 0;; i++) {
		if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACESYSGOOD) == 0)
			return 0;
		if (errno != EPERM || tid == t->pid || !t->nr_th || i == 20)
			return -1;
		snprintf(path, sizeof(path), "task/%d", tid);
		if (faccessat(t->procfd, path, F_OK, 0) < 0) {
			errno = ESRCH;
			return -1;
		}
		usleep(500);
	}
}

/* Seize and interrupt thread tid, and hold it in t->th: 1 (*out is it), 0
 * if it exited first, or an error. */
static int seize_one(struct target *t, pid_t tid, struct tthread **out, struct ferr *err)
{
	struct tthread *th;

	if (seize_thread(t, tid) < 0) {
		int e = errno, tracer;

		if (e == ESRCH)
			return 0;
		tracer = tracer_of(t, tid);
		if (e == EPERM && tracer)
			return ferr_new(err, EBUSY, "process %d is already traced by pid %d (a "
					"debugger or another ferry?): detach it first", t->pid, tracer);
		if (e == EPERM)
			return ferr_new(err, EPERM, "not allowed to trace process %d: ferry needs "
					"root or CAP_SYS_PTRACE, and Yama ptrace_scope must allow it",
					t->pid);
		return ferr_sys(err, e, "PTRACE_SEIZE thread %d", tid);
	}
	th = realloc(t->th, (t->nr_th + 1) * sizeof(*t->th));
	if (!th) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return ferr_sys(err, ENOMEM, "freeze");
	}
	t->th = th;
	th = &t->th[t->nr_th++];
	memset(th, 0, sizeof(*th));
	th->tid = tid;
	th->pending = true;
	*out = th;
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0 && errno != ESRCH)
		return ferr_sys(err, errno, "PTRACE_INTERRUPT thread %d", tid);
	return 1;
}

/* Wait for th's interrupt stop and take its registers: 1, or 0 if it
 * ended meanwhile (dropped from t->th), or an error. */
static int settle_one(struct target *t, struct tthread *th, uint64_t deadline, struct ferr *err)
{
	pid_t tid = th->tid;

	if (wait_interrupt_stop(t, th, deadline, err)) {
		/* A thread that ends while we stop it is simply not part of
		 * the dump; the leader ending means the process is. */
		if (err->code != ECHILD || tid == t->pid)
			return -err->code;
		pr_debug("thread %d ended while being frozen: not part of the dump", tid);
		t->nr_th--;
		memmove(th, th + 1, (size_t)(t->th + t->nr_th - th) * sizeof(*th));
		ferr_clear(err);
		return 0;
	}
	th->pending = false;
	if (ptrace(PTRACE_GETREGS, tid, NULL, &th->regs) < 0)
		return ferr_sys(err, errno, "PTRACE_GETREGS thread %d", tid);
	return 1;
}

/* The threads target_seize interrupted: each in its stop (the cgroup is
 * thawed by now), within a few seconds. */
static int settle_pending(struct target *t, struct ferr *err)
{
	uint64_t deadline = now_ns() + TARGET_SETTLE_NS;

	for (size_t i = 0; i < t->nr_th;) {
		int ret;

		if (!t->th[i].pending) {
			i++;
			continue;
		}
		ret = settle_one(t, &t->th[i], deadline, err);
		if (ret < 0)
			return ret;
		i += ret; /* 0: dropped, the next is at i now */
	}
	return 0;
}

/* One pass over /proc/PID/task: seize and interrupt threads not yet held
 * and, with settle, wait for each one's stop. Returns how many were new
 * and stopped (0 without settle). */
static int seize_pass(struct target *t, bool settle, struct ferr *err)
{
	cleanup_dir DIR *d = opendir_at(t->procfd, "task");
	struct dirent *de;
	int added = 0;

	if (!d)
		return ferr_sys(err, errno, "open /proc/%d/task", t->pid);
	while ((de = readdir(d))) {
		pid_t tid = atoi(de->d_name);
		struct tthread *th = NULL;
		int ret;

		if (tid <= 0 || find_thread(t, tid))
			continue;
		ret = seize_one(t, tid, &th, err);
		if (ret < 0)
			return ret;
		if (!ret || !settle)
			continue; /* exited between readdir and seize, or left to settle_pending */
		ret = settle_one(t, th, 0, err);
		if (ret < 0)
			return ret;
		added += ret;
	}
	return added;
}

int target_seize(struct target *t, struct ferr *err)
{
	int ret;

	if (!t->frozen) {
		t->freeze_start_ns = now_ns();
		t->frozen = true;
	}
	ret = seize_pass(t, false, err);
	return ret < 0 ? ret : 0;
}

int target_freeze(struct target *t, struct ferr *err)
{
	int n = 0, pass;

	if (!t->frozen) {
		t->freeze_start_ns = now_ns();
		t->frozen = true;
	}
	/* Threads target_seize took while their cgroup was frozen first. */
	n = settle_pending(t, err);
	/* A cancel is seen between passes: every thread seized by then is in
	 * its stop (waits for it go on through EINTR) and is let go again. */
	for (pass = 0; n >= 0 && pass < FREEZE_MAX_PASSES; pass++) {
		n = cancel_check(err);
		if (!n)
			n = seize_pass(t, true, err);
		if (n <= 0)
			break;
	}
	if (n == 0 && !t->nr_th)
		n = ferr_new(err, ESRCH, "process %d has no threads left (it exited)", t->pid);
	else if (n > 0)
		n = ferr_new(err, EAGAIN, "process %d keeps creating threads; gave up after %d passes",
			     t->pid, FREEZE_MAX_PASSES);
	if (n < 0) {
		target_release(t);
		if (!target_alive(t))
			return ferr_new(err, ESRCH, "process %d exited while being frozen", t->pid);
		return n;
	}
	pr_debug("froze %zu thread(s) of %d", t->nr_th, t->pid);
	return 0;
}

/* A frozen thread that cannot be detached has left its stop: it was killed
 * (a migration's hand-over ends the original while frozen). A traced thread
 * that exits waits for its tracer to reap it, and keeps its process from
 * being reaped (the pidfd never reads as exited): reap it here, waiting a
 * second at most. */
static void reap_dying(pid_t tid)
{
	for (int i = 0; i < 1000; i++) {
		int st;
		pid_t r = waitpid(tid, &st, __WALL | WNOHANG);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r == tid && (WIFEXITED(st) || WIFSIGNALED(st))))
			return;
		usleep(1000);
	}
}

/* A thread target_seize interrupted can be let go only from its stop:
 * wait for it (its cgroup is thawed by now). One that never stops stays
 * traced until ferry exits. */
static void settle_for_release(struct target *t)
{
	uint64_t deadline = now_ns() + TARGET_SETTLE_NS;
	struct ferr e;

	for (size_t i = 0; i < t->nr_th; i++) {
		struct tthread *th = &t->th[i];

		if (!th->pending || wait_interrupt_stop(t, th, deadline, &e))
			continue;
		th->pending = false;
		if (ptrace(PTRACE_GETREGS, th->tid, NULL, &th->regs) < 0)
			th->stopped = false; /* nothing to put back */
	}
}

void target_release(struct target *t)
{
	if (!t->frozen)
		return;
	settle_for_release(t);
	for (size_t i = 0; i < t->nr_th; i++) {
		struct tthread *th = &t->th[i];

		if (th->pending)
			continue;
		if (th->stopped)
			ptrace(PTRACE_SETREGS, th->tid, NULL, &th->regs);
		if (ptrace(PTRACE_DETACH, th->tid, NULL, NULL) < 0 && errno == ESRCH)
			reap_dying(th->tid);
		if (th->resend_sig)
			syscall(SYS_tgkill, t->pid, th->tid, th->resend_sig);
	}
	t->frozen = false;
	t->freeze_ns = now_ns() - t->freeze_start_ns;
	free(t->th);
	t->th = NULL;
	t->nr_th = 0;
}

void target_close(struct target *t)
{
	/* pid 0: zeroed, never opened (target_open sets the pid first). */
	if (!t->pid)
		return;
	target_release(t);
	if (t->procfd >= 0)
		close(t->procfd);
	if (t->pidfd >= 0)
		close(t->pidfd);
	t->procfd = t->pidfd = -1;
}
