/* Process and mapping state proc/pstate.c dumps, set again in the child by
 * injected syscalls, in two steps. rst_pstate_set runs after memory,
 * threads and credentials: madvise flags per VMA, THP disable, subreaper,
 * pdeathsig (a credential change clears it, so after them), interval and
 * POSIX timers (their sigevent value may point into memory). rst_pstate_seccomp
 * runs last of all, after ferry's scratch pages are gone: no_new_privs,
 * then each thread's seccomp filters, then strict mode; from then on a
 * filter would judge ferry's own injected calls too, so there are none. */
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "common/fault.h"
#include "common/log.h"
#include "proc/pstate.h"
#include "restore/rst.h"

#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#endif
#define CAP_SYS_ADMIN_BIT 21
#define FILLER_TIMERS_MAX 65536
#define FILTER_BYTES_MAX (4096 * sizeof(struct sock_filter))

/* ---- madvise ---------------------------------------------------------------- */

static bool advisable(Ferry__VmaKind k)
{
	return k == FERRY__VMA_KIND__VMA_ANON || k == FERRY__VMA_KIND__VMA_FILE ||
	       k == FERRY__VMA_KIND__VMA_HEAP || k == FERRY__VMA_KIND__VMA_STACK;
}

static int madvise_vmas(struct rst *r, struct ferr *err)
{
	for (size_t i = 0; i < r->img->nr_vmas; i++) {
		const Ferry__Vma *v = r->img->vmas[i];

		if (!v->has_madv || !v->madv || !advisable(v->kind))
			continue;
		if (v->madv & ~VMA_MADV_ALL)
			return ferr_new(err, EBADMSG, "VMA 0x%" PRIx64 "-0x%" PRIx64 ": unknown madvise "
					"bits 0x%x", v->start, v->end, v->madv & ~VMA_MADV_ALL);
		for (unsigned b = 0; b < 8; b++) {
			long rv;
			int ret;

			if (!(v->madv & (1u << b)))
				continue;
			ret = rst_sys(&r->th[0], "madvise", &rv, err, __NR_madvise, v->start,
				      v->end - v->start, (uint64_t)pstate_madv_advice(b), 0, 0, 0);
			if (ret)
				return ferr_wrap(err, "VmFlag %s of VMA 0x%" PRIx64 "-0x%" PRIx64 " %s",
						 pstate_madv_name(b), v->start, v->end,
						 v->name ? v->name : "(anonymous)");
		}
	}
	return 0;
}

/* ---- timers ----------------------------------------------------------------- */

struct ksigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid;
	int32_t pad[11];
};

static struct rst_thread *thread_of(struct rst *r, uint32_t tid)
{
	for (size_t i = 0; i < r->nr_threads; i++)
		if (r->th[i].img->tid == tid)
			return &r->th[i];
	return NULL;
}

/* A CPU clock names its process or thread (clock_getcpuclockid): ~pid << 3
 * | type. Only the restored process's own ids can be given their new ones. */
static int timer_clock(struct rst *r, const Ferry__PosixTimer *e, int32_t *clock,
		       struct ferr *err)
{
	const struct rst_thread *t;
	int32_t pid;

	*clock = e->clock;
	if (e->clock >= 0)
		return 0;
	pid = ~(e->clock >> 3);
	if (e->clock & 4)
		t = thread_of(r, (uint32_t)pid);
	else
		t = (uint32_t)pid == r->proc->pid ? &r->th[0] : NULL;
	if (!t)
		return ferr_new(err, EOPNOTSUPP, "POSIX timer %d counts the CPU time of %s %d, not "
				"of the dumped process: ferry cannot restore it", e->id,
				e->clock & 4 ? "thread" : "process", pid);
	*clock = (int32_t)(((uint32_t)~t->tid << 3) | ((uint32_t)e->clock & 7));
	return 0;
}

