/* libFuzzer target for the restore path: each input is an image directory
 * tree (tests/fuzz/unpack.h; packed by tests/fuzz/pack.py), which
 * rst_restore() turns into a stopped process that is then killed and reaped.
 * Every input must end in success or a clean error, with no child and no fd
 * left behind. A restored tree's other processes (its root's children, ours
 * once the root is killed) are killed and reaped with it. Restoring runs as root on untrusted images, so the fuzzer
 * first shuts itself in: a PID namespace it is init of (its death kills
 * whatever it made) and a mount namespace where everything is read-only and
 * nodev except the work directory, libFuzzer's corpus and artifact
 * directories, and a /dev holding only null, zero, full, random, urandom.
 *
 * Environment: FERRY_FUZZ_DIR, the work directory (files the seeds' fds
 * name live there; default a fresh one in /tmp, removed at exit);
 * FERRY_FUZZ_VERBOSE=1 prints each input's outcome. Exit 77 (with a SKIP
 * line on stderr) where root, namespaces or a kernel feature the restore
 * needs is missing. */
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/kerndat.h"
#include "common/log.h"
#include "images/img.h"
#include "restore/restore.h"
#include "tests/fuzz/unpack.h"

#define EXIT_SKIP 77
#define WRITABLE_MAX 16

/* The harness's state, set up once before the first input. */
static struct {
	char work[PATH_MAX];     /* FERRY_FUZZ_DIR */
	char img[PATH_MAX + 8];  /* work/img: a tmpfs, rewritten per input */
	struct kerndat kd;
	bool verbose;
} H;

