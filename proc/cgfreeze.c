/* The cgroup freezer, v1 and v2, and the guard that thaws it if ferry
 * dies while it is frozen. The freeze is short on purpose: ferry freezes,
 * lists, seizes with ptrace and thaws (proc/tree.c), and the long work of
 * a dump runs under ptrace alone, as CRIU's seize.c does. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include "common/cancel.h"
#include "common/log.h"
#include "proc/cgfreeze.h"

#define CGF_DEPTH_MAX 32

enum cgf_state { CGF_THAWED, CGF_FREEZING, CGF_FROZEN };

static const char *state_name(enum cgf_state s)
{
	return s == CGF_FROZEN ? "FROZEN" : s == CGF_FREEZING ? "FREEZING" : "THAWED";
}

static int read_state(const struct cgfreeze *cg, enum cgf_state *s, struct ferr *err)
{
	char buf[256];
	ssize_t n;

	if (!cg->v2) {
		n = pread(cg->ctlfd, buf, sizeof(buf) - 1, 0);
		if (n < 0)
			return ferr_sys(err, errno, "read %s/freezer.state", cg->path);
		buf[n] = '\0';
		if (!strncmp(buf, "FROZEN", 6))
			*s = CGF_FROZEN;
		else if (!strncmp(buf, "FREEZING", 8))
			*s = CGF_FREEZING;
		else if (!strncmp(buf, "THAWED", 6))
			*s = CGF_THAWED;
		else
			return ferr_new(err, EIO, "%s/freezer.state reads `%.*s`", cg->path,
					(int)strcspn(buf, "\n"), buf);
		return 0;
	}
	/* v2: cgroup.freeze says what was asked, cgroup.events whether it
	 * is done. */
	n = pread(cg->ctlfd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return ferr_sys(err, errno, "read %s/cgroup.freeze", cg->path);
	if (n < 1 || buf[0] == '0') {
		*s = CGF_THAWED;
		return 0;
	}
	n = read_small_file_at(cg->dirfd, "cgroup.events", buf, sizeof(buf));
	if (n < 0)
		return ferr_sys(err, (int)-n, "read %s/cgroup.events", cg->path);
	*s = strstr(buf, "frozen 1") ? CGF_FROZEN : CGF_FREEZING;
	return 0;
}

static int write_state(const struct cgfreeze *cg, bool freeze)
{
	const char *v = cg->v2 ? (freeze ? "1" : "0") : (freeze ? "FROZEN" : "THAWED");

	return pwrite(cg->ctlfd, v, strlen(v), 0) < 0 ? -errno : 0;
}

int cgf_open(struct cgfreeze *cg, const char *path, struct ferr *err)
{
	cleanup_close int dfd = -1;
	cleanup_close int cfd = -1;
	enum cgf_state s;
	struct statfs sf;
	int ret;

	memset(cg, 0, sizeof(*cg));
	cg->dirfd = cg->ctlfd = cg->guard_fd = -1;
	if (snprintf(cg->path, sizeof(cg->path), "%s", path) >= (int)sizeof(cg->path))
		return ferr_new(err, ENAMETOOLONG, "freeze cgroup path is too long");
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ferr_sys(err, errno, "freeze cgroup %s", path);
	if (fstatfs(dfd, &sf) < 0)
		return ferr_sys(err, errno, "freeze cgroup %s", path);
	if (sf.f_type != CGROUP_SUPER_MAGIC && sf.f_type != CGROUP2_SUPER_MAGIC)
		return ferr_new(err, EINVAL, "freeze cgroup %s is not a cgroup directory (filesystem "
				"type %#lx)", path, (unsigned long)sf.f_type);
	cfd = openat(dfd, "freezer.state", O_RDWR | O_CLOEXEC);
	if (cfd < 0 && errno == ENOENT) {
		cg->v2 = true;
		cfd = openat(dfd, "cgroup.freeze", O_RDWR | O_CLOEXEC);
	}
	if (cfd < 0 && errno == ENOENT)
		return ferr_new(err, ENOENT, "freeze cgroup %s has neither freezer.state (a cgroup "
				"v1 freezer cgroup) nor cgroup.freeze (a cgroup v2 cgroup other than "
				"the root): there is no freezer to use", path);
	if (cfd < 0)
		return ferr_sys(err, errno, "open %s/%s", path,
				cg->v2 ? "cgroup.freeze" : "freezer.state");
	cg->dirfd = steal_fd(dfd);
	cg->ctlfd = steal_fd(cfd);
	cg->opened = true;
	ret = read_state(cg, &s, err);
	if (!ret && s != CGF_THAWED)
		ret = ferr_new(err, EBUSY, "freeze cgroup %s is %s already (a paused container?): "
			       "ferry freezes it itself and thaws it after; resume it first",
			       path, state_name(s));
	if (ret)
		cgf_close(cg);
	return ret;
}

