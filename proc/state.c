/* Thread and process state of a frozen target. Most of it is read from
 * outside (ptrace regsets, /proc, prlimit, get_robust_list); what only the
 * process itself can tell (sigaltstack, clear_child_tid, signal handlers,
 * brk) is asked by injected syscalls, with a scratch page that is unmapped
 * before the layout is read. */
#include <elf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proc/inject.h"
#include "common/log.h"
#include "proc/state.h"

#define XSAVE_MAX (16u << 10)
#define SIGINFO_SIZE 128
#define PEEK_BATCH 32

static void *xmemdup(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	if (q)
		memcpy(q, p, n);
	return q;
}

static int set_bytes(ProtobufCBinaryData *b, const void *p, size_t n, struct ferr *err)
{
	b->data = xmemdup(p, n);
	b->len = n;
	return b->data ? 0 : ferr_sys(err, ENOMEM, "state");
}

static char *read_link_at(int dirfd, const char *path)
{
	char buf[PATH_MAX];
	ssize_t n = readlinkat(dirfd, path, buf, sizeof(buf) - 1);

	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

Ferry__FileId *state_file_id(int dirfd, const char *path)
{
	Ferry__FileId *id;
	struct stat st;

	if (fstatat(dirfd, path, &st, 0) < 0)
		return NULL;
	id = malloc(sizeof(*id));
	if (!id)
		return NULL;
	ferry__file_id__init(id);
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->has_size = id->has_mtime_ns = id->has_mode = id->has_ctime_ns = true;
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
	id->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000ll + st.st_ctim.tv_nsec;
	id->mode = st.st_mode;
	return id;
}

/* Queued signals of one thread (or the shared queue) as raw siginfo. */
static int peek_siginfo(pid_t tid, bool shared, ProtobufCBinaryData **out, size_t *n,
			struct ferr *err)
{
	uint8_t buf[PEEK_BATCH * SIGINFO_SIZE];

	/* *n counts what is filled in, so a failure leaves a message that
	 * frees completely. */
	*out = NULL;
	*n = 0;
	for (;;) {
		struct __ptrace_peeksiginfo_args a = { .off = *n, .nr = PEEK_BATCH,
						     .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0 };
		long got = ptrace(PTRACE_PEEKSIGINFO, tid, &a, buf);
		ProtobufCBinaryData *t;

		if (got < 0)
			return ferr_sys(err, errno, "PTRACE_PEEKSIGINFO thread %d", tid);
		if (got == 0)
			return 0;
		t = realloc(*out, (*n + (size_t)got) * sizeof(*t));
		if (!t)
			return ferr_sys(err, ENOMEM, "pending signals");
		*out = t;
		for (long i = 0; i < got; i++, (*n)++)
			if (set_bytes(&t[*n], buf + i * SIGINFO_SIZE, SIGINFO_SIZE, err))
				return -ENOMEM;
	}
}

static int thread_from_outside(struct target *t, struct tthread *th, Ferry__Thread *e,
			       struct ferr *err)
{
	uint8_t xsave[XSAVE_MAX];
	struct iovec iov = { xsave, sizeof(xsave) };
	struct __ptrace_rseq_configuration rseq;
	char path[64], comm[64];
	uint64_t mask;
	long head, len;
	int ret;

	e->tid = (uint32_t)th->tid;
	ret = set_bytes(&e->gpregs, &th->regs, sizeof(th->regs), err);
	if (ret)
		return ret;
	if (ptrace(PTRACE_GETREGSET, th->tid, (void *)NT_X86_XSTATE, &iov) == 0) {
		ret = set_bytes(&e->xsave, xsave, iov.iov_len, err);
		e->has_xsave = true;
	} else {
		struct user_fpregs_struct fp;
		if (ptrace(PTRACE_GETFPREGS, th->tid, NULL, &fp) < 0)
			return ferr_sys(err, errno, "read FPU state of thread %d", th->tid);
		ret = set_bytes(&e->fpregs, &fp, sizeof(fp), err);
		e->has_fpregs = true;
	}
	if (ret)
		return ret;
	if (ptrace(PTRACE_GETSIGMASK, th->tid, (void *)sizeof(mask), &mask) < 0)
		return ferr_sys(err, errno, "PTRACE_GETSIGMASK thread %d", th->tid);
	e->has_sigmask = true;
	e->sigmask = mask;
	ret = peek_siginfo(th->tid, false, &e->pending, &e->n_pending, err);
	if (ret)
		return ret;
	/* A signal taken out of the queue while we froze the thread is still
	 * pending as far as the process knows: record it first in line. */
	if (th->resend_sig) {
		ProtobufCBinaryData *p = realloc(e->pending, (e->n_pending + 1) * sizeof(*p));

		if (!p)
			return ferr_sys(err, ENOMEM, "pending signals");
		e->pending = p;
		memmove(p + 1, p, e->n_pending * sizeof(*p));
		e->n_pending++;
		ret = set_bytes(&p[0], th->resend_info, sizeof(th->resend_info), err);
		if (ret)
			return ret;
	}
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, th->tid, (void *)sizeof(rseq), &rseq) ==
	    (long)sizeof(rseq) && rseq.rseq_abi_pointer) {
		e->rseq = malloc(sizeof(*e->rseq));
		if (!e->rseq)
			return ferr_sys(err, ENOMEM, "rseq");
		ferry__rseq__init(e->rseq);
		e->rseq->ptr = rseq.rseq_abi_pointer;
		e->rseq->size = rseq.rseq_abi_size;
		e->rseq->signature = rseq.signature;
	}
	if (syscall(SYS_get_robust_list, th->tid, &head, &len) == 0) {
		e->has_robust_list = e->has_robust_list_len = true;
		e->robust_list = (uint64_t)head;
		e->robust_list_len = (uint64_t)len;
	}
	snprintf(path, sizeof(path), "task/%d/comm", th->tid);
	if (read_small_file_at(t->procfd, path, comm, sizeof(comm)) > 0) {
		comm[strcspn(comm, "\n")] = '\0';
		e->comm = strdup(comm);
	}
	return 0;
}