/* Everything the timers need, refused before the first is made. */
static int timers_check(struct rst *r, struct ferr *err)
{
	for (size_t i = 0; i < r->proc->n_posix_timers; i++) {
		const Ferry__PosixTimer *e = r->proc->posix_timers[i];
		int32_t clock;
		int ret;

		if (i && e->id <= r->proc->posix_timers[i - 1]->id)
			return ferr_new(err, EBADMSG, "POSIX timers not in ascending ID order");
		if (e->id < 0)
			return ferr_new(err, EBADMSG, "POSIX timer with a negative ID %d", e->id);
		if ((e->notify & SIGEV_THREAD_ID) && (!e->has_tid || !thread_of(r, e->tid)))
			return ferr_new(err, EOPNOTSUPP, "POSIX timer %d signals thread %u, which is "
					"not a thread of process %u (it exited?): ferry cannot "
					"restore it", e->id, e->tid, r->proc->pid);
		if ((e->notify & ~SIGEV_THREAD_ID) > SIGEV_THREAD)
			return ferr_new(err, EBADMSG, "POSIX timer %d: unknown notify %u", e->id,
					e->notify);
		ret = timer_clock(r, e, &clock, err);
		if (ret)
			return ret;
	}
	return 0;
}

static int timer_make(struct rst *r, const Ferry__PosixTimer *e, int32_t want, int32_t *got,
		      struct ferr *err)
{
	struct rst_thread *m = &r->th[0];
	struct ksigevent sev = { 0 };
	uint64_t sev_at, id_at;
	int32_t clock;
	long rv;
	int ret;

	ret = timer_clock(r, e, &clock, err);
	if (ret)
		return ret;
	sev.value = e->sigval;
	sev.signo = (int32_t)e->signo;
	sev.notify = (int32_t)e->notify;
	if (e->notify & SIGEV_THREAD_ID)
		sev.tid = thread_of(r, e->tid)->tid;
	ret = rst_scratch_put(r, 0, &sev, sizeof(sev), &sev_at, err);
	if (!ret)
		ret = rst_scratch_put(r, 128, &want, sizeof(want), &id_at, err);
	if (!ret)
		ret = rst_sys(m, "timer_create", &rv, err, __NR_timer_create, (uint64_t)(int64_t)clock,
			      sev_at, id_at, 0, 0, 0);
	if (!ret)
		ret = inj_read(&m->inj, id_at, got, sizeof(*got), err);
	return ret;
}

static int timer_arm(struct rst *r, const Ferry__PosixTimer *e, struct ferr *err)
{
	struct itimerspec its = {
		.it_value = { (time_t)(e->value_ns / 1000000000u), (long)(e->value_ns % 1000000000u) },
		.it_interval = { (time_t)(e->interval_ns / 1000000000u),
				 (long)(e->interval_ns % 1000000000u) },
	};
	uint64_t at;
	long rv;
	int ret;

	if (!e->value_ns)
		return 0;
	ret = rst_scratch_put(r, 0, &its, sizeof(its), &at, err);
	if (!ret)
		ret = rst_sys(&r->th[0], "timer_settime", &rv, err, __NR_timer_settime,
			      (uint64_t)e->id, 0, at, 0, 0, 0);
	return ret;
}

/* Kernels before PR_TIMER_CREATE_RESTORE_IDS hand out IDs in order from 0 in
 * a new process: timers below the next wanted ID fill the gap, and go. */
static int timers_in_order(struct rst *r, struct ferr *err)
{
	int32_t next = 0;
	long rv;
	int ret = 0;

	for (size_t i = 0; !ret && i < r->proc->n_posix_timers; i++) {
		const Ferry__PosixTimer *e = r->proc->posix_timers[i];
		int32_t got = 0;

		if (e->id - next > FILLER_TIMERS_MAX)
			return ferr_new(err, EOPNOTSUPP, "POSIX timer %d: this kernel hands out timer IDs "
					"in order, and %d filler timers are too many", e->id,
					e->id - next);
		for (;;) {
			ret = timer_make(r, e, 0, &got, err);
			if (ret || got >= e->id)
				break;
			ret = rst_sys(&r->th[0], "timer_delete", &rv, err, __NR_timer_delete,
				      (uint64_t)got, 0, 0, 0, 0, 0);
			if (ret)
				break;
		}
		if (!ret && got != e->id)
			ret = ferr_new(err, EOPNOTSUPP, "POSIX timer %d got ID %d: this kernel hands "
				       "out IDs in order and cannot restore it", e->id, got);
		next = e->id + 1;
	}
	return ret;
}

