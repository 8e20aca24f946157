/* Process and mapping state of a frozen target that restore/pstate.c sets
 * again: madvise flags (smaps VmFlags: the only interface that shows them;
 * PROCMAP_QUERY's vma_flags has r/w/x/shared alone), no_new_privs and
 * seccomp (status, PTRACE_SECCOMP_GET_FILTER), POSIX timers
 * (/proc/PID/timers) from outside; what only the process can say (THP
 * disable, subreaper, pdeathsig, timer times) by injected syscalls. */
#include <inttypes.h>
#include <linux/filter.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "common/log.h"
#include "proc/pstate.h"

#define FILTER_INSNS_MAX 4096   /* BPF_MAXINSNS */
#define FILTERS_MAX 512         /* 32 KiB of instructions each at most */
#define TIMERS_MAX 4096

static const struct {
	const char name[3];
	int advice;
} madv_bits[8] = {
	{ "sr", MADV_SEQUENTIAL }, { "rr", MADV_RANDOM },   { "dc", MADV_DONTFORK },
	{ "dd", MADV_DONTDUMP },   { "hg", MADV_HUGEPAGE }, { "nh", MADV_NOHUGEPAGE },
	{ "wf", MADV_WIPEONFORK }, { "mg", MADV_MERGEABLE },
};

int pstate_madv_advice(unsigned bit)
{
	return bit < 8 ? madv_bits[bit].advice : -1;
}

const char *pstate_madv_name(unsigned bit)
{
	return bit < 8 ? madv_bits[bit].name : "?";
}

void madv_list_free(struct madv_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

struct madv_key {
	const struct madv_list *l;
	uint64_t start;
};

static bool madv_below(const void *ctx, size_t i)
{
	const struct madv_key *k = ctx;

	return k->l->v[i].start < k->start;
}

uint32_t madv_list_find(const struct madv_list *l, uint64_t start)
{
	struct madv_key k = { l, start };
	size_t i = bsearch_first(l->n, madv_below, &k);

	return i < l->n && l->v[i].start == start ? l->v[i].madv : 0;
}

static uint32_t vmflags_bits(const char *s)
{
	uint32_t m = 0;

	/* Two-letter names separated by spaces. */
	for (; *s; s++) {
		if (s[0] == ' ' || s[0] == '\n' || !s[1])
			continue;
		for (unsigned b = 0; b < 8; b++)
			if (s[0] == madv_bits[b].name[0] && s[1] == madv_bits[b].name[1] &&
			    (s[2] == ' ' || s[2] == '\n' || !s[2]))
				m |= 1u << b;
		s++;
	}
	return m;
}

int pstate_parse_smaps(FILE *f, struct madv_list *l, struct ferr *err)
{
	cleanup_free char *line = NULL;
	size_t cap = 0;
	bool in_vma = false;

	memset(l, 0, sizeof(*l));
	while (getline(&line, &cap, f) > 0) {
		unsigned long long s, e;
		int n = 0;

		if (((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) &&
		    sscanf(line, "%llx-%llx %n", &s, &e, &n) == 2 && n) {
			if (l->n == l->cap) {
				size_t nc = l->cap ? l->cap * 2 : 64;
				struct vma_madv *nv = realloc(l->v, nc * sizeof(*nv));

				if (!nv)
					return ferr_sys(err, ENOMEM, "smaps");
				l->v = nv;
				l->cap = nc;
			}
			l->v[l->n++] = (struct vma_madv){ s, e, 0 };
			in_vma = true;
		} else if (in_vma && strncmp(line, "VmFlags:", 8) == 0) {
			l->v[l->n - 1].madv = vmflags_bits(line + 8);
			in_vma = false;
		}
	}
	if (ferror(f))
		return ferr_sys(err, EIO, "read smaps");
	return 0;
}

/* ---- from outside ------------------------------------------------------- */

static const char *status_field(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	return p ? p + strlen(key) : NULL;
}

static int thread_seccomp(pid_t tid, Ferry__Thread *e, struct ferr *err)
{
	size_t n = 0;

	/* Index 0 is the newest filter: count first, then store oldest first. */
	for (;; n++) {
		long got = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)n, NULL);

		if (got < 0 && errno == ENOENT)
			break;
		if (got < 0)
			return ferr_sys(err, errno, "PTRACE_SECCOMP_GET_FILTER thread %d%s", tid,
					errno == EINVAL ? " (is the kernel built without "
					"CONFIG_CHECKPOINT_RESTORE?)" : "");
		if (n >= FILTERS_MAX)
			return ferr_new(err, E2BIG, "thread %d has more than %d seccomp filters", tid,
					FILTERS_MAX);
	}
	if (!n)
		return 0;
	e->seccomp_filters = calloc(n, sizeof(*e->seccomp_filters));
	e->seccomp_flags = calloc(n, sizeof(*e->seccomp_flags));
	if (!e->seccomp_filters || !e->seccomp_flags)
		return ferr_sys(err, ENOMEM, "seccomp filters");
	for (size_t i = 0; i < n; i++) {
		struct sock_filter buf[FILTER_INSNS_MAX];
		struct __ptrace_seccomp_metadata md = { .filter_off = n - 1 - i };
		long got = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)(n - 1 - i), buf);
		ProtobufCBinaryData *b = &e->seccomp_filters[i];

		if (got <= 0 || got > FILTER_INSNS_MAX)
			return ferr_sys(err, got < 0 ? errno : EIO, "seccomp filter %zu of thread %d",
					n - 1 - i, tid);
		b->len = (size_t)got * sizeof(buf[0]);
		b->data = malloc(b->len);
		if (!b->data)
			return ferr_sys(err, ENOMEM, "seccomp filters");
		memcpy(b->data, buf, b->len);
		e->n_seccomp_filters++;
		if (ptrace(PTRACE_SECCOMP_GET_METADATA, tid, (void *)sizeof(md), &md) < 0)
			return ferr_sys(err, errno, "PTRACE_SECCOMP_GET_METADATA thread %d", tid);
		e->seccomp_flags[e->n_seccomp_flags++] = (uint32_t)md.flags;
	}
	return 0;
}