/* What only the thread can say: its alternate signal stack and the address
 * the kernel clears at its exit. */
static int thread_by_injection(struct inj *in, Ferry__Thread *e, struct ferr *err)
{
	struct { uint64_t sp; int32_t flags; int32_t pad; uint64_t size; } ss;
	uint64_t tidaddr = 0;
	long r;
	int ret;

	ret = inj_syscall(in, __NR_sigaltstack, 0, in->scratch, 0, 0, 0, 0, &r, err);
	if (!ret && r == 0)
		ret = inj_read(in, in->scratch, &ss, sizeof(ss), err);
	if (ret)
		return ret;
	if (r == 0 && !(ss.flags & SS_DISABLE)) {
		e->altstack = malloc(sizeof(*e->altstack));
		if (!e->altstack)
			return ferr_sys(err, ENOMEM, "altstack");
		ferry__altstack__init(e->altstack);
		e->altstack->sp = ss.sp;
		e->altstack->size = ss.size;
		e->altstack->flags = (uint32_t)ss.flags;
	}
	ret = inj_syscall(in, __NR_prctl, PR_GET_TID_ADDRESS, in->scratch, 0, 0, 0, 0, &r, err);
	if (!ret && r == 0)
		ret = inj_read(in, in->scratch, &tidaddr, sizeof(tidaddr), err);
	if (ret)
		return ret;
	if (r == 0) {
		e->has_clear_child_tid = true;
		e->clear_child_tid = tidaddr;
	}
	return 0;
}

static uint64_t status_hex(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	return p ? strtoull(p + strlen(key), NULL, 16) : 0;
}

static void status_ids(const char *status, const char *key, uint32_t **out, size_t *n)
{
	const char *p = strstr(status, key);
	char *end;

	*n = 0;
	*out = NULL;
	if (!p)
		return;
	p += strlen(key);
	for (;;) {
		unsigned long v = strtoul(p, &end, 10);
		uint32_t *t;

		if (end == p)
			break;
		t = realloc(*out, (*n + 1) * sizeof(*t));
		if (!t)
			break;
		*out = t;
		t[(*n)++] = (uint32_t)v;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\n' || !*p)
			break;
	}
}

