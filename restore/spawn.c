/* Creating a tree's processes, from ferry's side (the stubs' side is
 * child.c): the root forked and seized, each phase of the stubs waited for
 * (fork events let go on, the PIDs out here learnt from them in a new PID
 * namespace), the queued data put back between the phases, the processes
 * opened for the steps that follow; and, on any failure, every process of
 * ferry's killed and reaped, and no other. */
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cancel.h"
#include "common/log.h"
#include "proc/tree.h"
#include "restore/rst.h"

/* Is pid one of ours: a child or tracee of ferry? Only those may be killed:
 * a PID the tree was meant to get may belong to someone else (the original
 * still running, when its clone failed with EEXIST). */
static bool ours(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL) == 0;
}

void rst_tree_kill(struct rst_tree *t)
{
	bool ns = t->init > 0 || t->pidns_init;
	pid_t init = t->init > 0 ? t->init : t->pidns_init && t->r[0] ? t->r[0]->pid : 0;

	if (init > 0) {
		int status;

		/* SIGKILL to a namespace's init ends everything in it; the init
		 * is gone only once they are all reaped, and ferry, which traces
		 * them, must reap them first: any of ours, until the init. */
		kill(init, SIGKILL);
		for (;;) {
			pid_t w = waitpid(-1, &status, __WALL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 || (w == init && (WIFEXITED(status) || WIFSIGNALED(status))))
				break;
		}
		t->init = 0;
		if (t->pidns_init && t->r[0])
			t->r[0]->pid = 0;
	}
	for (size_t i = 0; i < t->n; i++) {
		/* A zombie's PID is its dumped one, which inside a new
		 * namespace is not the one it has out here: ended with it. */
		pid_t pid = t->r[i] ? t->r[i]->pid : ns ? 0 : (pid_t)t->tp[i]->pid;
		int status;

		if (pid <= 0 || !ours(pid))
			continue;
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, __WALL) >= 0 && !WIFEXITED(status) && !WIFSIGNALED(status))
			;
	}
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i])
			t->r[i]->pid = 0;
}

enum stub_state { STUB_WAITING, STUB_STOPPED, STUB_EXITED };

/* A process just forked (a fork event of its parent): which of the tree it
 * is, by the PID it has in its own namespace (NSpid's last field). */
static void map_forked(struct rst_tree *t, pid_t *pids, pid_t parent)
{
	unsigned long msg = 0;
	pid_t inner;

	if (ptrace(PTRACE_GETEVENTMSG, parent, NULL, &msg) < 0 || !msg)
		return;
	inner = ptree_ns_pid((pid_t)msg);
	for (size_t i = 0; inner && i < t->n; i++)
		if ((pid_t)t->tp[i]->pid == inner && !pids[i])
			pids[i] = (pid_t)msg;
}

/* --pid-ns: the namespace's init forks the root (a fork event: the root's
 * PID out here), then becomes `ferry __pidns-init`. */
static int watch_init(struct rst_tree *t, pid_t *pids, bool *moved, struct ferr *err)
{
	int status;
	pid_t w = waitpid(t->init, &status, __WALL | WNOHANG);

	if (w <= 0)
		return 0;
	*moved = true;
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		t->init = 0;
		return ferr_new(err, EIO, "the new PID namespace's init died (status 0x%x)", status);
	}
	if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_FORK)
		map_forked(t, pids, t->init);
	if (WIFSTOPPED(status) && ptrace(PTRACE_CONT, t->init, NULL, NULL) < 0)
		return ferr_sys(err, errno, "PTRACE_CONT the namespace's init %d", t->init);
	return 0;
}

/* Wait until every process marked in `go` is in its next SIGSTOP (a zombie:
 * has exited). Other stops (fork events, the first stop of a process just
 * forked, a stray signal) are let go on. */
static int wait_phase(struct rst_tree *t, pid_t *pids, const bool *go, int err_rd,
		      struct ferr *err)
{
	enum stub_state *st = calloc(t->n, sizeof(*st));
	size_t left = 0;
	int ret = 0;