/* The guard: ferry's child, alone in a process group of its own (a signal
 * to ferry's group does not reach it), holding only the freezer file and a
 * pipe from ferry. A byte means ferry thawed the cgroup itself; end of
 * file without one means ferry died: it thaws. */
static __attribute__((noreturn)) void guard_run(int rfd, int ctlfd, bool v2)
{
	int lo = rfd < ctlfd ? rfd : ctlfd, hi = rfd < ctlfd ? ctlfd : rfd;
	char c;
	ssize_t n;

	setpgid(0, 0);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	/* Nothing of ferry's (its stdio, the runtime's socket) kept open. */
	if (lo > 0)
		syscall(SYS_close_range, 0u, (unsigned)lo - 1, 0u);
	if (hi > lo + 1)
		syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0u);
	syscall(SYS_close_range, (unsigned)hi + 1, ~0u, 0u);
	do
		n = read(rfd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		(void)!pwrite(ctlfd, v2 ? "0" : "THAWED", v2 ? 1 : 6, 0);
	_exit(0);
}

static int guard_start(struct cgfreeze *cg, struct ferr *err)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return ferr_sys(err, errno, "pipe for the freezer's guard");
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return ferr_sys(err, errno, "fork the freezer's guard");
	}
	if (pid == 0)
		guard_run(p[0], cg->ctlfd, cg->v2);
	close(p[0]);
	cg->guard = pid;
	cg->guard_fd = p[1];
	return 0;
}

/* The cgroup is thawed (or was never frozen): the guard ends without
 * touching it. */
static void guard_stop(struct cgfreeze *cg)
{
	if (!cg->guard)
		return;
	(void)!write(cg->guard_fd, "t", 1);
	close(cg->guard_fd);
	cg->guard_fd = -1;
	while (waitpid(cg->guard, NULL, 0) < 0 && errno == EINTR)
		;
	cg->guard = 0;
}

static bool pid_in(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

int cgf_freeze(struct cgfreeze *cg, struct ferr *err)
{
	cleanup_free pid_t *procs = NULL;
	uint64_t deadline;
	enum cgf_state s = CGF_THAWED;
	unsigned step_us = 1000, i = 0;
	size_t n;
	int ret = cgf_procs(cg, &procs, &n, err);

	if (ret)
		return ret;
	if (pid_in(procs, n, getpid()))
		return ferr_new(err, EINVAL, "ferry itself (pid %d) is in freeze cgroup %s: it "
				"would freeze itself", getpid(), cg->path);
	ret = guard_start(cg, err);
	if (ret)
		return ret;
	cg->frozen_at = now_ns();
	deadline = cg->frozen_at + CGF_TIMEOUT_MS * 1000000ull;
	ret = write_state(cg, true);
	if (ret) {
		guard_stop(cg);
		return ferr_sys(err, -ret, "freeze cgroup %s", cg->path);
	}
	cg->frozen = true;
	pr_info("cgroup freezer: freezing %s (cgroup %s)", cg->path, cg->v2 ? "v2" : "v1");
	for (;;) {
		ret = read_state(cg, &s, err);
		if (ret || s == CGF_FROZEN)
			break;
		ret = cancel_check(err);
		if (ret)
			break;
		if (now_ns() > deadline) {
			ret = ferr_new(err, ETIMEDOUT, "cgroup %s did not freeze within %d s (still "
				       "%s: a task in uninterruptible sleep?)", cg->path,
				       CGF_TIMEOUT_MS / 1000, state_name(s));
			break;
		}
		/* A v1 freezer can stay FREEZING on a task it missed: asking
		 * again now and then is what the kernel's older docs advise. */
		if (!cg->v2 && ++i % 16 == 0)
			(void)!write_state(cg, true);
		usleep(step_us);
		if (step_us < 50000)
			step_us *= 2;
	}
	if (ret) {
		cgf_thaw(cg, NULL);
		return ret;
	}
	pr_debug("cgroup %s frozen in %.1f ms", cg->path, (now_ns() - cg->frozen_at) / 1e6);
	return 0;
}

int cgf_thaw(struct cgfreeze *cg, struct ferr *err)
{
	int ret;

	if (!cg->frozen) {
		guard_stop(cg);
		return 0;
	}
	ret = write_state(cg, false);
	if (ret) {
		/* The guard stays, and thaws as ferry ends. */
		pr_err("thaw cgroup %s: %s (`echo %s > %s/%s` thaws it)", cg->path, strerror(-ret),
		       cg->v2 ? "0" : "THAWED", cg->path, cg->v2 ? "cgroup.freeze" : "freezer.state");
		return err ? ferr_sys(err, -ret, "thaw cgroup %s", cg->path) : ret;
	}
	cg->frozen = false;
	guard_stop(cg);
	pr_info("cgroup freezer: thawed %s after %.1f ms frozen", cg->path,
		(now_ns() - cg->frozen_at) / 1e6);
	return 0;
}

static int add_procs(int cgfd, const char *rel, int depth, pid_t **pids, size_t *n,
		     struct ferr *err)
{
	cleanup_fclose FILE *f = NULL;
	cleanup_dir DIR *d = NULL;
	struct dirent *de;
	char line[32];

	if (depth > CGF_DEPTH_MAX)
		return ferr_new(err, ELOOP, "cgroups nested deeper than %d under it", CGF_DEPTH_MAX);
	d = opendir_at(cgfd, rel);
	if (!d)
		return ferr_sys(err, errno, "open cgroup %s", rel);
	f = fopen_at(dirfd(d), "cgroup.procs");
	/* A threaded cgroup of v2 has no process list: its threads belong to
	 * processes listed above it. */
	if (!f && errno != EOPNOTSUPP)
		return ferr_sys(err, errno, "read %s/cgroup.procs", rel);
	while (f && fgets(line, sizeof(line), f)) {
		pid_t pid = atoi(line), *np;

		if (pid <= 0 || pid_in(*pids, *n, pid))
			continue;
		np = realloc(*pids, (*n + 1) * sizeof(*np));
		if (!np)
			return ferr_sys(err, ENOMEM, "cgroup processes");
		*pids = np;
		(*pids)[(*n)++] = pid;
	}
	while ((de = readdir(d))) {
		char sub[4096];
		int ret;

		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name) >= (int)sizeof(sub))
			return ferr_new(err, ENAMETOOLONG, "cgroup path under %s", rel);
		ret = add_procs(cgfd, sub, depth + 1, pids, n, err);
		if (ret)
			return ret;
	}
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