static int threads_outside(struct target *t, Ferry__Thread **th, struct ferr *err)
{
	for (size_t i = 0; i < t->nr_th; i++) {
		char path[64], status[8192];
		const char *v;
		int ret;

		snprintf(path, sizeof(path), "task/%d/status", t->th[i].tid);
		if (read_small_file_at(t->procfd, path, status, sizeof(status)) < 0)
			return ferr_sys(err, errno, "read /proc/%d/%s", t->pid, path);
		v = status_field(status, "\nNoNewPrivs:");
		th[i]->has_no_new_privs = v != NULL;
		th[i]->no_new_privs = v && strtoul(v, NULL, 10) != 0;
		v = status_field(status, "\nSeccomp:");
		th[i]->has_seccomp_mode = true;
		th[i]->seccomp_mode = v ? (uint32_t)strtoul(v, NULL, 10) : 0;
		if (th[i]->seccomp_mode == 2) {
			ret = thread_seccomp(t->th[i].tid, th[i], err);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static uint32_t notify_of(const char *how, const char *who)
{
	uint32_t n = strcmp(how, "none") == 0 ? SIGEV_NONE :
		     strcmp(how, "thread") == 0 ? SIGEV_THREAD : SIGEV_SIGNAL;

	return strcmp(who, "tid") == 0 ? n | SIGEV_THREAD_ID : n;
}

/* /proc/PID/timers: per timer "ID:", "signal: SIGNO/VALUE", "notify:
 * HOW/pid.N|tid.N", "ClockID:"; newest first. */
static int timers_outside(struct target *t, Ferry__Process *p, struct ferr *err)
{
	cleanup_fclose FILE *f = fopen_at(t->procfd, "timers");
	cleanup_free char *line = NULL;
	Ferry__PosixTimer *cur = NULL;
	size_t cap = 0;

	if (!f)
		return ferr_sys(err, errno, "open /proc/%d/timers", t->pid);
	while (getline(&line, &cap, f) > 0) {
		char how[16], who[8];
		unsigned long long val;
		int a, b;

		if (sscanf(line, "ID: %d", &a) == 1) {
			Ferry__PosixTimer **nt;

			if (p->n_posix_timers >= TIMERS_MAX)
				return ferr_new(err, E2BIG, "process %d has more than %d POSIX timers",
						t->pid, TIMERS_MAX);
			nt = realloc(p->posix_timers, (p->n_posix_timers + 1) * sizeof(*nt));
			if (!nt)
				return ferr_sys(err, ENOMEM, "timers");
			p->posix_timers = nt;
			cur = malloc(sizeof(*cur));
			if (!cur)
				return ferr_sys(err, ENOMEM, "timers");
			ferry__posix_timer__init(cur);
			cur->id = a;
			nt[p->n_posix_timers++] = cur;
		} else if (cur && sscanf(line, "signal: %d/%llx", &a, &val) == 2) {
			cur->has_signo = cur->has_sigval = true;
			cur->signo = (uint32_t)a;
			cur->sigval = val;
		} else if (cur && sscanf(line, "notify: %15[a-z]/%7[a-z].%d", how, who, &b) == 3) {
			cur->notify = notify_of(how, who);
			if (cur->notify & SIGEV_THREAD_ID) {
				cur->has_tid = true;
				cur->tid = (uint32_t)b;
			}
		} else if (cur && sscanf(line, "ClockID: %d", &a) == 1) {
			cur->clock = a;
		}
	}
	/* Ascending, the order restore creates them in. */
	for (size_t i = 0, j = p->n_posix_timers; j-- > i + 1; i++) {
		Ferry__PosixTimer *x = p->posix_timers[i];

		p->posix_timers[i] = p->posix_timers[j];
		p->posix_timers[j] = x;
	}
	for (size_t i = 1; i < p->n_posix_timers; i++)
		if (p->posix_timers[i]->id <= p->posix_timers[i - 1]->id)
			return ferr_new(err, EIO, "/proc/%d/timers not in descending ID order", t->pid);
	return 0;
}

int pstate_collect_outside(struct target *t, Ferry__Process *p, Ferry__Thread **th,
			   struct madv_list *madv, struct ferr *err)
{
	cleanup_fclose FILE *f = fopen_at(t->procfd, "smaps");
	uint64_t t0 = now_ns();
	int ret;

	if (!f)
		return ferr_sys(err, errno, "open /proc/%d/smaps", t->pid);
	ret = pstate_parse_smaps(f, madv, err);
	if (ret)
		return ferr_wrap(err, "/proc/%d/smaps", t->pid);
	pr_debug("smaps of %zu VMAs read in %.1f ms", madv->n, (now_ns() - t0) / 1e6);
	ret = threads_outside(t, th, err);
	if (!ret)
		ret = timers_outside(t, p, err);
	return ret;
}

/* ---- by injection ------------------------------------------------------- */

static uint64_t tv_us(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static int itimers(struct target *t, struct inj *in, Ferry__Process *p, struct ferr *err)
{
	p->itimers = calloc(3, sizeof(*p->itimers));
	if (!p->itimers)
		return ferr_sys(err, ENOMEM, "itimers");
	for (int which = 0; which < 3; which++) {
		struct itimerval it;
		Ferry__Itimer *e;
		long r;
		int ret;

		ret = inj_syscall(in, __NR_getitimer, (uint64_t)which, in->scratch, 0, 0, 0, 0, &r, err);
		if (!ret && r)
			ret = ferr_sys(err, (int)-r, "getitimer(%d) in process %d", which, t->pid);
		if (!ret)
			ret = inj_read(in, in->scratch, &it, sizeof(it), err);
		if (ret)
			return ret;
		if (!timerisset(&it.it_value))
			continue;
		e = malloc(sizeof(*e));
		if (!e)
			return ferr_sys(err, ENOMEM, "itimers");
		ferry__itimer__init(e);
		e->which = (uint32_t)which;
		e->value_us = tv_us(&it.it_value);
		e->interval_us = tv_us(&it.it_interval);
		p->itimers[p->n_itimers++] = e;
	}
	return 0;
}

static int timer_times(struct target *t, struct inj *in, Ferry__Process *p, struct ferr *err)
{
	for (size_t i = 0; i < p->n_posix_timers; i++) {
		Ferry__PosixTimer *e = p->posix_timers[i];
		struct itimerspec its;
		long r;
		int ret;

		ret = inj_syscall(in, __NR_timer_gettime, (uint64_t)e->id, in->scratch, 0, 0, 0, 0, &r,
				  err);
		if (!ret && r)
			ret = ferr_sys(err, (int)-r, "timer_gettime(%d) in process %d", e->id, t->pid);
		if (!ret)
			ret = inj_read(in, in->scratch, &its, sizeof(its), err);
		if (ret)
			return ret;
		e->value_ns = ts_ns(&its.it_value);
		e->interval_ns = ts_ns(&its.it_interval);
	}
	return 0;
}

/* A prctl that writes an int through its second argument. */
static int prctl_int(struct inj *in, int op, const char *what, uint32_t *out, struct ferr *err)
{
	int v = 0;
	long r;
	int ret = inj_syscall(in, __NR_prctl, (uint64_t)op, in->scratch, 0, 0, 0, 0, &r, err);

	if (!ret && r)
		ret = ferr_sys(err, (int)-r, "%s in thread %d", what, in->tid);
	if (!ret)
		ret = inj_read(in, in->scratch, &v, sizeof(v), err);
	*out = (uint32_t)v;
	return ret;
}

int pstate_collect_inject(struct target *t, struct inj *in, uint64_t syscall_ip,
			  Ferry__Process *p, Ferry__Thread **th, struct ferr *err)
{
	uint32_t v;
	long r;
	int ret;

	ret = inj_syscall(in, __NR_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0, 0, &r, err);
	if (!ret && r < 0)
		ret = ferr_sys(err, (int)-r, "PR_GET_THP_DISABLE in process %d", t->pid);
	if (ret)
		return ret;
	p->has_thp_disable = true;
	p->thp_disable = (uint32_t)r;
	ret = prctl_int(in, PR_GET_CHILD_SUBREAPER, "PR_GET_CHILD_SUBREAPER", &v, err);
	if (ret)
		return ret;
	p->has_child_subreaper = true;
	p->child_subreaper = v != 0;
	ret = itimers(t, in, p, err);
	if (!ret)
		ret = timer_times(t, in, p, err);
	for (size_t i = 0; !ret && i < t->nr_th; i++) {
		struct inj ti;

		inj_init(&ti, t->pid, t->th[i].tid, &t->th[i].regs, syscall_ip);
		ti.scratch = in->scratch;
		ti.scratch_size = in->scratch_size;
		ret = prctl_int(&ti, PR_GET_PDEATHSIG, "PR_GET_PDEATHSIG", &v, err);
		if (ti.resend_sig && !t->th[i].resend_sig)
			t->th[i].resend_sig = ti.resend_sig;
		th[i]->has_pdeathsig = true;
		th[i]->pdeathsig = v;
	}
	return ret;
}