	if (!st)
		return ferr_sys(err, ENOMEM, "restore");
	for (size_t i = 0; i < t->n; i++)
		left += go[i];
	while (!ret && left) {
		bool moved = false;

		for (size_t i = 0; !ret && i < t->n; i++) {
			int status, sig;
			pid_t w;

			if (!go[i] || st[i] != STUB_WAITING || !pids[i])
				continue; /* done, or not forked (so not known) yet */
			w = waitpid(pids[i], &status, __WALL | WNOHANG);
			if (w == 0 || (w < 0 && errno == ECHILD))
				continue; /* not forked (so not ours) yet */
			if (w < 0) {
				ret = ferr_sys(err, errno, "wait for new process %d", pids[i]);
				break;
			}
			moved = true;
			if (WIFEXITED(status) || WIFSIGNALED(status)) {
				if (t->tp[i]->zombie) {
					st[i] = STUB_EXITED;
					left--;
					continue;
				}
				char msg[512];
				ssize_t n = read(err_rd, msg, sizeof(msg) - 1);

				msg[n > 0 ? n : 0] = '\0';
				if (t->r[i])
					t->r[i]->pid = 0; /* reaped: nothing to kill */
				ret = ferr_new(err, EIO, "setting up the new process failed: %s",
					       n > 0 ? msg : "it died without saying why");
				break;
			}
			if (!WIFSTOPPED(status))
				continue;
			sig = WSTOPSIG(status);
			if ((status >> 16) == 0 && sig == SIGSTOP) {
				st[i] = STUB_STOPPED;
				left--;
				continue;
			}
			if ((status >> 16) == PTRACE_EVENT_FORK)
				map_forked(t, pids, pids[i]);
			/* A zombie's own end is let through; anything else
			 * (a stray signal) is suppressed: it stays blocked. */
			if ((status >> 16) != 0 || !t->tp[i]->zombie ||
			    !WIFSIGNALED(t->tp[i]->exit_status) ||
			    WTERMSIG(t->tp[i]->exit_status) != sig)
				sig = 0;
			if (ptrace(PTRACE_CONT, pids[i], NULL, (void *)(long)sig) < 0 && errno != ESRCH)
				ret = ferr_sys(err, errno, "PTRACE_CONT new process %d", pids[i]);
		}
		if (!ret && t->init > 0)
			ret = watch_init(t, pids, &moved, err);
		if (!ret && !moved) {
			struct timespec ts = { 0, 100000 };

			ret = cancel_check(err);
			nanosleep(&ts, NULL);
		}
	}
	free(st);
	return ret;
}

static int resume(struct rst_tree *t, pid_t *pids, const bool *go, struct ferr *err)
{
	for (size_t i = 0; i < t->n; i++)
		if (go[i] && ptrace(PTRACE_CONT, pids[i], NULL, NULL) < 0)
			return ferr_sys(err, errno, "PTRACE_CONT new process %d", pids[i]);
	return 0;
}

/* The root, ferry's child: with its dumped PID where free (a lone process
 * may take another PID; a tree's processes must keep theirs). */
static pid_t clone_root(struct rst_tree *t, struct ferr *err)
{
	uint64_t flags = (t->opts->sibling ? CLONE_PARENT : 0) | rst_ns_clone_flags(t->ns);
	pid_t want = (pid_t)t->tp[0]->pid, pid;

	/* The init of the tree's own PID namespace: PID 1 in a new one. */
	if (t->pidns_init) {
		pid = rst_clone_pid(0, CLONE_NEWPID | flags);
		if (pid < 0)
			return ferr_sys(err, errno, "create the tree's PID namespace (clone3 "
					"CLONE_NEWPID)");
		return pid;
	}
	pid = rst_clone_pid(want, flags);
	/* EPERM: choosing a PID needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN). */
	if (pid < 0 && want > 0 && (errno == EEXIST || errno == EPERM)) {
		const char *why = errno == EEXIST ? "is in use" : "cannot be chosen by this caller";

		if (t->opts->require_same_pid || t->n > 1) {
			int e = errno;

			return ferr_new(err, e, "PID %d %s%s", want, why, t->n > 1 ?
					": a tree is restored with its PIDs" :
					", and --require-same-pid was given");
		}
		pr_warn("PID %d %s: the process gets another one", want, why);
		t->same_pid = false;
		pid = rst_clone_pid(0, flags);
	}
	if (pid < 0)
		return ferr_sys(err, errno, "create the process (clone3%s)", want ? " with set_tid" : "");
	return pid;
}

