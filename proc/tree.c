/* Finding and freezing a process tree. This kernel has no
 * /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN is off here and in
 * many distribution kernels), so children are found by their PPid in every
 * /proc/PID/stat: one pass over /proc per generation of the tree. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cancel.h"
#include "common/fault.h"
#include "common/log.h"
#include "proc/cgfreeze.h"
#include "proc/tree.h"

#define TREE_MAX 4096   /* as the image reader accepts */

struct stat_line {
	char state;
	pid_t ppid, pgid, sid, tpgid;
	int tty_nr;
	int exit_code;
	unsigned long long start_time;
};

/* Fields of /proc/PID/stat after the comm (which may hold spaces and
 * parentheses: the last ')' ends it). */
static int read_stat(int dirfd, const char *path, struct stat_line *s)
{
	char buf[1024], *p;
	int field = 3;

	if (read_small_file_at(dirfd, path, buf, sizeof(buf)) < 0)
		return -1;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	memset(s, 0, sizeof(*s));
	s->state = *p;
	while (*p && field < 52) {
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
		field++;
		if (field == 4)
			s->ppid = atoi(p);
		else if (field == 5)
			s->pgid = atoi(p);
		else if (field == 6)
			s->sid = atoi(p);
		else if (field == 7)
			s->tty_nr = atoi(p);
		else if (field == 8)
			s->tpgid = atoi(p);
		else if (field == 22)
			s->start_time = strtoull(p, NULL, 10);
		else if (field == 52)
			s->exit_code = atoi(p);
	}
	return field >= 6 ? 0 : -1;
}

static struct ptree_proc *find(struct ptree *pt, pid_t pid)
{
	for (size_t i = 0; i < pt->n; i++)
		if (pt->p[i].pid == pid)
			return &pt->p[i];
	return NULL;
}

static int add(struct ptree *pt, pid_t pid, struct ferr *err)
{
	struct ptree_proc *np;

	if (pt->n >= TREE_MAX)
		return ferr_new(err, E2BIG, "the tree of process %d has more than %d processes",
				pt->p[0].pid, TREE_MAX);
	np = realloc(pt->p, (pt->n + 1) * sizeof(*np));
	if (!np)
		return ferr_sys(err, ENOMEM, "process tree");
	pt->p = np;
	memset(&pt->p[pt->n], 0, sizeof(pt->p[pt->n]));
	pt->p[pt->n].pid = pid;
	pt->p[pt->n].t.pidfd = pt->p[pt->n].t.procfd = -1;
	pt->n++;
	return 0;
}

int ptree_open(struct ptree *pt, pid_t root, struct ferr *err)
{
	int ret;

	memset(pt, 0, sizeof(*pt));
	ret = add(pt, root, err);
	if (!ret)
		ret = target_open(&pt->p[0].t, root, err);
	if (ret)
		ptree_close(pt);
	return ret;
}

/* Every process of /proc whose parent is among the first n of *pids and
 * which is not there yet is appended to *pids (*total of them). */
static int children_of(pid_t **pids, size_t n, size_t *total, struct ferr *err)
{
	cleanup_dir DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return ferr_sys(err, errno, "open /proc");
	while ((de = readdir(d))) {
		struct stat_line s;
		char path[64];
		pid_t pid, *np;
		bool known = false;
		const pid_t *in = *pids;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = atoi(de->d_name);
		snprintf(path, sizeof(path), "%d/stat", pid);
		if (read_stat(dirfd(d), path, &s) < 0)
			continue; /* gone meanwhile */
		for (size_t i = 0; i < *total && !known; i++)
			known = in[i] == pid;
		if (known)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (in[i] != s.ppid)
				continue;
			np = realloc(*pids, (*total + 1) * sizeof(*np));
			if (!np)
				return ferr_sys(err, ENOMEM, "process tree");
			*pids = np;
			(*pids)[(*total)++] = pid;
			break;
		}
	}
	return 0;
}

int ptree_scan(pid_t root, pid_t **pids, size_t *n, struct ferr *err)
{
	size_t before;
	int ret;

	*n = 0;
	*pids = malloc(sizeof(**pids));
	if (!*pids)
		return ferr_sys(err, ENOMEM, "process tree");
	(*pids)[(*n)++] = root;
	do {
		before = *n;
		ret = children_of(pids, *n, n, err);
		if (!ret && *n > TREE_MAX)
			ret = ferr_new(err, E2BIG, "the tree of process %d has more than %d processes",
				       root, TREE_MAX);
	} while (!ret && *n != before);
	return ret;
}

