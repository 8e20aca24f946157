/* A workload that sets process and mapping state beyond memory and
 * registers, and checks from inside that it is all still there: the test of
 * restore/pstate.c.
 *
 *   madvise   one mapping per VmFlag madvise sets (sr rr dc dd hg nh wf mg)
 *   prctl     THP disabled, child subreaper, no_new_privs, pdeathsig (a
 *             different one in each thread), names of both threads,
 *             personality ADDR_NO_RANDOMIZE
 *   seccomp   a filter both threads share (getppid fails with ENOMSG), one
 *             more in the worker only (getpgrp fails with ENOLINK)
 *   timers    ITIMER_REAL/VIRTUAL/PROF armed far ahead; POSIX timers 1, 4
 *             and 6 (0, 2, 3 and 5 deleted): a signal with a value, one to
 *             the worker thread, one SIGEV_NONE disarmed
 *
 * On SIGUSR1 the main thread checks everything (the worker its own part)
 * and writes "ok" or "bad WHAT" to CTL.check.
 *
 * usage: pstate CTL [--orphan-timer | --seccomp-no-nnp]
 *   --orphan-timer    also a POSIX timer that signals a thread which exited
 *   --seccomp-no-nnp  the filters installed without no_new_privs, then
 *                     CAP_SYS_ADMIN dropped (run as root)
 * CTL.ready gets the PID once everything is set. */
#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NPAGES 4
#define MAIN_PDEATHSIG SIGWINCH
#define WORKER_PDEATHSIG SIGURG

static const struct {
	const char *flag;
	int advice;
} advs[] = {
	{ "sr", MADV_SEQUENTIAL }, { "rr", MADV_RANDOM },   { "dc", MADV_DONTFORK },
	{ "dd", MADV_DONTDUMP },   { "hg", MADV_HUGEPAGE }, { "nh", MADV_NOHUGEPAGE },
	{ "wf", MADV_WIPEONFORK }, { "mg", MADV_MERGEABLE },
};
#define NADV (sizeof(advs) / sizeof(advs[0]))

static char *maps[NADV];
static const char *ctl;
static volatile sig_atomic_t want_check;
static _Atomic int worker_req, worker_done;
static char worker_msg[256];
static pid_t worker_tid_now;
static const int timer_ids[3] = { 1, 4, 6 };
static const long itimer_s[3] = { 1000, 2000, 3000 };
static char bad[512];

static void die(const char *what)
{
	fprintf(stderr, "pstate: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void badf(const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(bad);

	if (n >= sizeof(bad) - 2)
		return;
	if (n)
		bad[n++] = ';';
	va_start(ap, fmt);
	vsnprintf(bad + n, sizeof(bad) - n, fmt, ap);
	va_end(ap);
}

static void on_usr1(int s)
{
	(void)s;
	want_check = 1;
}

static void on_any(int s)
{
	(void)s;
}

/* One filter: syscall nr fails with errno e, everything else is allowed. */
static void filter(int nr, int e, unsigned flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)e),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = { sizeof(f) / sizeof(f[0]), f };

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p))
		die("seccomp");
}

static void check_name(pid_t tid, const char *want, char *msg, size_t len)
{
	char path[64], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
	if (strcmp(buf, want))
		snprintf(msg + strlen(msg), len - strlen(msg), " name %s not %s", buf, want);
}

/* The worker checks what is its own: pdeathsig, its filter, its name. */
static void *worker(void *arg)
{
	int sig = 0;

	(void)arg;
	prctl(PR_SET_NAME, "pst-worker");
	prctl(PR_SET_PDEATHSIG, WORKER_PDEATHSIG);
	filter(SYS_getpgrp, ENOLINK, 0);
	for (;;) {
		while (!atomic_load(&worker_req))
			usleep(10000);
		atomic_store(&worker_req, 0);
		worker_msg[0] = 0;
		worker_tid_now = (pid_t)syscall(SYS_gettid);
		if (prctl(PR_GET_PDEATHSIG, &sig) || sig != WORKER_PDEATHSIG)
			snprintf(worker_msg, sizeof(worker_msg), " worker pdeathsig %d", sig);
		errno = 0;
		if (syscall(SYS_getpgrp) != -1 || errno != ENOLINK)
			snprintf(worker_msg + strlen(worker_msg), sizeof(worker_msg) - strlen(worker_msg),
				 " worker's own filter gone (getpgrp errno %d)", errno);
		errno = 0;
		if (syscall(SYS_getppid) != -1 || errno != ENOMSG)
			snprintf(worker_msg + strlen(worker_msg), sizeof(worker_msg) - strlen(worker_msg),
				 " shared filter gone in the worker (errno %d)", errno);
		check_name(worker_tid_now, "pst-worker", worker_msg, sizeof(worker_msg));
		atomic_store(&worker_done, 1);
	}
	return NULL;
}