/* /proc/PID/stat: fields after the ")" that ends comm. */
static int read_stat(struct target *t, Ferry__Process *p, Ferry__MmState *mm, struct ferr *err)
{
	char buf[4096], *s, *close;
	unsigned long long f[53] = { 0 }; /* f[i] is field i, 1-based as in proc(5) */
	int n = 3;

	if (read_small_file_at(t->procfd, "stat", buf, sizeof(buf)) < 0)
		return ferr_sys(err, errno, "read /proc/%d/stat", t->pid);
	s = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (!s || !close)
		return ferr_new(err, EIO, "/proc/%d/stat does not parse", t->pid);
	*close = '\0';
	p->comm = strdup(s + 1);
	s = close + 2;
	/* field 3 is the state letter */
	s = strchr(s, ' ');
	while (s && n < 52) { /* fields 4..52 */
		f[++n] = strtoull(s, &s, 10);
		if (*s != ' ')
			break;
	}
	if (n < 51)
		return ferr_new(err, EIO, "/proc/%d/stat has %d fields, expected 51 or more", t->pid, n);
	p->has_ppid = p->has_pgid = p->has_sid = true;
	p->ppid = (uint32_t)f[4];
	p->pgid = (uint32_t)f[5];
	p->sid = (uint32_t)f[6];
	mm->start_code = f[26];
	mm->end_code = f[27];
	mm->start_stack = f[28];
	mm->start_data = f[45];
	mm->end_data = f[46];
	mm->start_brk = f[47];
	mm->arg_start = f[48];
	mm->arg_end = f[49];
	mm->env_start = f[50];
	mm->env_end = f[51];
	return 0;
}

/* handled: the signals with a handler or ignored (SigCgt|SigIgn), for
 * process_by_injection to ask about. */
/* Limit r as /proc/PID/limits prints it: a header, then one line per
 * resource in order, the name in the first 26 columns, then soft and hard
 * limits as numbers or "unlimited". */
static int limit_from_proc(struct target *t, int r, struct rlimit *rl)
{
	char buf[4096], soft[32], hard[32], *line = buf;

	if (read_small_file_at(t->procfd, "limits", buf, sizeof(buf)) < 0)
		return -1;
	for (int i = -1; i < r; i++) {
		line = strchr(line, '\n');
		if (!line++)
			return errno = EINVAL, -1;
	}
	if (strlen(line) < 26 || sscanf(line + 26, "%31s %31s", soft, hard) != 2)
		return errno = EINVAL, -1;
	rl->rlim_cur = strcmp(soft, "unlimited") ? strtoull(soft, NULL, 10) : RLIM_INFINITY;
	rl->rlim_max = strcmp(hard, "unlimited") ? strtoull(hard, NULL, 10) : RLIM_INFINITY;
	return 0;
}

static int process_from_outside(struct target *t, Ferry__Process *p, uint64_t *handled,
				struct ferr *err)
{
	char status[8192], buf[64];
	uint8_t auxv[4096];
	Ferry__MmState *mm;
	Ferry__Creds *c;
	int ret, n;

	p->pid = (uint32_t)t->pid;
	p->has_nr_threads = true;
	p->nr_threads = (uint32_t)t->nr_th;
	/* Each sub-message is initialised as soon as it is attached, so that
	 * state_free() can free whatever a failure leaves. */
	mm = p->mm = malloc(sizeof(*mm));
	if (!mm)
		return ferr_sys(err, ENOMEM, "process state");
	ferry__mm_state__init(mm);
	c = p->creds = malloc(sizeof(*c));
	if (!c)
		return ferr_sys(err, ENOMEM, "process state");
	ferry__creds__init(c);
	ret = read_stat(t, p, mm, err);
	if (ret)
		return ret;
	n = read_small_file_at(t->procfd, "auxv", (char *)auxv, sizeof(auxv));
	if (n < 0)
		return ferr_sys(err, -n, "read /proc/%d/auxv", t->pid);
	mm->has_auxv = true;
	if (set_bytes(&mm->auxv, auxv, (size_t)n, err))
		return -ENOMEM;
	mm->exe_path = read_link_at(t->procfd, "exe");
	mm->exe_id = state_file_id(t->procfd, "exe");
	p->cwd = read_link_at(t->procfd, "cwd");
	p->root = read_link_at(t->procfd, "root");