/* The last number of a "NAME:\t1\t2\t3" line of status (the innermost
 * namespace's), or 0. */
static pid_t ns_field(const char *status, const char *name)
{
	const char *p = strstr(status, name);
	long v = 0;

	if (!p)
		return 0;
	p += strlen(name);
	while (*p && *p != '\n') {
		char *end;
		long x = strtol(p, &end, 10);

		if (end == p)
			break;
		v = x;
		p = end;
	}
	return (pid_t)v;
}

pid_t ptree_ns_pid(pid_t pid)
{
	char path[48], buf[4096];

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	return read_small_file_at(AT_FDCWD, path, buf, sizeof(buf)) > 0 ? ns_field(buf, "\nNSpid:")
									  : 0;
}

/* p's IDs in its own PID namespace, and which namespace that is. */
static void take_ns_ids(struct ptree_proc *p)
{
	char path[48], buf[4096];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/status", p->pid);
	if (read_small_file_at(AT_FDCWD, path, buf, sizeof(buf)) > 0) {
		p->ns_pid = ns_field(buf, "\nNSpid:");
		p->ns_pgid = ns_field(buf, "\nNSpgid:");
		p->ns_sid = ns_field(buf, "\nNSsid:");
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", p->pid);
	p->pidns = stat(path, &st) == 0 ? st.st_ino : 0;
}

static int take_ids(struct ptree_proc *p, struct ferr *err)
{
	struct stat_line s;
	char path[32];

	snprintf(path, sizeof(path), "/proc/%d/stat", p->pid);
	if (read_stat(AT_FDCWD, path, &s) < 0)
		return ferr_new(err, ESRCH, "process %d of the tree exited while being frozen", p->pid);
	p->ppid = s.ppid;
	p->pgid = s.pgid;
	p->sid = s.sid;
	/* tty_nr: major in bits 8-15, minor in 0-7 and 20-31 (proc(5)). */
	p->tty = s.tty_nr ? makedev(((unsigned)s.tty_nr >> 8) & 0xfff,
				    ((unsigned)s.tty_nr & 0xff) | (((unsigned)s.tty_nr >> 12) & 0xfff00))
			  : 0;
	p->tty_fg = s.tty_nr && s.tpgid == s.pgid;
	take_ns_ids(p);
	if (s.state == 'Z') {
		char path[48];
		ssize_t n;

		p->zombie = true;
		p->exit_status = s.exit_code;
		snprintf(path, sizeof(path), "/proc/%d/comm", p->pid);
		n = read_small_file_at(AT_FDCWD, path, p->comm, sizeof(p->comm));
		if (n > 0 && p->comm[strlen(p->comm) - 1] == '\n')
			p->comm[strlen(p->comm) - 1] = '\0';
	}
	return 0;
}

/* Who shares p's fd table (fs struct) with an earlier process of the tree. */
static void find_sharing(struct ptree *pt, size_t i)
{
	struct ptree_proc *p = &pt->p[i];

	if (p->zombie)
		return;
	for (size_t k = 0; k < i; k++) {
		struct ptree_proc *q = &pt->p[k];

		if (q->zombie)
			continue;
		if (!p->files_with && syscall(SYS_kcmp, q->pid, p->pid, KCMP_FILES, 0, 0) == 0)
			p->files_with = q->files_with ? q->files_with : q->pid;
		if (!p->fs_with && syscall(SYS_kcmp, q->pid, p->pid, KCMP_FS, 0, 0) == 0)
			p->fs_with = q->fs_with ? q->fs_with : q->pid;
	}
}

/* Freeze p: a zombie needs nothing; a live process is opened and frozen. A
 * process that dies before it is held is a zombie now (its parent is
 * frozen): it is taken as one. */
static int freeze_one(struct ptree_proc *p, bool root, struct ferr *err)
{
	int ret = take_ids(p, err);

	if (!ret && root && p->zombie)
		return ferr_new(err, ESRCH, "process %d is a zombie: there is nothing to dump", p->pid);
	if (!ret && !root && p->zombie)
		target_close(&p->t); /* seized in its cgroup, and died since */
	if (ret || p->zombie)
		return ret;
	if (!root && p->t.pidfd < 0) {
		ret = target_open(&p->t, p->pid, err);
		if (ret && err->code == ESRCH && take_ids(p, err) == 0 && p->zombie)
			return 0;
		if (ret)
			return ret;
	}
	ret = target_freeze(&p->t, err);
	if (ret && !root && take_ids(p, err) == 0 && p->zombie) {
		target_close(&p->t);
		return 0;
	}
	return ret;
}

int ptree_freeze(struct ptree *pt, bool whole, struct ferr *err)
{
	cleanup_free pid_t *pids = NULL;
	size_t done = 0;
	int ret = 0;

	while (!ret && done < pt->n) {
		size_t n = 0, upto = pt->n;

		/* Freeze what was found, then list the children of all of it. */
		for (; !ret && done < upto; done++)
			ret = freeze_one(&pt->p[done], done == 0, err);
		if (!ret)
			ret = cancel_check(err);
		if (ret || !whole)
			break;
		free(pids);
		pids = malloc(pt->n * sizeof(*pids));
		if (!pids) {
			ret = ferr_sys(err, ENOMEM, "process tree");
			break;
		}
		for (size_t i = 0; i < pt->n; i++)
			pids[i] = pt->p[i].pid;
		n = pt->n;
		ret = children_of(&pids, pt->n, &n, err);
		for (size_t i = pt->n; !ret && i < n; i++)
			if (!find(pt, pids[i]))
				ret = add(pt, pids[i], err);
	}
	if (ret) {
		ptree_release(pt);
		return ret;
	}
	for (size_t i = 1; i < pt->n; i++)
		find_sharing(pt, i);
	pr_debug("froze a tree of %zu process(es) under %d", pt->n, pt->p[0].pid);
	return 0;
}

/* The state letter of /proc/PID/stat, or 0 if it is gone. */
static char state_of(pid_t pid)
{
	struct stat_line s;
	char path[32];

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	return read_stat(AT_FDCWD, path, &s) < 0 ? 0 : s.state;
}

static const char *comm_of(pid_t pid, char *buf, size_t len)
{
	char path[48];

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (read_small_file_at(AT_FDCWD, path, buf, len) <= 0)
		snprintf(buf, len, "?");
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static bool pid_in(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

/* Is a thread of pid stopped by a signal, or traced, now? Seized and
 * interrupted while a v1 freezer holds it, such a thread goes back to its
 * stop at the thaw and never traps: its process is seized after the thaw,
 * the ordinary way (a stopped thread runs nothing meanwhile). */
static bool any_thread_stopped(pid_t pid)
{
	char path[320];
	cleanup_dir DIR *d = NULL;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		struct stat_line s;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", pid, de->d_name);
		if (read_stat(AT_FDCWD, path, &s) == 0 && (s.state == 'T' || s.state == 't'))
			return true;
	}
	return false;
}

static ino_t pidns_of(pid_t pid)
{
	char path[48];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* The cgroup's processes (procs) are the tree's (tree), each way round;
 * a zombie of the tree is in no cgroup any more. */
static int same_procs(const struct cgfreeze *cg, const pid_t *procs, size_t np, const pid_t *tree,
		      size_t nt, struct ferr *err)
{
	char comm[32];

	ino_t self = pidns_of(getpid()), root = pidns_of(tree[0]);

	for (size_t i = 0; i < np; i++) {
		if (pid_in(tree, nt, procs[i]))
			continue;
		/* A container's: say why it is not below the init. */
		if (root && root != self && pidns_of(procs[i]) == root)
			return ferr_new(err, EOPNOTSUPP, "process %d (%s), in freeze cgroup %s, is in "
					"the tree's PID namespace but not below its init (joined from "
					"outside, as `runc exec` does): it would be lost; nothing was "
					"dumped and the cgroup runs on, thawed", procs[i],
					comm_of(procs[i], comm, sizeof(comm)), cg->path);
		return ferr_new(err, EOPNOTSUPP, "process %d (%s) is in freeze cgroup %s but not in "
				"the tree of process %d: it would not be dumped; nothing was dumped "
				"and the cgroup runs on, thawed", procs[i],
				comm_of(procs[i], comm, sizeof(comm)), cg->path, tree[0]);
	}
	for (size_t i = 0; i < nt; i++) {
		char st = state_of(tree[i]);

		if (!pid_in(procs, np, tree[i]) && st && st != 'Z' && st != 'X')
			return ferr_new(err, EOPNOTSUPP, "process %d (%s) of the tree of process %d is "
					"not in freeze cgroup %s (is it the tree's cgroup?): nothing was "
					"dumped and the cgroup runs on, thawed", tree[i],
					comm_of(tree[i], comm, sizeof(comm)), tree[0], cg->path);
	}
	return 0;
}

/* While the cgroup is frozen: pid added to the tree (the root is there),
 * opened and every thread of it seized and interrupted. A zombie, a
 * process gone, or one with a stopped thread is left to ptree_freeze. */
static int seize_early(struct ptree *pt, pid_t pid, bool root, const pid_t *stopped, size_t ns,
		       struct ferr *err)
{
	struct ptree_proc *p;
	char st = state_of(pid);
	int ret = root ? 0 : add(pt, pid, err);

	if (ret)
		return ret;
	p = root ? &pt->p[0] : &pt->p[pt->n - 1];
	if (!st || st == 'Z' || st == 'X' || pid_in(stopped, ns, pid))
		return 0;
	if (!root) {
		ret = target_open(&p->t, pid, err);
		if (ret == -ESRCH) {
			ferr_clear(err);
			return 0;
		}
		if (ret)
			return ret;
	}
	return target_seize(&p->t, err);
}

int ptree_freeze_cgroup(struct ptree *pt, struct cgfreeze *cg, bool whole, struct ferr *err)
{
	cleanup_free pid_t *tree = NULL;
	cleanup_free pid_t *procs = NULL;
	cleanup_free pid_t *stopped = NULL;
	size_t nt = 0, np = 0, ns = 0;
	uint64_t t0 = now_ns();
	int ret, thaw;

	/* Before the freeze, while /proc can still tell a stopped thread. */
	ret = cgf_procs(cg, &procs, &np, err);
	if (!ret && !(stopped = calloc(np + 1, sizeof(*stopped))))
		ret = ferr_sys(err, ENOMEM, "cgroup processes");
	for (size_t i = 0; !ret && i < np; i++)
		if (any_thread_stopped(procs[i]))
			stopped[ns++] = procs[i];
	if (!ret)
		ret = cgf_freeze(cg, err);
	if (ret)
		return ret;
	free(steal_ptr(procs));
	/* Nothing in the cgroup runs or forks now. */
	ret = ptree_scan(pt->p[0].pid, &tree, &nt, err);
	if (!ret && !whole)
		nt = 1;
	if (!ret)
		ret = cgf_procs(cg, &procs, &np, err);
	if (!ret)
		ret = same_procs(cg, procs, np, tree, nt, err);
	for (size_t i = 0; !ret && i < nt; i++)
		ret = seize_early(pt, tree[i], i == 0, stopped, ns, err);
	/* ferry killed at the worst moment: frozen, every thread seized. */
	if (!ret && fault_hit("kill-ferry-cgroup-frozen"))
		raise(SIGKILL);
	/* Each seized thread stops in its interrupt as it runs again. */
	thaw = cgf_thaw(cg, ret ? NULL : err);
	if (!ret)
		ret = thaw;
	if (ret) {
		ptree_release(pt);
		return ret;
	}
	ret = ptree_freeze(pt, whole, err);
	if (ret)
		return ret;
	/* The tree is held now; one that joined the cgroup from outside
	 * meanwhile (`runc exec`) would be left out of the dump. */
	free(steal_ptr(procs));
	ret = cgf_procs(cg, &procs, &np, err);
	for (size_t i = 0; !ret && i < np; i++) {
		char comm[32];

		if (!find(pt, procs[i]))
			ret = ferr_new(err, EOPNOTSUPP, "process %d (%s) joined freeze cgroup %s while "
				       "the tree was being frozen: it would not be dumped; nothing was "
				       "dumped and the cgroup runs on", procs[i],
				       comm_of(procs[i], comm, sizeof(comm)), cg->path);
	}
	if (ret) {
		ptree_release(pt);
		return ret;
	}
	pr_info("cgroup freezer: the tree of %zu process(es) in %s is held by ptrace, %.1f ms after "
		"the freeze", pt->n, cg->path, (now_ns() - t0) / 1e6);
	return 0;
}

void ptree_release(struct ptree *pt)
{
	/* Children first: a parent let go first could see them stopped. */
	for (size_t i = pt->n; i-- > 0;)
		target_release(&pt->p[i].t);
}

int ptree_kill(struct ptree *pt)
{
	int ret = 0;

	for (size_t i = 0; i < pt->n; i++)
		if (pt->p[i].t.pidfd >= 0 &&
		    syscall(SYS_pidfd_send_signal, pt->p[i].t.pidfd, SIGKILL, NULL, 0) < 0 &&
		    errno != ESRCH && !ret)
			ret = -errno;
	return ret;
}

void ptree_close(struct ptree *pt)
{
	for (size_t i = pt->n; i-- > 0;)
		target_close(&pt->p[i].t);
	free(pt->p);
	memset(pt, 0, sizeof(*pt));
}

int ptree_start_time(int procfd, uint64_t *out)
{
	struct stat_line s;

	if (read_stat(procfd, "stat", &s) < 0)
		return -1;
	*out = s.start_time;
	return 0;
}