/* A deleted timer's ID is not handed out again before the counter wraps,
 * so deleting fillers at once above is safe. */
static int posix_timers(struct rst *r, struct ferr *err)
{
	struct rst_thread *m = &r->th[0];
	long rv;
	int ret;

	if (!r->proc->n_posix_timers)
		return 0;
	ret = inj_syscall(&m->inj, __NR_prctl, PR_TIMER_CREATE_RESTORE_IDS,
			  PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0, 0, &rv, err);
	if (ret)
		return ret;
	if (rv == -EINVAL || fault_hit("timer-ids-in-order")) {
		pr_debug("no PR_TIMER_CREATE_RESTORE_IDS: timers created in ID order");
		if (rv == 0)
			ret = rst_sys(m, "prctl(PR_TIMER_CREATE_RESTORE_IDS, OFF)", &rv, err,
				      __NR_prctl, PR_TIMER_CREATE_RESTORE_IDS,
				      PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0, 0);
		if (!ret)
			ret = timers_in_order(r, err);
	} else if (rv < 0) {
		return ferr_sys(err, (int)-rv, "prctl(PR_TIMER_CREATE_RESTORE_IDS) in the new process");
	} else {
		for (size_t i = 0; !ret && i < r->proc->n_posix_timers; i++) {
			const Ferry__PosixTimer *e = r->proc->posix_timers[i];
			int32_t got = 0;

			ret = timer_make(r, e, e->id, &got, err);
			if (!ret && got != e->id)
				ret = ferr_new(err, EIO, "POSIX timer %d was created as %d", e->id, got);
		}
		if (!ret)
			ret = rst_sys(m, "prctl(PR_TIMER_CREATE_RESTORE_IDS, OFF)", &rv, err,
				      __NR_prctl, PR_TIMER_CREATE_RESTORE_IDS,
				      PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0, 0);
	}
	for (size_t i = 0; !ret && i < r->proc->n_posix_timers; i++)
		ret = timer_arm(r, r->proc->posix_timers[i], err);
	return ret;
}

static int itimers(struct rst *r, struct ferr *err)
{
	for (size_t i = 0; i < r->proc->n_itimers; i++) {
		const Ferry__Itimer *e = r->proc->itimers[i];
		struct itimerval it = {
			.it_interval = { (time_t)(e->interval_us / 1000000u),
					 (suseconds_t)(e->interval_us % 1000000u) },
			.it_value = { (time_t)(e->value_us / 1000000u),
				      (suseconds_t)(e->value_us % 1000000u) },
		};
		uint64_t at;
		long rv;
		int ret;

		if (e->which > ITIMER_PROF)
			return ferr_new(err, EBADMSG, "interval timer %u is not one of the three",
					e->which);
		ret = rst_scratch_put(r, 0, &it, sizeof(it), &at, err);
		if (!ret)
			ret = rst_sys(&r->th[0], "setitimer", &rv, err, __NR_setitimer, e->which, at, 0,
				      0, 0, 0);
		if (ret)
			return ferr_wrap(err, "interval timer %u", e->which);
	}
	return 0;
}

/* ---- the first step --------------------------------------------------------- */

