/* Threads and the kernel's per-thread and per-process state of a restored
 * process: threads by clone3 (with their TIDs where free), then what each
 * thread can only set for itself (clear_child_tid, robust list, altstack,
 * rseq, name, its pending signals) by injection into it, signal handlers,
 * rlimits and credentials (creds.c), and last the registers, FPU state and
 * masks. */
#include <inttypes.h>
#include <linux/sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <elf.h>

#include "common/log.h"
#include "proc/tree.h"
#include "restore/rst.h"

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

#define THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | \
		      CLONE_SYSVSEM)

/* Wait for a thread born under PTRACE_O_TRACECLONE to report its first stop. */
static int wait_new_thread(pid_t tid, struct user_regs_struct *regs, struct ferr *err)
{
	int status;

	if (waitpid(tid, &status, __WALL) < 0)
		return ferr_sys(err, errno, "wait for new thread %d", tid);
	if (!WIFSTOPPED(status))
		return ferr_new(err, ESRCH, "new thread %d did not stop (status 0x%x)", tid, status);
	if (ptrace(PTRACE_GETREGS, tid, NULL, regs) < 0)
		return ferr_sys(err, errno, "PTRACE_GETREGS new thread %d", tid);
	return 0;
}

static int clone_thread(struct rst *r, pid_t want, long *tid, struct ferr *err)
{
	struct clone_args ca;
	uint64_t tid_at = 0, ca_at = 0;
	int ret;

	memset(&ca, 0, sizeof(ca));
	ca.flags = THREAD_FLAGS;
	ret = rst_scratch_put(r, 512, &want, sizeof(want), &tid_at, err);
	if (ret)
		return ret;
	if (want) {
		ca.set_tid = tid_at;
		ca.set_tid_size = 1;
	}
	ret = rst_scratch_put(r, 0, &ca, sizeof(ca), &ca_at, err);
	if (!ret)
		ret = inj_syscall(&r->th[0].inj, __NR_clone3, ca_at, sizeof(ca), 0, 0, 0, 0, tid, err);
	return ret;
}

int rst_threads_create(struct rst *r, struct ferr *err)
{
	for (size_t i = 1; i < r->nr_threads; i++) {
		struct rst_thread *t = &r->th[i];
		struct user_regs_struct regs;
		long tid;
		int ret;

		ret = clone_thread(r, (pid_t)t->img->tid, &tid, err);
		if (!ret && (tid == -EEXIST || tid == -EPERM)) {
			const char *why = tid == -EEXIST ? "is in use" : "cannot be chosen by this caller";

			if (r->opts->require_same_pid)
				return ferr_new(err, (int)-tid, "TID %u %s, and --require-same-pid "
						"was given", t->img->tid, why);
			pr_warn("TID %u %s: the thread gets another one", t->img->tid, why);
			r->res->same_pid = false;
			ret = clone_thread(r, 0, &tid, err);
		}
		if (ret)
			return ret;
		if (tid < 0)
			return ferr_sys(err, (int)-tid, "create thread %u (clone3)", t->img->tid);
		t->tid = (pid_t)tid;
		ret = wait_new_thread(t->tid, &regs, err);
		if (ret)
			return ret;
		inj_init(&t->inj, r->pid, t->tid, &regs, r->th[0].inj.syscall_ip);
		t->inj.scratch = r->scratch;
		t->inj.scratch_size = r->scratch_size;
	}
	return 0;
}

/* ---- per-thread state, set by the thread itself ---------------------------- */