	if (read_small_file_at(t->procfd, "status", status, sizeof(status)) < 0)
		return ferr_sys(err, errno, "read /proc/%d/status", t->pid);
	status_ids(status, "\nUid:", &c->uid, &c->n_uid);
	status_ids(status, "\nGid:", &c->gid, &c->n_gid);
	status_ids(status, "\nGroups:", &c->groups, &c->n_groups);
	c->has_cap_inh = c->has_cap_prm = c->has_cap_eff = c->has_cap_bnd = c->has_cap_amb = true;
	c->cap_inh = status_hex(status, "\nCapInh:");
	c->cap_prm = status_hex(status, "\nCapPrm:");
	c->cap_eff = status_hex(status, "\nCapEff:");
	c->cap_bnd = status_hex(status, "\nCapBnd:");
	c->cap_amb = status_hex(status, "\nCapAmb:");
	*handled = status_hex(status, "\nSigCgt:") | status_hex(status, "\nSigIgn:");
	if (strstr(status, "\nUmask:")) {
		p->has_umask = true;
		p->umask = (uint32_t)strtoul(strstr(status, "\nUmask:") + 7, NULL, 8);
	}
	if (read_small_file_at(t->procfd, "personality", buf, sizeof(buf)) > 0) {
		p->has_personality = true;
		p->personality = (uint32_t)strtoul(buf, NULL, 16);
	}
	p->rlimits = calloc(RLIMIT_NLIMITS, sizeof(*p->rlimits));
	if (!p->rlimits)
		return ferr_sys(err, ENOMEM, "rlimits");
	for (int r = 0; r < RLIMIT_NLIMITS; r++) {
		struct rlimit rl;
		Ferry__Rlimit *e;

		if (prlimit(t->pid, (__rlimit_resource_t)r, NULL, &rl) < 0) {
			/* Another user's process needs CAP_SYS_RESOURCE for
			 * prlimit; /proc/PID/limits shows the same to root. */
			if (errno != EPERM || limit_from_proc(t, r, &rl) < 0)
				return ferr_sys(err, errno, "resource limit %d of process %d", r, t->pid);
		}
		e = malloc(sizeof(*e));
		if (!e)
			return ferr_sys(err, ENOMEM, "rlimits");
		ferry__rlimit__init(e);
		e->resource = (uint32_t)r;
		e->cur = rl.rlim_cur;
		e->max = rl.rlim_max;
		p->rlimits[p->n_rlimits++] = e;
	}
	return peek_siginfo(t->pid, true, &p->shared_pending, &p->n_shared_pending, err);
}

/* Handlers of every caught or ignored signal, and the program break. */
static int process_by_injection(struct target *t, struct inj *in, Ferry__Process *p,
				uint64_t handled, struct ferr *err)
{
	long r;
	int ret;

	p->sigactions = calloc(64, sizeof(*p->sigactions));
	if (!p->sigactions)
		return ferr_sys(err, ENOMEM, "sigactions");
	for (int sig = 1; sig <= 64; sig++) {
		struct { uint64_t handler, flags, restorer, mask; } ka;
		Ferry__Sigaction *s;

		if (!(handled & (1ull << (sig - 1))) || sig == SIGKILL || sig == SIGSTOP)
			continue;
		ret = inj_syscall(in, __NR_rt_sigaction, (uint64_t)sig, 0, in->scratch, 8, 0, 0, &r, err);
		if (!ret && r)
			ret = ferr_sys(err, (int)-r, "rt_sigaction(%d) in process %d", sig, t->pid);
		if (!ret)
			ret = inj_read(in, in->scratch, &ka, sizeof(ka), err);
		if (ret)
			return ret;
		s = malloc(sizeof(*s));
		if (!s)
			return ferr_sys(err, ENOMEM, "sigactions");
		ferry__sigaction__init(s);
		s->signo = (uint32_t)sig;
		s->handler = ka.handler;
		s->flags = ka.flags;
		s->has_restorer = true;
		s->restorer = ka.restorer;
		s->mask = ka.mask;
		p->sigactions[p->n_sigactions++] = s;
	}
	ret = inj_syscall(in, __NR_brk, 0, 0, 0, 0, 0, 0, &r, err);
	if (ret)
		return ret;
	p->mm->brk = (uint64_t)r;
	return 0;
}