void rst_tree_release_init(struct rst_tree *t, struct rst_result *res)
{
	int status;

	if (t->init <= 0)
		return;
	/* A running tracee is detached from a stop only. */
	if (ptrace(PTRACE_INTERRUPT, t->init, NULL, NULL) == 0)
		while (waitpid(t->init, &status, __WALL) == t->init && !WIFSTOPPED(status) &&
		       !WIFEXITED(status) && !WIFSIGNALED(status))
			;
	ptrace(PTRACE_DETACH, t->init, NULL, NULL);
	res->ns_init = t->init;
	t->init = 0;
}

static int max_fd(const struct rst_tree *t)
{
	int top = 2;

	for (size_t i = 0; i < t->n; i++)
		for (size_t k = 0; t->r[i] && k < t->r[i]->nr_fds; k++)
			if ((int)t->r[i]->fds[k]->fd > top)
				top = (int)t->r[i]->fds[k]->fd;
	if (t->pool && t->pool->top > top)
		top = t->pool->top;
	return top;
}

/* The index of process i's parent in the tree, or t->n for the root. */
static size_t parent_of(const struct rst_tree *t, size_t i)
{
	for (size_t k = 0; i && k < t->n; k++)
		if (t->tp[k]->pid == t->tp[i]->ppid)
			return k;
	return t->n;
}

/* The nearest process that is a (or b) or an ancestor of both. */
static size_t common_ancestor(const struct rst_tree *t, size_t a, size_t b)
{
	for (size_t x = a; x < t->n; x = parent_of(t, x))
		for (size_t y = b; y < t->n; y = parent_of(t, y))
			if (x == y)
				return x;
	return 0;
}

/* Which open file descriptions several fds share, and who opens each. */
static int plan_descs(struct rst_tree *t, struct ferr *err)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++) {
		const struct rst *r = t->r[i];

		if (!r || t->tp[i]->files_with)
			continue; /* no fds of its own to set up */
		for (size_t k = 0; k < r->nr_fds; k++) {
			const Ferry__Fd *f = r->fds[k];
			struct rst_desc *d = NULL, *nd;

			if (!f->has_desc || f->kind != FERRY__FD_KIND__FD_REG || !f->path || f->tty)
				continue;
			for (size_t j = 0; j < n && !d; j++)
				if (t->descs[j].desc == f->desc)
					d = &t->descs[j];
			if (d) {
				d->owner = common_ancestor(t, d->owner, i);
				d->holders++;
				continue;
			}
			nd = realloc(t->descs, (n + 1) * sizeof(*nd));
			if (!nd)
				return ferr_sys(err, ENOMEM, "open file descriptions");
			t->descs = nd;
			t->descs[n++] = (struct rst_desc){ f->desc, i, 1, r, f };
		}
	}
	/* Only the shared ones: each other fd opens its own. */
	t->nr_descs = 0;
	for (size_t j = 0; j < n; j++)
		if (t->descs[j].holders > 1)
			t->descs[t->nr_descs++] = t->descs[j];
	return 0;
}