int cgf_procs(const struct cgfreeze *cg, pid_t **pids, size_t *n, struct ferr *err)
{
	int ret;

	*pids = NULL;
	*n = 0;
	ret = add_procs(cg->dirfd, ".", 0, pids, n, err);
	if (ret) {
		free(*pids);
		*pids = NULL;
		*n = 0;
		return ferr_wrap(err, "freeze cgroup %s", cg->path);
	}
	qsort(*pids, *n, sizeof(**pids), cmp_pid);
	return 0;
}

void cgf_close(struct cgfreeze *cg)
{
	if (!cg->opened)
		return;
	cgf_thaw(cg, NULL);
	guard_stop(cg);
	if (cg->ctlfd >= 0)
		close(cg->ctlfd);
	if (cg->dirfd >= 0)
		close(cg->dirfd);
	cg->ctlfd = cg->dirfd = -1;
	cg->opened = false;
}

bool cgf_probe(char *what, size_t len)
{
	cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], v1[256] = "", v2[256] = "";

	while (f && fgets(line, sizeof(line), f)) {
		char mnt[256], fstype[64], opts[1024];
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %*s %1023s", fstype, opts) != 2)
			continue;
		if (!v1[0] && !strcmp(fstype, "cgroup") &&
		    (strstr(opts, ",freezer") || !strncmp(opts, "freezer", 7)))
			snprintf(v1, sizeof(v1), "%s", mnt);
		if (!v2[0] && !strcmp(fstype, "cgroup2"))
			snprintf(v2, sizeof(v2), "%s", mnt);
	}
	if (v2[0]) {
		/* The root has no cgroup.freeze; a kernel with the v2 freezer
		 * (5.2) gives every other cgroup one. */
		char probe[300];

		snprintf(probe, sizeof(probe), "%s/cgroup.freeze", v2);
		if (access(probe, F_OK) < 0) {
			cleanup_dir DIR *d = opendir(v2);
			struct dirent *de;
			bool found = false, any = false;

			while (d && !found && (de = readdir(d))) {
				if (de->d_type != DT_DIR || de->d_name[0] == '.')
					continue;
				any = true;
				snprintf(probe, sizeof(probe), "%s/%s/cgroup.freeze", v2, de->d_name);
				found = access(probe, F_OK) == 0;
			}
			if (any && !found)
				v2[0] = '\0';
		}
	}
	snprintf(what, len, "%s%s%s%s%s", v1[0] ? "v1 freezer at " : "", v1,
		 v1[0] && v2[0] ? ", " : "", v2[0] ? "v2 (cgroup.freeze) under " : "", v2);
	if (!v1[0] && !v2[0])
		snprintf(what, len, "no freezer: neither a cgroup v1 freezer nor cgroup2 is mounted");
	return v1[0] || v2[0];
}