static void __attribute__((noreturn, format(printf, 1, 2))) skip(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_restore: SKIP: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	_exit(EXIT_SKIP);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_restore: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort(); /* libFuzzer saves the input */
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* ---- the sandbox ----------------------------------------------------------- */

/* Bind dir onto itself and make that mount writable again (still nodev). */
static void keep_writable(const char *dir)
{
	struct mount_attr rw = { .attr_clr = MOUNT_ATTR_RDONLY };
	char real[PATH_MAX];

	if (!realpath(dir, real) || !strcmp(real, "/") || !strncmp(real, "/proc", 5) ||
	    !strncmp(real, "/dev", 4))
		return;
	if (mount(real, real, NULL, MS_BIND, NULL) < 0 ||
	    mount_setattr(AT_FDCWD, real, 0, &rw, sizeof(rw)) < 0)
		skip("cannot keep %s writable: %s", real, strerror(errno));
}

/* A /dev with only what a process may harmlessly have open. */
static void private_dev(void)
{
	static const struct { const char *name; unsigned minor; } nodes[] = {
		{ "null", 3 }, { "zero", 5 }, { "full", 7 }, { "random", 8 }, { "urandom", 9 },
	};
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	char path[64];

	if (mount("ferry-fuzz-dev", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") < 0)
		skip("mount a tmpfs on /dev: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		snprintf(path, sizeof(path), "/dev/%s", nodes[i].name);
		if (mknod(path, S_IFCHR | 0666, makedev(1, nodes[i].minor)) < 0)
			skip("mknod %s: %s", path, strerror(errno));
	}
	if (symlink("/proc/self/fd", "/dev/fd") < 0 ||
	    mount_setattr(AT_FDCWD, "/dev", 0, &ro, sizeof(ro)) < 0)
		skip("finish /dev: %s", strerror(errno));
}

/* Runs as init of the new PID namespace, in a new mount namespace. */
static void shut_in(const char **writable, size_t n)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV |
					    MOUNT_ATTR_NOSUID };

	if (unshare(CLONE_NEWNS) < 0)
		skip("unshare(CLONE_NEWNS): %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		skip("make / private: %s", strerror(errno));
	/* /proc of this PID namespace: rst_restore opens /proc/PID of its child. */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		skip("mount /proc: %s", strerror(errno));
	kerndat_probe(&H.kd);
	if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro)) < 0)
		skip("make every mount read-only (mount_setattr): %s", strerror(errno));
	private_dev();
	for (size_t i = 0; i < n; i++)
		keep_writable(writable[i]);
	/* Images live on their own small tmpfs: fast, and bounded. */
	if (mkdir(H.img, 0700) < 0 && errno != EEXIST)
		skip("mkdir %s: %s", H.img, strerror(errno));
	if (mount("ferry-fuzz-img", H.img, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700,size=256m") < 0)
		skip("mount a tmpfs on %s: %s", H.img, strerror(errno));
}

/* Fork init of a new PID namespace, which returns to run the fuzzer; this
 * process only waits for it and exits as it did. */
static void enter_sandbox(const char **writable, size_t n, bool own_work)
{
	int status;
	pid_t pid;

	if (unshare(CLONE_NEWPID) < 0)
		skip("unshare(CLONE_NEWPID): %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		skip("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		shut_in(writable, n);
		return;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	if (own_work)
		nftw(H.work, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *writable[WRITABLE_MAX];
	const char *env = getenv("FERRY_FUZZ_DIR");
	static char cwd[PATH_MAX], art[PATH_MAX];
	struct rlimit core;
	size_t n = 0;
	bool own = !env;
	struct stat st;

	if (geteuid() != 0)
		skip("restoring needs root");
	if (env) {
		snprintf(H.work, sizeof(H.work), "%s", env);
		if (mkdir(H.work, 0700) < 0 && errno != EEXIST)
			skip("mkdir %s: %s", H.work, strerror(errno));
	} else {
		snprintf(H.work, sizeof(H.work), "/tmp/ferry-fuzz-restore-XXXXXX");
		if (!mkdtemp(H.work))
			skip("mkdtemp: %s", strerror(errno));
	}
	snprintf(H.img, sizeof(H.img), "%s/img", H.work);
	writable[n++] = H.work;
	if (getcwd(cwd, sizeof(cwd)))
		writable[n++] = cwd; /* crash-* files, profiles */
	for (int i = 1; i < *argc && n < WRITABLE_MAX; i++) {
		const char *a = (*argv)[i];

		if (!strncmp(a, "-artifact_prefix=", 17)) {
			char *slash;

			snprintf(art, sizeof(art), "%s", a + 17);
			slash = strrchr(art, '/');
			if (!slash)
				continue; /* a prefix in cwd */
			slash[1] = '\0';
			writable[n++] = art;
		} else if (a[0] != '-' && stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
			writable[n++] = a; /* corpus directories */
		}
	}
	/* No core files: restored processes inherit the soft limit unless their
	 * image says otherwise. The hard one stays, as without CAP_SYS_RESOURCE
	 * no image could raise it back. */
	if (getrlimit(RLIMIT_CORE, &core) == 0) {
		core.rlim_cur = 0;
		setrlimit(RLIMIT_CORE, &core);
	}
	enter_sandbox(writable, n, own);

	if (!H.kd.has[KD_PTRACE])
		skip("ptrace: %s", H.kd.note[KD_PTRACE]);
	if (!H.kd.has[KD_CLONE3_SET_TID])
		skip("clone3 with set_tid: %s", H.kd.note[KD_CLONE3_SET_TID]);
	if (!H.kd.has[KD_PROCESS_VM_READV])
		skip("process_vm_readv/writev: %s", H.kd.note[KD_PROCESS_VM_READV]);
	H.verbose = getenv("FERRY_FUZZ_VERBOSE") && atoi(getenv("FERRY_FUZZ_VERBOSE"));
	log_set_level(H.verbose ? LOG_WARN : LOG_ERROR);
	return 0;
}

/* ---- one input ------------------------------------------------------------- */

#define TREE_MAX 64

/* /proc/NAME/stat's state, parent and comm; false when it is gone. */
static bool proc_stat(const char *name, char *state, int *ppid, char *comm, size_t len)
{
	char path[64], buf[512], *lp, *rp;

	snprintf(path, sizeof(path), "/proc/%s/stat", name);
	if (read_small_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
		return false;
	lp = strchr(buf, '(');
	rp = strrchr(buf, ')');
	if (!lp || !rp || sscanf(rp + 1, " %c %d", state, ppid) != 2)
		return false;
	*rp = '\0';
	snprintf(comm, len, "%s", lp + 1);
	return true;
}

/* root and every process below it (a restored tree's), root first. */
static size_t descendants(pid_t root, pid_t *out, size_t max)
{
	pid_t pid[1024], ppid[1024];
	size_t n = 0, k = 0, found = 1;
	cleanup_dir DIR *d = opendir("/proc");
	struct dirent *e;

	while (d && n < 1024 && (e = readdir(d))) {
		char state, comm[32];
		int pp;

		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
		    proc_stat(e->d_name, &state, &pp, comm, sizeof(comm))) {
			pid[n] = atoi(e->d_name);
			ppid[n++] = pp;
		}
	}
	out[0] = root;
	for (; k < found; k++)
		for (size_t i = 0; i < n && found < max; i++)
			if (ppid[i] == out[k])
				out[found++] = pid[i];
	return found;
}

/* Kill and reap the restored process, and the rest of its tree if it is
 * one (ours to reap once their parents are gone): none of them ever runs
 * a user instruction. */
static void end_process(pid_t root)
{
	pid_t all[TREE_MAX];
	size_t n = descendants(root, all, TREE_MAX);
	int status;

	for (size_t i = 0; i < n; i++)
		if (kill(all[i], SIGKILL) < 0 && i == 0)
			fail("restored process %d: kill: %s", root, strerror(errno));
	for (;;) {
		if (waitpid(root, &status, __WALL) < 0) {
			if (errno == EINTR)
				continue; /* libFuzzer's -timeout alarm */
			fail("restored process %d: wait: %s", root, strerror(errno));
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			break;
	}
	for (size_t i = 1; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "/proc/%d", all[i]);
		/* Ours once its parent is reaped: wait until then (2 s at most;
		 * check_clean names one left over). */
		for (int tries = 0; tries < 2000; tries++) {
			pid_t r = waitpid(all[i], &status, __WALL | WNOHANG);

			if (r == all[i] && (WIFEXITED(status) || WIFSIGNALED(status)))
				break;
			if (r < 0 && errno == ECHILD && access(name, F_OK) < 0)
				break;
			usleep(1000);
		}
	}
}

/* A child of ours other than the sanitizers' symbolizer (which libFuzzer
 * starts, and keeps, to name new functions): its "PID (comm) state", or
 * false when there is none. */
static bool find_child(char *desc, size_t len)
{
	pid_t self = getpid();
	cleanup_dir DIR *d = opendir("/proc");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char comm[32], state;
		int ppid = 0;

		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    !proc_stat(e->d_name, &state, &ppid, comm, sizeof(comm)) || ppid != self ||
		    !strcmp(comm, "llvm-symbolizer"))
			continue;
		snprintf(desc, len, "%s (%s) %c", e->d_name, comm, state);
		return true;
	}
	return false;
}

/* The lowest free fd: one more than before an input means it leaked one
 * (compared within an input: libFuzzer's symbolizer pipes come between). */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return fd;
}