static _Atomic pid_t short_tid;
static _Atomic int short_go;

/* Lives until a timer that signals it exists. */
static void *short_lived(void *arg)
{
	(void)arg;
	atomic_store(&short_tid, (pid_t)syscall(SYS_gettid));
	while (!atomic_load(&short_go))
		usleep(1000);
	return NULL;
}

static void check_vmflags(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int cur = -1;

	if (!f) {
		badf("smaps: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			cur = -1;
			for (size_t i = 0; i < NADV; i++)
				if ((unsigned long)maps[i] == s)
					cur = (int)i;
		} else if (cur >= 0 && !strncmp(line, "VmFlags:", 8)) {
			char want[8];

			snprintf(want, sizeof(want), " %s", advs[cur].flag);
			if (!strstr(line + 8, want))
				badf("VmFlag %s missing at %p", advs[cur].flag, maps[cur]);
			cur = -1;
		}
	}
	fclose(f);
}

static void check_timers(void)
{
	struct itimerval it;
	struct itimerspec ts;
	char line[128], want[64];
	FILE *f;
	int found = 0;

	for (int w = 0; w < 3; w++) {
		if (getitimer(w, &it))
			badf("getitimer %d: %s", w, strerror(errno));
		else if (!timerisset(&it.it_value) || it.it_value.tv_sec > itimer_s[w] ||
			 it.it_interval.tv_sec != itimer_s[w] / 2)
			badf("itimer %d %ld.%06ld/%ld", w, (long)it.it_value.tv_sec,
			     (long)it.it_value.tv_usec, (long)it.it_interval.tv_sec);
	}
	for (int i = 0; i < 3; i++) {
		if (syscall(SYS_timer_gettime, timer_ids[i], &ts))
			badf("timer %d: %s", timer_ids[i], strerror(errno));
		else if (i < 2 && (!(ts.it_value.tv_sec || ts.it_value.tv_nsec) ||
				   ts.it_value.tv_sec > 1000 * (i + 1) ||
				   ts.it_interval.tv_sec != 100 * (i + 1)))
			badf("timer %d %ld/%ld", timer_ids[i], (long)ts.it_value.tv_sec,
			     (long)ts.it_interval.tv_sec);
		else if (i == 2 && (ts.it_value.tv_sec || ts.it_value.tv_nsec))
			badf("timer %d armed", timer_ids[i]);
	}
	for (int id = 0; id <= 6; id++)
		if (id != 1 && id != 4 && id != 6 && syscall(SYS_timer_gettime, id, &ts) == 0)
			badf("timer %d exists", id);
	/* How each notifies, as the kernel shows it. */
	f = fopen("/proc/self/timers", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "signal: 35/0000000000001234") ||
		    strstr(line, "signal: 36/0000000000005678"))
			found++;
		snprintf(want, sizeof(want), "notify: signal/tid.%d", worker_tid_now);
		if (strstr(line, want))
			found++;
		if (strstr(line, "notify: none/pid."))
			found++;
	}
	if (f)
		fclose(f);
	if (found != 4)
		badf("/proc/self/timers: %d of 4 lines as set", found);
}