static int seccomp_check(struct rst *r, struct ferr *err)
{
	struct rst_caps caps = { 0 };

	if (r->proc->creds)
		rst_creds_caps(r->proc->creds, &caps);
	else
		caps = r->caller.caps;
	for (size_t i = 0; i < r->nr_threads; i++) {
		const Ferry__Thread *e = r->th[i].img;

		if (e->seccomp_mode > 2)
			return ferr_new(err, EBADMSG, "thread %u: unknown seccomp mode %u", e->tid,
					e->seccomp_mode);
		if (e->n_seccomp_filters != e->n_seccomp_flags ||
		    (e->n_seccomp_filters && e->seccomp_mode != 2))
			return ferr_new(err, EBADMSG, "thread %u: seccomp filters do not match its "
					"mode", e->tid);
		for (size_t k = 0; k < e->n_seccomp_filters; k++)
			if (!e->seccomp_filters[k].len || e->seccomp_filters[k].len % 8 ||
			    e->seccomp_filters[k].len > FILTER_BYTES_MAX)
				return ferr_new(err, EBADMSG, "thread %u: seccomp filter %zu of %zu "
						"bytes", e->tid, k, e->seccomp_filters[k].len);
		/* The kernel lets a filter in without no_new_privs only with
		 * CAP_SYS_ADMIN, and ferry installs them after the process got
		 * its own credentials back. */
		if (e->n_seccomp_filters && !e->no_new_privs &&
		    !(caps.eff & (1ULL << CAP_SYS_ADMIN_BIT)))
			return ferr_new(err, EOPNOTSUPP, "thread %u has seccomp filters without "
					"no_new_privs and no CAP_SYS_ADMIN to install them with: "
					"ferry cannot restore them", e->tid);
	}
	return 0;
}

int rst_pstate_check(struct rst *r, struct ferr *err)
{
	int ret = seccomp_check(r, err);

	return ret ? ret : timers_check(r, err);
}

int rst_pstate_set(struct rst *r, struct ferr *err)
{
	const Ferry__Process *p = r->proc;
	long rv;
	int ret;

	ret = rst_pstate_check(r, err);
	if (!ret)
		ret = madvise_vmas(r, err);
	if (!ret && p->has_thp_disable && p->thp_disable)
		ret = rst_sys(&r->th[0], "prctl(PR_SET_THP_DISABLE)", &rv, err, __NR_prctl,
			      PR_SET_THP_DISABLE, 1, p->thp_disable & ~1u, 0, 0, 0);
	if (!ret && p->has_child_subreaper && p->child_subreaper)
		ret = rst_sys(&r->th[0], "prctl(PR_SET_CHILD_SUBREAPER)", &rv, err, __NR_prctl,
			      PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0, 0);
	for (size_t i = 0; !ret && i < r->nr_threads; i++) {
		const Ferry__Thread *e = r->th[i].img;

		if (!e->has_pdeathsig || !e->pdeathsig)
			continue;
		ret = rst_sys(&r->th[i], "prctl(PR_SET_PDEATHSIG)", &rv, err, __NR_prctl,
			      PR_SET_PDEATHSIG, e->pdeathsig, 0, 0, 0, 0);
		if (ret)
			ferr_wrap(err, "thread %d", r->th[i].tid);
	}
	if (!ret)
		ret = itimers(r, err);
	if (!ret)
		ret = posix_timers(r, err);
	return ret;
}

/* ---- seccomp, last ---------------------------------------------------------- */

/* Where the filter program goes, the scratch pages being gone: the start of
 * a writable private anonymous VMA, its bytes put back afterwards. */
static const Ferry__Vma *borrow_area(struct rst *r, size_t len)
{
	for (size_t i = 0; i < r->img->nr_vmas; i++) {
		const Ferry__Vma *v = r->img->vmas[i];

		if ((v->kind == FERRY__VMA_KIND__VMA_ANON || v->kind == FERRY__VMA_KIND__VMA_HEAP ||
		     v->kind == FERRY__VMA_KIND__VMA_STACK) && (v->flags & MAP_PRIVATE) &&
		    (v->prot & (PROT_READ | PROT_WRITE)) == (PROT_READ | PROT_WRITE) &&
		    v->end - v->start >= len)
			return v;
	}
	return NULL;
}

static bool same_filter(const Ferry__Thread *a, const Ferry__Thread *b, size_t k)
{
	return a->seccomp_flags[k] == b->seccomp_flags[k] &&
	       a->seccomp_filters[k].len == b->seccomp_filters[k].len &&
	       !memcmp(a->seccomp_filters[k].data, b->seccomp_filters[k].data,
		       a->seccomp_filters[k].len);
}