/* Nothing may outlive an input: no child (the restored process, killed
 * and reaped, or a half-built one, or a zombie), no fd. */
static void check_clean(int free_fd)
{
	char child[128];
	int fd;

	if (find_child(child, sizeof(child)))
		fail("a child is left after the input: %s", child);
	fd = lowest_free_fd();
	if (fd != free_fd)
		fail("an fd leaked: the lowest free one is %d, was %d", fd, free_fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rst_opts o = { .dir = H.img, .stopped = true, .kd = &H.kd };
	struct rst_result res;
	int ret, free_fd = lowest_free_fd();
	struct ferr err;

	fuzz_unpack(H.img, data, size);
	ferr_clear(&err);
	ret = rst_restore(&o, &res, &err);
	if (ret == 0) {
		if (res.pid <= 0)
			fail("success without a process (pid %d)", res.pid);
		if (H.verbose)
			fprintf(stderr, "fuzz_restore: restored %d (%u threads, %u vmas, %llu pages)\n",
				res.pid, res.threads, res.vmas, (unsigned long long)res.pages);
		end_process(res.pid);
	} else {
		if (ret > 0 || err.code <= 0 || !err.msg[0])
			fail("unclean error: returned %d, code %d, message `%s`", ret, err.code,
			     err.msg);
		if (H.verbose)
			fprintf(stderr, "fuzz_restore: error: %s\n", err.msg);
	}
	check_clean(free_fd);
	return 0;
}
