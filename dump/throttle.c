/* Throttling a process for auto-converge (see throttle.h). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
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
	pthread_mutex_init(&th->mu, NULL);
	pthread_cond_init(&th->cv, NULL);
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

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int send_sig(const struct throttle *th, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, th->pidfd, sig, NULL, 0);
}

static void *duty_main(void *arg)
{
	struct throttle *th = arg;

	pthread_mutex_lock(&th->mu);
	while (!th->stop) {
		double level = th->level;

		pthread_mutex_unlock(&th->mu);
		if (level > 0 && send_sig(th, SIGSTOP) == 0) {
			sleep_ns((uint64_t)(DUTY_PERIOD_NS * level));
			send_sig(th, SIGCONT);
			sleep_ns((uint64_t)(DUTY_PERIOD_NS * (1 - level)));
		} else {
			sleep_ns(DUTY_PERIOD_NS);
		}
		pthread_mutex_lock(&th->mu);
	}
	pthread_mutex_unlock(&th->mu);
	send_sig(th, SIGCONT);
	return NULL;
}

int throttle_set(struct throttle *th, double level, struct ferr *err)
{
	if (level < 0)
		level = 0;
	if (level > 0.9)
		level = 0.9;
	if (!th->method) {
		if (cgroup_start(th)) {
			th->method = "cgroup cpu.max";
		} else {
			th->method = "SIGSTOP/SIGCONT";
			th->stop = false;
			if (pthread_create(&th->thread, NULL, duty_main, th))
				return ferr_sys(err, EAGAIN, "start the throttle thread");
			th->running = true;
		}
	}
	pthread_mutex_lock(&th->mu);
	th->level = level;
	pthread_mutex_unlock(&th->mu);
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
	if (th->running) {
		pthread_mutex_lock(&th->mu);
		th->stop = true;
		pthread_mutex_unlock(&th->mu);
		pthread_join(th->thread, NULL);
		th->running = false;
	}
	if (th->cpu_max[0] && !write_str(th->cpu_max, th->saved))
		pr_warn("could not restore %s to `%s`", th->cpu_max, th->saved);
	th->cpu_max[0] = 0;
	pthread_mutex_destroy(&th->mu);
	pthread_cond_destroy(&th->cv);
}