static int install(struct rst_thread *t, uint64_t at, const ProtobufCBinaryData *f,
		   uint32_t flags, struct ferr *err)
{
	struct { uint16_t len; uint16_t pad[3]; uint64_t filter; } prog = {
		(uint16_t)(f->len / 8), { 0 }, at + sizeof(prog)
	};
	long rv;
	int ret;

	ret = inj_write(&t->inj, at, &prog, sizeof(prog), err);
	if (!ret)
		ret = inj_write(&t->inj, at + sizeof(prog), f->data, f->len, err);
	if (!ret)
		ret = rst_sys(t, "seccomp(SECCOMP_SET_MODE_FILTER)", &rv, err, __NR_seccomp,
			      SECCOMP_SET_MODE_FILTER, flags, at, 0, 0, 0);
	if (!ret && rv > 0)
		ret = ferr_new(err, EBUSY, "seccomp filter sync: thread %ld has filters of its own", rv);
	return ret;
}

static int seccomp_threads(struct rst *r, uint64_t at, struct ferr *err)
{
	size_t common = SIZE_MAX;
	int ret = 0;

	/* Filters every thread has, oldest first, are installed once with
	 * TSYNC so that the threads share them, as threads that inherited
	 * them do; the rest each thread installs for itself. */
	for (size_t i = 0; i < r->nr_threads; i++) {
		const Ferry__Thread *e = r->th[i].img, *m = r->th[0].img;
		size_t k = 0;

		while (k < e->n_seccomp_filters && k < m->n_seccomp_filters && same_filter(e, m, k))
			k++;
		if (k < common)
			common = k;
	}
	if (r->nr_threads == 1)
		common = 0;
	for (size_t k = 0; !ret && k < common; k++)
		ret = install(&r->th[0], at, &r->th[0].img->seccomp_filters[k],
			      r->th[0].img->seccomp_flags[k] | SECCOMP_FILTER_FLAG_TSYNC, err);
	for (size_t i = 0; !ret && i < r->nr_threads; i++) {
		const Ferry__Thread *e = r->th[i].img;
		long rv;

		for (size_t k = common; !ret && k < e->n_seccomp_filters; k++)
			ret = install(&r->th[i], at, &e->seccomp_filters[k], e->seccomp_flags[k], err);
		if (!ret && e->seccomp_mode == 1)
			ret = rst_sys(&r->th[i], "seccomp(SECCOMP_SET_MODE_STRICT)", &rv, err,
				      __NR_seccomp, SECCOMP_SET_MODE_STRICT, 0, 0, 0, 0, 0);
		if (ret)
			ferr_wrap(err, "seccomp of thread %d", r->th[i].tid);
	}
	return ret;
}

int rst_pstate_seccomp(struct rst *r, struct ferr *err)
{
	cleanup_free uint8_t *saved = NULL;
	const Ferry__Vma *v;
	size_t len = 0;
	bool any = false;
	struct ferr ignored;
	long rv;
	int ret = 0;

	for (size_t i = 0; !ret && i < r->nr_threads; i++) {
		const Ferry__Thread *e = r->th[i].img;

		if (e->no_new_privs)
			ret = rst_sys(&r->th[i], "prctl(PR_SET_NO_NEW_PRIVS)", &rv, err, __NR_prctl,
				      PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);
		any |= e->seccomp_mode != 0;
		for (size_t k = 0; k < e->n_seccomp_filters; k++)
			if (e->seccomp_filters[k].len > len)
				len = e->seccomp_filters[k].len;
	}
	if (ret || !any)
		return ret;
	len += 16;
	v = borrow_area(r, len);
	if (!v)
		return ferr_new(err, ENOMEM, "no writable private VMA of %zu bytes to pass seccomp "
				"filters through", len);
	saved = malloc(len);
	if (!saved)
		return ferr_sys(err, ENOMEM, "seccomp");
	ret = inj_read(&r->th[0].inj, v->start, saved, len, err);
	if (ret)
		return ret;
	ret = seccomp_threads(r, v->start, err);
	if (inj_write(&r->th[0].inj, v->start, saved, len, ret ? &ignored : err) && !ret)
		ret = -EIO;
	return ret;
}