int state_collect(struct target *t, struct dump_state *out, struct ferr *err)
{
	cleanup_val(dump_state) struct dump_state st = { 0 };
	struct ferr ignored;
	struct inj in;
	uint64_t ip, handled = 0;
	int ret, ret2;

	memset(out, 0, sizeof(*out));
	st.proc = malloc(sizeof(*st.proc));
	if (!st.proc)
		return ferr_sys(err, ENOMEM, "state");
	ferry__process__init(st.proc);
	st.threads = calloc(t->nr_th, sizeof(*st.threads));
	if (!st.threads)
		return ferr_sys(err, ENOMEM, "state");
	ret = process_from_outside(t, st.proc, &handled, err);
	for (size_t i = 0; !ret && i < t->nr_th; i++) {
		st.threads[i] = malloc(sizeof(*st.threads[i]));
		if (!st.threads[i])
			return ferr_sys(err, ENOMEM, "state");
		ferry__thread__init(st.threads[i]);
		st.nr_threads++;
		ret = thread_from_outside(t, &t->th[i], st.threads[i], err);
	}
	if (!ret)
		ret = pstate_collect_outside(t, st.proc, st.threads, &st.madv, err);
	if (ret)
		return ret;

	ret = inj_find_syscall(t->pid, t->procfd, &ip, err);
	if (ret)
		return ret;
	/* The main thread (first seized) maps the scratch page that every
	 * thread's injected calls write into. */
	inj_init(&in, t->pid, t->th[0].tid, &t->th[0].regs, ip);
	ret = inj_scratch_map(&in, err);
	if (ret)
		return ferr_wrap(err, "inject into process %d", t->pid);
	ret = process_by_injection(t, &in, st.proc, handled, err);
	for (size_t i = 0; !ret && i < t->nr_th; i++) {
		struct inj ti;

		inj_init(&ti, t->pid, t->th[i].tid, &t->th[i].regs, ip);
		ti.scratch = in.scratch;
		ret = thread_by_injection(&ti, st.threads[i], err);
		if (ti.resend_sig && !t->th[i].resend_sig)
			t->th[i].resend_sig = ti.resend_sig;
	}
	if (!ret)
		ret = pstate_collect_inject(t, &in, ip, st.proc, st.threads, err);
	/* Leave nothing behind, even after a failure; the first error is the
	 * one reported. */
	ret2 = inj_scratch_unmap(&in, ret ? &ignored : err);
	if (in.resend_sig && !t->th[0].resend_sig)
		t->th[0].resend_sig = in.resend_sig;
	if (ret)
		return ferr_wrap(err, "inject into process %d", t->pid);
	if (ret2)
		return ret2;
	*out = steal_val(st);
	return 0;
}

void state_free(struct dump_state *st)
{
	/* A zeroed state has nothing; a freed one is zeroed. */
	if (st->proc)
		protobuf_c_message_free_unpacked(&st->proc->base, NULL);
	for (size_t i = 0; i < st->nr_threads; i++)
		protobuf_c_message_free_unpacked(&st->threads[i]->base, NULL);
	free(st->threads);
	madv_list_free(&st->madv);
	memset(st, 0, sizeof(*st));
}
