/* Throttling a process for auto-converge (see throttle.h). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "dump/throttle.h"

#define DUTY_PERIOD_NS 20000000ull
#define CPU_MAX_PERIOD 100000      /* microseconds, cgroup v2's default */

void throttle_init(struct throttle *th, pid_t pid, int pidfd)
{
	memset(th, 0, sizeof(*th));
	th->pid = pid;
	th->pidfd = pidfd;
	th->ctl = -1;
}

/* Where cgroup v2 is mounted (/sys/fs/cgroup, or .../unified on a hybrid
 * v1+v2 system), from our mountinfo. */
static bool cgroup2_mount(char *out, size_t len)
{
	char line[PATH_MAX + 512];
	cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
	bool ok = false;

	if (!f)
		return false;
	while (!ok && fgets(line, sizeof(line), f)) {
		char *dash = strstr(line, " - cgroup2 ");
		char mnt[PATH_MAX];

		/* id parent major:minor root mount-point ... - fstype ... */
		if (dash && sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1)
			ok = (size_t)snprintf(out, len, "%s", mnt) < len;
	}
	return ok;
}

/* The process's cgroup v2 directory, from the "0::" line of its cgroup file. */
static bool cgroup_of(pid_t pid, char *out, size_t len)
{
	char path[64], line[PATH_MAX], mnt[PATH_MAX];
	cleanup_fclose FILE *f = NULL;
	bool ok = false;

	if (!cgroup2_mount(mnt, sizeof(mnt)))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			/* The root cgroup has no cpu.max: nothing to throttle by. */
			ok = strcmp(line + 3, "/") != 0 &&
			     (size_t)snprintf(out, len, "%s%s", mnt, line + 3) < len;
		}
	}
	return ok;
}

static bool write_str(const char *path, const char *s)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);

	return fd >= 0 && write(fd, s, strlen(s)) == (ssize_t)strlen(s);
}

/* cpu.max of the target's own cgroup, if it has one we may change. */
static bool cgroup_start(struct throttle *th)
{
	char cg[PATH_MAX], mine[PATH_MAX];
	cleanup_close int fd = -1;
	ssize_t n;

	if (!cgroup_of(th->pid, cg, sizeof(cg)))
		return false;
	if (cgroup_of(getpid(), mine, sizeof(mine)) && strcmp(cg, mine) == 0)
		return false; /* throttling it would throttle ferry too */
	if ((size_t)snprintf(th->cpu_max, sizeof(th->cpu_max), "%s/cpu.max", cg) >=
	    sizeof(th->cpu_max))
		return false;
	fd = open(th->cpu_max, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, th->saved, sizeof(th->saved) - 1);
	if (n <= 0)
		return false;
	th->saved[n] = 0;
	th->saved[strcspn(th->saved, "\n")] = 0;
	return true;
}

static int send_sig(const struct throttle *th, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, th->pidfd, sig, NULL, 0);
}

/* ---- the guard (a forked child: async-signal-safe calls only) ------------- */

/* Wait up to ns (forever if 0) for the next level from ferry: 1 a new level
 * in *permille, 0 the time is up, -1 ferry is gone (end of file). */
static int guard_wait(int rfd, uint64_t ns, uint32_t *permille)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	uint32_t v;
	ssize_t n;

	if (ppoll(&p, 1, ns ? &ts : NULL, NULL) <= 0)
		return 0;
	n = read(rfd, &v, sizeof(v));
	if (n == sizeof(v)) {
		*permille = v;
		return 1;
	}
	return n < 0 && errno == EINTR ? 0 : -1;
}

static _Noreturn void guard_main(const struct throttle *th, bool duty, int rfd)
{
	uint32_t permille = 0;

	/* A Ctrl-C reaches the whole process group: the guard outlives ferry
	 * by design and goes only when ferry has. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	for (int fd = 3; fd < 1024; fd++)
		if (fd != rfd && fd != th->pidfd)
			close(fd);
	for (;;) {
		uint64_t stop_ns = duty ? DUTY_PERIOD_NS * permille / 1000 : 0;
		int r;

		if (stop_ns && send_sig(th, SIGSTOP) < 0)
			stop_ns = 0;
		r = guard_wait(rfd, stop_ns, &permille);
		if (stop_ns)
			send_sig(th, SIGCONT);
		if (r < 0)
			break;
		if (r == 0 && stop_ns && guard_wait(rfd, DUTY_PERIOD_NS - stop_ns, &permille) < 0)
			break;
	}
	if (th->cpu_max[0])
		write_str(th->cpu_max, th->saved);
	if (duty)
		send_sig(th, SIGCONT);
	_exit(0);
}

static int guard_start(struct throttle *th, bool duty, struct ferr *err)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return ferr_sys(err, errno, "throttle guard pipe");
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return ferr_sys(err, errno, "fork the throttle guard");
	}
	if (pid == 0) {
		close(p[1]);
		guard_main(th, duty, p[0]);
	}
	close(p[0]);
	th->guard = pid;
	th->ctl = p[1];
	return 0;
}

int throttle_set(struct throttle *th, double level, struct ferr *err)
{
	uint32_t permille;

	if (level < 0)
		level = 0;
	if (level > 0.9)
		level = 0.9;
	if (!th->method) {
		bool cg = cgroup_start(th);
		int ret;

		th->method = cg ? "cgroup cpu.max" : "SIGSTOP/SIGCONT";
		ret = guard_start(th, !cg, err);
		if (ret)
			return ret;
	}
	th->level = level;
	permille = (uint32_t)(level * 1000 + 0.5);
	if (write(th->ctl, &permille, sizeof(permille)) != sizeof(permille))
		return ferr_sys(err, errno, "tell the throttle guard of process %d", th->pid);
	if (th->cpu_max[0]) {
		char v[64];
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		long quota = (long)((1 - level) * CPU_MAX_PERIOD * (ncpu > 0 ? ncpu : 1));

		if (level > 0)
			snprintf(v, sizeof(v), "%ld %d", quota < 1000 ? 1000 : quota, CPU_MAX_PERIOD);
		else
			snprintf(v, sizeof(v), "%s", th->saved);
		if (!write_str(th->cpu_max, v))
			return ferr_sys(err, errno, "write `%s` to %s", v, th->cpu_max);
	}
	pr_debug("throttle %d by %s at %.0f%%", th->pid, th->method, level * 100);
	return 0;
}

void throttle_fini(struct throttle *th)
{
	/* End of file tells the guard to continue the process and exit. */
	if (th->ctl >= 0)
		close(th->ctl);
	th->ctl = -1;
	if (th->guard > 0) {
		int st;

		while (waitpid(th->guard, &st, 0) < 0 && errno == EINTR)
			;
		th->guard = 0;
	}
	if (th->cpu_max[0] && !write_str(th->cpu_max, th->saved))
		pr_warn("could not restore %s to `%s`", th->cpu_max, th->saved);
	th->cpu_max[0] = 0;
}