static int tree_create(struct rst_tree *t, struct ferr *err)
{
	long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE |
		    PTRACE_O_TRACEFORK;
	cleanup_close int go_rd = -1, go_wr = -1, err_rd = -1, err_wr = -1;
	cleanup_close int pty_master_hold = -1, pty_slave_hold = -1;
	cleanup_free pid_t *pids = calloc(t->n, sizeof(*pids));
	cleanup_free bool *go = calloc(t->n, sizeof(*go));
	pid_t root;
	int p[2], ret, top;

	if (!pids || !go)
		return ferr_sys(err, ENOMEM, "restore");
	if (pipe2(p, O_CLOEXEC) < 0)
		return ferr_sys(err, errno, "pipe");
	go_rd = p[0];
	go_wr = p[1];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return ferr_sys(err, errno, "pipe");
	err_rd = p[0];
	if (t->opts->shell_job) {
		int src = isatty(0) ? 0 : isatty(1) ? 1 : isatty(2) ? 2 : -1;

		if (src < 0)
			return ferr_new(err, ENOTTY, "--shell-job: none of ferry's stdin, stdout and "
					"stderr is a terminal to give the shell job");
		t->tty_fd = fcntl(src, F_DUPFD_CLOEXEC, max_fd(t) + 1);
		if (t->tty_fd < 0)
			return ferr_sys(err, errno, "the terminal");
	}
	top = t->tty_fd >= 0 ? t->tty_fd : max_fd(t);
	for (size_t k = 0; k < t->opts->nr_inherit; k++) {
		t->inherit_fd[k] = fcntl(t->opts->inherit[k].fd, F_DUPFD_CLOEXEC, top + 1);
		if (t->inherit_fd[k] < 0)
			return ferr_sys(err, errno, "--inherit-fd fd[%d]", t->opts->inherit[k].fd);
		top = t->inherit_fd[k];
	}
	/* The terminal's ends in the stubs (restore/pty.h): two numbers free
	 * in ferry, held by placeholders the stubs inherit and replace. */
	if (t->pty.img) {
		pty_master_hold = fcntl(go_rd, F_DUPFD_CLOEXEC, top + 1);
		pty_slave_hold = pty_master_hold < 0 ? -1 :
				 fcntl(go_rd, F_DUPFD_CLOEXEC, pty_master_hold + 1);
		if (pty_slave_hold < 0)
			return ferr_sys(err, errno, "fds for the terminal");
		t->pty.master_at = pty_master_hold;
		t->pty.slave_at = top = pty_slave_hold;
	}
	/* Above every fd any process will have and every object's. */
	err_wr = fcntl(p[1], F_DUPFD_CLOEXEC, top + 1);
	close(p[1]);
	if (err_wr < 0)
		return ferr_sys(err, errno, "pipe");
	fflush(NULL);
	/* --pid-ns: under an init of ferry's; a tree that had its own
	 * namespace gets a new one with its root as the init. */
	if (t->opts->pid_ns && !t->pidns_init) {
		sigset_t all, old;

		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, &old);
		t->init = rst_clone_pid(0, CLONE_NEWPID |
					(t->opts->sibling ? CLONE_PARENT : 0));
		if (t->init == 0)
			rst_ns_init_main(t, go_rd, err_wr);
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (t->init < 0) {
			t->init = 0;
			return ferr_sys(err, errno, "create a PID namespace (clone3 CLONE_NEWPID)");
		}
		root = 0;
		goto seize;
	}
	root = clone_root(t, err);
	if (root < 0)
		return root == -1 ? -EIO : root;
	if (root == 0) {
		char c;
		sigset_t all;

		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		if (read(go_rd, &c, 1) != 1) /* ferry gave up before seizing us */
			_exit(127);
		close(go_rd);
		close(go_wr);
		close(err_rd);
		rst_stub_main(t, 0, err_wr);
	}