static int thread_state(struct rst *r, struct rst_thread *t, struct ferr *err)
{
	const Ferry__Thread *e = t->img;
	uint64_t at = 0;
	long rv;
	int ret = 0;

	if (e->has_clear_child_tid)
		ret = rst_sys(t, "set_tid_address", &rv, err, __NR_set_tid_address,
			      e->clear_child_tid, 0, 0, 0, 0, 0);
	if (!ret && e->has_robust_list && e->robust_list)
		ret = rst_sys(t, "set_robust_list", &rv, err, __NR_set_robust_list, e->robust_list,
			      e->robust_list_len, 0, 0, 0, 0);
	if (!ret && e->altstack && !(e->altstack->flags & SS_DISABLE)) {
		stack_t ss = { .ss_sp = (void *)(uintptr_t)e->altstack->sp,
			       .ss_flags = (int)(e->altstack->flags & SS_AUTODISARM),
			       .ss_size = e->altstack->size };
		ret = rst_scratch_put(r, 0, &ss, sizeof(ss), &at, err);
		if (!ret)
			ret = rst_sys(t, "sigaltstack", &rv, err, __NR_sigaltstack, at, 0, 0, 0, 0, 0);
	}
	if (!ret && e->rseq && e->rseq->ptr)
		ret = rst_sys(t, "rseq registration", &rv, err, __NR_rseq, e->rseq->ptr,
			      e->rseq->size, 0, e->rseq->signature, 0, 0);
	if (!ret && e->comm) {
		char name[16] = { 0 };

		strncpy(name, e->comm, sizeof(name) - 1);
		ret = rst_scratch_put(r, 0, name, sizeof(name), &at, err);
		if (!ret)
			ret = rst_sys(t, "prctl(PR_SET_NAME)", &rv, err, __NR_prctl, PR_SET_NAME, at, 0,
				      0, 0, 0);
	}
	if (ret)
		return ferr_wrap(err, "thread %d", t->tid);
	return 0;
}

/* ---- process-wide state ----------------------------------------------------- */

struct ksigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

static int sigactions(struct rst *r, struct ferr *err)
{
	for (size_t i = 0; i < r->proc->n_sigactions; i++) {
		const Ferry__Sigaction *s = r->proc->sigactions[i];
		struct ksigaction ka = { s->handler, s->flags, s->restorer, s->mask };
		uint64_t at;
		long rv;
		int ret;

		if (s->signo == SIGKILL || s->signo == SIGSTOP || s->signo >= 65)
			continue;
		ret = rst_scratch_put(r, 0, &ka, sizeof(ka), &at, err);
		if (!ret)
			ret = rst_sys(&r->th[0], "rt_sigaction", &rv, err, __NR_rt_sigaction, s->signo,
				      at, 0, 8, 0, 0);
		if (ret)
			return ferr_wrap(err, "handler of signal %u", s->signo);
	}
	return 0;
}

static int rlimits(struct rst *r, struct ferr *err)
{
	for (size_t i = 0; i < r->proc->n_rlimits; i++) {
		const Ferry__Rlimit *l = r->proc->rlimits[i];
		struct rlimit new = { (rlim_t)l->cur, (rlim_t)l->max };

		if (prlimit(r->pid, (__rlimit_resource_t)l->resource, &new, NULL) < 0)
			return ferr_sys(err, errno, "set resource limit %u to %" PRIu64 "/%" PRIu64 "%s",
					l->resource, l->cur, l->max, errno == EPERM ?
					" (raising a hard limit needs CAP_SYS_RESOURCE)" : "");
	}
	return 0;
}

/* Queue siginfo records as they were pending: signals are still blocked, so
 * they wait until the restored mask lets them through. */
static int queue_signals(struct rst *r, struct rst_thread *t, ProtobufCBinaryData *infos,
			 size_t n, bool shared, struct ferr *err)
{
	/* The kernel lets a process queue a siginfo of the kernel's own
	 * (si_code >= 0, as SIGCHLD's) only to itself, named by the PID and
	 * TID it has in its own PID namespace: a container's are not ferry's. */
	pid_t pid = n ? ptree_ns_pid(r->pid) : 0;
	pid_t tid = n ? ptree_ns_pid(t->tid) : 0;

	if (n && (pid <= 0 || tid <= 0))
		return ferr_new(err, ESRCH, "the PID of process %d in its own namespace", r->pid);
	for (size_t i = 0; i < n; i++) {
		siginfo_t si;
		uint64_t at;
		long rv;
		int ret;

		if (infos[i].len != sizeof(si))
			return ferr_new(err, EBADMSG, "pending signal record of %zu bytes", infos[i].len);
		memcpy(&si, infos[i].data, sizeof(si));
		if (si.si_signo <= 0 || si.si_signo >= 65 || si.si_signo == SIGKILL ||
		    si.si_signo == SIGSTOP)
			continue;
		ret = rst_scratch_put(r, 0, &si, sizeof(si), &at, err);
		if (!ret && shared)
			ret = rst_sys(t, "rt_sigqueueinfo", &rv, err, __NR_rt_sigqueueinfo, pid,
				      (uint64_t)si.si_signo, at, 0, 0, 0);
		else if (!ret)
			ret = rst_sys(t, "rt_tgsigqueueinfo", &rv, err, __NR_rt_tgsigqueueinfo, pid,
				      tid, (uint64_t)si.si_signo, at, 0, 0);
		if (ret)
			return ferr_wrap(err, "pending signal %d", si.si_signo);
	}
	return 0;
}