static void check(void)
{
	char path[256];
	int v = 0;
	FILE *f;

	bad[0] = 0;
	atomic_store(&worker_done, 0);
	atomic_store(&worker_req, 1);
	check_vmflags();
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
		badf("THP disable %d", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	if (prctl(PR_GET_CHILD_SUBREAPER, &v) || v != 1)
		badf("subreaper %d", v);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		badf("no_new_privs");
	if (prctl(PR_GET_PDEATHSIG, &v) || v != MAIN_PDEATHSIG)
		badf("pdeathsig %d", v);
	if (personality(0xffffffff) != ADDR_NO_RANDOMIZE)
		badf("personality 0x%x", personality(0xffffffff));
	errno = 0;
	if (syscall(SYS_getppid) != -1 || errno != ENOMSG)
		badf("shared filter gone (getppid errno %d)", errno);
	errno = 0;
	if (syscall(SYS_getpgrp) == -1)
		badf("the worker's filter acts in the main thread");
	for (int i = 0; i < 500 && !atomic_load(&worker_done); i++)
		usleep(10000);
	if (!atomic_load(&worker_done))
		badf("the worker did not answer");
	else if (worker_msg[0])
		badf("%s", worker_msg + 1);
	{
		char msg[128] = "";

		check_name(getpid(), "pst-main", msg, sizeof(msg));
		if (msg[0])
			badf("main%s", msg);
	}
	check_timers();
	snprintf(path, sizeof(path), "%s.check", ctl);
	f = fopen(path, "w");
	if (!f)
		die(path);
	fprintf(f, "%s%s\n", bad[0] ? "bad " : "ok", bad);
	fclose(f);
}

int main(int argc, char **argv)
{
	sigset_t usr1, waitmask;
	bool orphan = argc > 2 && !strcmp(argv[2], "--orphan-timer");
	bool no_nnp = argc > 2 && !strcmp(argv[2], "--seccomp-no-nnp");
	struct sigaction sa = { .sa_handler = on_usr1 };
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	pthread_t th;
	char path[256];
	FILE *f;

	if (argc < 2)
		return fprintf(stderr, "usage: pstate CTL [--orphan-timer|--seccomp-no-nnp]\n"), 2;
	ctl = argv[1];
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_any;
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGVTALRM, &sa, NULL);
	sigaction(SIGPROF, &sa, NULL);
	sigaction(35, &sa, NULL);
	sigaction(36, &sa, NULL);

	for (size_t i = 0; i < NADV; i++) {
		maps[i] = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (maps[i] == MAP_FAILED)
			die("mmap");
		memset(maps[i], (int)i + 1, NPAGES * ps);
		if (madvise(maps[i], NPAGES * ps, advs[i].advice))
			die(advs[i].flag);
	}
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) || prctl(PR_SET_CHILD_SUBREAPER, 1) ||
	    prctl(PR_SET_PDEATHSIG, MAIN_PDEATHSIG) || prctl(PR_SET_NAME, "pst-main"))
		die("prctl");
	if (personality(ADDR_NO_RANDOMIZE) < 0)
		die("personality");

	if (!no_nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		die("no_new_privs");
	filter(SYS_getppid, ENOMSG, 0);
	if (pthread_create(&th, NULL, worker, NULL))
		die("pthread_create");
	/* The worker's TID, for the timer that signals it. */
	atomic_store(&worker_req, 1);
	while (!atomic_load(&worker_done))
		usleep(1000);

	/* Timers 0..6 in order, then 0, 2, 3, 5 deleted: IDs with gaps. */
	for (int id = 0; id <= 6; id++) {
		struct sigevent ev = { .sigev_notify = SIGEV_NONE };
		clockid_t clk = CLOCK_MONOTONIC;
		struct itimerspec its = { { 0, 0 }, { 0, 0 } };
		int got = -1;

		if (id == 1) {
			ev.sigev_notify = SIGEV_SIGNAL;
			ev.sigev_signo = 35;
			ev.sigev_value.sival_ptr = (void *)0x1234;
			its = (struct itimerspec){ { 100, 0 }, { 1000, 0 } };
		} else if (id == 4) {
			ev.sigev_notify = SIGEV_THREAD_ID;
			ev.sigev_signo = 36;
			ev.sigev_value.sival_ptr = (void *)0x5678;
			ev._sigev_un._tid = worker_tid_now;
			clk = CLOCK_REALTIME;
			its = (struct itimerspec){ { 200, 0 }, { 2000, 0 } };
		} else if (id == 6) {
			clk = CLOCK_BOOTTIME;
		}
		if (syscall(SYS_timer_create, clk, &ev, &got))
			die("timer_create");
		if (got != id)
			return fprintf(stderr, "pstate: timer ID %d, expected %d\n", got, id), 2;
		if (id == 1 || id == 4 || id == 6) {
			if (syscall(SYS_timer_settime, id, 0, &its, NULL))
				die("timer_settime");
		} else if (syscall(SYS_timer_delete, id)) {
			die("timer_delete");
		}
	}
	for (int i = 0; i < 3; i++) {
		struct itimerval it = { { itimer_s[i] / 2, 0 }, { itimer_s[i], 0 } };

		if (setitimer(i, &it, NULL))
			die("setitimer");
	}
	if (orphan) {
		struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = 36 };
		pthread_t s;
		int id;

		if (pthread_create(&s, NULL, short_lived, NULL))
			die("pthread_create");
		while (!atomic_load(&short_tid))
			usleep(1000);
		ev._sigev_un._tid = atomic_load(&short_tid);
		if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id))
			die("timer_create for a short-lived thread");
		atomic_store(&short_go, 1);
		pthread_join(s, NULL);
	}
	if (no_nnp) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];

		if (syscall(SYS_capget, &h, d))
			die("capget");
		d[0].effective &= ~(1u << CAP_SYS_ADMIN);
		d[0].permitted &= ~(1u << CAP_SYS_ADMIN);
		if (syscall(SYS_capset, &h, d))
			die("capset");
	}
	snprintf(path, sizeof(path), "%s.ready", ctl);
	f = fopen(path, "w");
	if (!f)
		die(path);
	fprintf(f, "%d\n", getpid());
	fclose(f);
	/* SIGUSR1 blocked but while waiting for it, so that one that comes as
	 * the restored process restarts its wait is not lost (pause() would). */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &waitmask);
	sigdelset(&waitmask, SIGUSR1);
	for (;;) {
		sigsuspend(&waitmask);
		if (want_check) {
			want_check = 0;
			check();
		}
	}
}