seize:
	for (size_t i = 0; i < t->n; i++) {
		/* In a new namespace their PIDs out here are learnt as they
		 * are forked. */
		pids[i] = t->init ? 0 : !i ? root : t->pidns_init ? 0 : (pid_t)t->tp[i]->pid;
		go[i] = true;
	}
	close(steal_fd(go_rd));
	close(steal_fd(err_wr));
	/* Seized before it does anything; its descendants as they are
	 * forked. EXITKILL: if ferry dies, so do they. */
	if (ptrace(PTRACE_SEIZE, t->init ? t->init : root, NULL, (void *)opts) < 0)
		return ferr_sys(err, errno, "PTRACE_SEIZE the new process %d", t->init ? t->init : root);
	if (write(go_wr, "g", 1) != 1)
		return ferr_sys(err, errno, "start the new process");
	ret = wait_phase(t, pids, go, err_rd, err);
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i])
			t->r[i]->pid = pids[i];
	/* Made by the root's stub: its master is the caller's to have. */
	if (!ret && t->pty.img)
		ret = rst_pty_take(&t->pty, pids[0], err);
	if (!ret && t->pool) {
		/* Messages name their senders by the PIDs they have now (in a
		 * new namespace, not the dumped ones). */
		struct rst_pool *pool = (struct rst_pool *)t->pool;
		cleanup_free struct rst_pid_map *map = calloc(t->n, sizeof(*map));
		size_t k = 0;

		for (size_t i = 0; map && i < t->n; i++)
			if (t->r[i] && t->r[i]->proc)
				map[k++] = (struct rst_pid_map){ (pid_t)t->r[i]->proc->pid, pids[i] };
		pool->pids = map;
		pool->nr_pids = k;
		ret = rst_pool_fill(pool, err);
		pool->pids = NULL;
		pool->nr_pids = 0;
	}
	/* Phase two: processes sharing another's fd table first, as the
	 * table's owner closes what they would still use. */
	for (int wave = 0; !ret && wave < 2; wave++) {
		for (size_t i = 0; i < t->n; i++)
			go[i] = (t->tp[i]->files_with != 0) == (wave == 0);
		ret = resume(t, pids, go, err);
		if (!ret)
			ret = wait_phase(t, pids, go, err_rd, err);
	}
	for (size_t i = 0; !ret && i < t->n; i++) {
		char path[32];

		if (!t->r[i])
			continue;
		snprintf(path, sizeof(path), "/proc/%d", t->r[i]->pid);
		t->r[i]->procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (t->r[i]->procfd < 0)
			ret = ferr_sys(err, errno, "open %s", path);
	}
	return ret;
}

int rst_tree_create(struct rst_tree *t, struct ferr *err)
{
	int ret = plan_descs(t, err);

	t->inherit_fd = calloc(t->opts->nr_inherit + 1, sizeof(*t->inherit_fd));
	if (!ret && !t->inherit_fd)
		ret = ferr_sys(err, ENOMEM, "--inherit-fd");
	for (size_t k = 0; !ret && k < t->opts->nr_inherit; k++)
		t->inherit_fd[k] = -1;
	if (!ret)
		ret = tree_create(t, err);
	for (size_t k = 0; t->inherit_fd && k < t->opts->nr_inherit; k++)
		if (t->inherit_fd[k] >= 0)
			close(t->inherit_fd[k]); /* the processes have theirs */
	free(t->inherit_fd);
	t->inherit_fd = NULL;
	free(t->descs);
	t->descs = NULL;
	t->nr_descs = 0;
	if (t->tty_fd >= 0)
		close(t->tty_fd); /* the processes have theirs */
	t->tty_fd = -1;
	return ret;
}

/* One process alone (an image without tree.img, or a warm restore). */
int rst_child_create(struct rst *r, struct ferr *err)
{
	const Ferry__Process *p = r->proc;
	Ferry__TreeProc tp = FERRY__TREE_PROC__INIT;
	const Ferry__TreeProc *tps[1] = { &tp };
	struct rst *rs[1] = { r };
	struct rst_tree t = { .opts = r->opts, .n = 1, .r = rs, .tp = tps, .same_pid = true,
				.tty_fd = -1 };
	int ret;

	tp.pid = p->pid;
	tp.pgid = p->has_pgid ? p->pgid : 0;
	tp.sid = p->has_sid ? p->sid : 0;
	ret = rst_tree_create(&t, err);
	if (!t.same_pid)
		r->res->same_pid = false;
	if (ret)
		rst_tree_kill(&t);
	else
		rst_tree_release_init(&t, r->res);
	return ret;
}