int rst_process_state(struct rst *r, struct ferr *err)
{
	int ret;

	ret = sigactions(r, err);
	for (size_t i = 0; !ret && i < r->nr_threads; i++)
		ret = thread_state(r, &r->th[i], err);
	if (!ret)
		ret = rlimits(r, err);
	if (!ret)
		ret = rst_creds_set(r, err);
	if (!ret)
		ret = queue_signals(r, &r->th[0], r->proc->shared_pending, r->proc->n_shared_pending,
				    true, err);
	for (size_t i = 0; !ret && i < r->nr_threads; i++)
		ret = queue_signals(r, &r->th[i], r->th[i].img->pending, r->th[i].img->n_pending,
				    false, err);
	if (!ret)
		ret = rst_pstate_set(r, err);
	return ret;
}

/* ---- registers, last --------------------------------------------------------- */

#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/* A thread frozen inside a syscall stopped with the kernel's restart codes
 * in rax; the kernel would have restarted the call on its way out. ferry
 * resumes from a different stop, so it does that itself: back to the
 * syscall instruction with the call number, or EINTR where the kernel kept
 * a restart block that did not survive. */
static void syscall_restart(struct user_regs_struct *g)
{
	if ((int64_t)g->orig_rax < 0)
		return;
	switch (-(int64_t)g->rax) {
	case ERESTARTSYS:
	case ERESTARTNOINTR:
	case ERESTARTNOHAND:
		g->rax = g->orig_rax;
		g->rip -= 2;
		break;
	case ERESTART_RESTARTBLOCK:
		g->rax = (uint64_t)-EINTR;
		break;
	}
	g->orig_rax = (uint64_t)-1;
}

static int thread_regs(struct rst_thread *t, struct ferr *err)
{
	const Ferry__Thread *e = t->img;
	struct user_regs_struct g;
	uint64_t mask = e->has_sigmask ? e->sigmask : 0;

	memcpy(&g, e->gpregs.data, sizeof(g));
	syscall_restart(&g);
	if (ptrace(PTRACE_SETREGS, t->tid, NULL, &g) < 0)
		return ferr_sys(err, errno, "set registers of thread %d", t->tid);
	if (e->has_xsave) {
		struct iovec iov = { e->xsave.data, e->xsave.len };

		if (ptrace(PTRACE_SETREGSET, t->tid, (void *)NT_X86_XSTATE, &iov) < 0)
			return ferr_sys(err, errno, "set FPU/SSE/AVX state of thread %d", t->tid);
	} else if (e->has_fpregs) {
		if (ptrace(PTRACE_SETFPREGS, t->tid, NULL, e->fpregs.data) < 0)
			return ferr_sys(err, errno, "set FPU state of thread %d", t->tid);
	}
	if (ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(mask), &mask) < 0)
		return ferr_sys(err, errno, "set the signal mask of thread %d", t->tid);
	return 0;
}

int rst_finish(struct rst *r, struct ferr *err)
{
	long rv;
	int ret;

	/* The last injected call takes away ferry's scratch pages. */
	ret = rst_sys(&r->th[0], "unmap the scratch pages", &rv, err, __NR_munmap, r->scratch,
		      r->scratch_size, 0, 0, 0, 0);
	if (ret)
		return ret;
	r->scratch = 0;
	/* After a filter is in, ferry's own calls would be judged by it. */
	ret = rst_pstate_seccomp(r, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < r->nr_threads; i++) {
		ret = thread_regs(&r->th[i], err);
		if (ret)
			return ret;
	}
	/* Queued now, the stop takes the whole process as it is let go. */
	if (r->opts->stopped && kill(r->pid, SIGSTOP) < 0)
		return ferr_sys(err, errno, "stop process %d", r->pid);
	return r->hold_detach ? 0 : rst_detach(r, err);
}

int rst_detach(struct rst *r, struct ferr *err)
{
	/* Registers are all set: let every thread go, the main one last. */
	for (size_t i = r->nr_threads; i-- > 0;) {
		if (ptrace(PTRACE_DETACH, r->th[i].tid, NULL, NULL) < 0)
			return ferr_sys(err, errno, "detach thread %d", r->th[i].tid);
	}
	return 0;
}
