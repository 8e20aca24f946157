/* A final dump of a process tree. Every process is frozen before any is
 * read (proc/tree.c), and stays frozen until the last one's images are
 * committed, so that nothing one process does after its own dump can show up
 * in another's: a byte written into a shared pipe is either in the writer's
 * past and the pipe's queue, or in neither. Each process other than the root
 * is an ordinary full dump in DIR/pid-PID; the root's own is DIR, committed
 * last, with tree.img (the processes and the objects they share). DIR reads
 * as complete only once the root's inventory is in: its old inventory goes
 * first. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/dump.h"
#include "images/img.h"
#include "proc/fds.h"
#include "proc/shared.h"
#include "proc/tree.h"

struct dump_tree_ctx {
	struct ptree *pt;
	struct objs objs;
	bool shell_job;
};

/* --shell-job: the fds on a process's controlling terminal (or /dev/tty)
 * are marked, to be the restoring ferry's own terminal. */
static void mark_tty(const struct ptree *pt, const struct target *t, struct fd_list *fl)
{
	dev_t tty = 0;

	for (size_t i = 0; i < pt->n; i++)
		if (pt->p[i].pid == t->pid)
			tty = pt->p[i].tty;
	for (size_t i = 0; tty && i < fl->n; i++) {
		Ferry__Fd *f = fl->fds[i];

		if (f->kind == FERRY__FD_KIND__FD_CHR && f->has_rdev &&
		    (f->rdev == tty || f->rdev == makedev(5, 0)))
			f->has_tty = f->tty = true;
	}
}

int dump_tree_note(struct dump_tree_ctx *tc, struct target *t, struct fd_list *fl,
		   struct ferr *err)
{
	if (tc->shell_job)
		mark_tty(tc->pt, t, fl);
	return objs_note_fds(&tc->objs, t, fl, err);
}

int dump_tree_shm(struct dump_tree_ctx *tc, struct target *t, Ferry__Vma *v, struct ferr *err)
{
	int ret = objs_note_shm(&tc->objs, t, v->start, v->end, v->has_pgoff ? v->pgoff : 0,
				&v->shm_id, err);

	v->has_shm_id = !ret;
	return ret;
}

int dump_tree_write(struct dump_tree_ctx *tc, struct img_writer *w, struct ferr *err)
{
	int ret = objs_check_peers(&tc->objs, err);

	for (size_t i = 0; !ret && i < tc->pt->n; i++) {
		const struct ptree_proc *p = &tc->pt->p[i];
		Ferry__TreeProc tp = FERRY__TREE_PROC__INIT;
		Ferry__TreeItem it = FERRY__TREE_ITEM__INIT;
		char dir[32] = "";

		if (i)
			snprintf(dir, sizeof(dir), "pid-%d", p->pid);
		tp.pid = (uint32_t)p->pid;
		tp.ppid = i ? (uint32_t)p->ppid : 0;
		tp.pgid = (uint32_t)p->pgid;
		tp.sid = (uint32_t)p->sid;
		tp.dir = dir;
		tp.has_zombie = p->zombie;
		tp.zombie = p->zombie;
		tp.has_exit_status = p->zombie;
		tp.exit_status = p->exit_status;
		tp.comm = p->zombie && p->comm[0] ? (char *)p->comm : NULL;
		tp.has_ctty = tp.ctty = p->tty != 0;
		tp.has_tty_fg = tp.tty_fg = p->tty_fg;
		tp.has_files_with = p->files_with != 0;
		tp.files_with = (uint32_t)p->files_with;
		tp.has_fs_with = p->fs_with != 0;
		tp.fs_with = (uint32_t)p->fs_with;
		it.proc = &tp;
		ret = img_write_tree_item(w, &it, err);
	}
	for (size_t i = 0; !ret && i < tc->objs.n; i++)
		ret = img_write_tree_item(w, tc->objs.items[i], err);
	return ret;
}

/* Before the freeze: a kind of fd ferry cannot take anywhere in the tree
 * costs the tree nothing. Pipes and sockets are judged once frozen. */
static int check_early(pid_t root, bool whole, bool locks, struct ferr *err)
{
	cleanup_free pid_t *pids = NULL;
	size_t n;
	int ret = ptree_scan(root, &pids, &n, err);

	if (!whole)
		n = 1;

	cleanup_val(objs) struct objs o = { 0 };

	for (size_t i = 0; !ret && i < n; i++) {
		cleanup_val(target) struct target t = { 0 };
		cleanup_val(fd_list) struct fd_list l = { 0 };
		size_t bad = 0;

		if (target_open(&t, pids[i], err))
			continue; /* gone, or a zombie: the freeze sees */
		ret = fds_collect(&t, &l, err);
		for (size_t k = 0; !ret && k < l.n; k++) {
			Ferry__Fd *f = l.fds[k];
			bool unix_sk = false;

			if (f->kind == FERRY__FD_KIND__FD_SOCKET)
				ret = objs_sock_takeable(&o, &t, f, &unix_sk, err);
			if (unix_sk || f->kind == FERRY__FD_KIND__FD_PIPE)
				f->has_obj_id = true; /* for the description below */
			bad += !fd_supported(f);
		}
		if (!ret && !bad)
			ret = dump_refuse_locks(&l, pids[i], locks, err);
		if (!ret && bad) {
			char desc[1024];

			fds_describe_unsupported(&l, desc, sizeof(desc));
			ret = ferr_new(err, EOPNOTSUPP, "process %d has file descriptors ferry cannot "
				       "dump: %s", pids[i], desc);
		}
	}
	return ret;
}

/* A process with a controlling terminal is a shell job: taken only with
 * --shell-job (as criu), whose restore gives it the restoring terminal. */
static int check_ttys(const struct ptree *pt, bool shell_job, struct ferr *err)
{
	for (size_t i = 0; i < pt->n; i++) {
		const struct ptree_proc *p = &pt->p[i];

		if (!p->tty || p->zombie)
			continue;
		if (!shell_job)
			return ferr_new(err, EOPNOTSUPP, "process %d has a controlling terminal (device "
					"%u:%u): --shell-job dumps it as a shell job, restored on the "
					"terminal of the restoring ferry", p->pid, major(p->tty),
					minor(p->tty));
		if (p->sid == p->pid)
			return ferr_new(err, EOPNOTSUPP, "process %d leads its terminal's session: "
					"ferry restores shell jobs, not whole terminal sessions", p->pid);
	}
	return 0;
}

/* DIR made (or checked) and its old inventory removed before any process's
 * images are written into it. */
static int start_dir(const char *dir, struct ferr *err)
{
	cleanup_close int fd = -1;
	int ret = img_own_dir(dir, &fd, err);

	if (ret)
		return ret;
	if (unlinkat(fd, IMG_INVENTORY_NAME, 0) < 0 && errno != ENOENT)
		return ferr_sys(err, errno, "remove old %s/%s", dir, IMG_INVENTORY_NAME);
	if (fsync(fd) < 0)
		return ferr_sys(err, errno, "fsync `%s`", dir);
	return 0;
}

static int dump_member(struct dump_tree_ctx *tc, struct ptree_proc *p, const struct dump_opts *o,
		       struct dump_result *sum, struct ferr *err)
{
	struct dump_opts mo = *o;
	struct dump_result r;
	char dir[PATH_MAX];
	int ret;

	if (snprintf(dir, sizeof(dir), "%s/pid-%d", o->dir, p->pid) >= (int)sizeof(dir))
		return ferr_new(err, ENAMETOOLONG, "image directory for process %d", p->pid);
	mo.pid = p->pid;
	mo.dir = dir;
	mo.tc = tc;
	mo.tc_root = false;
	mo.hold = true;
	mo.leave_running = false;
	mo.parent = NULL;
	mo.tr = NULL;
	mo.sink = NULL;
	ret = dump_round(&p->t, &mo, &r, err);
	if (ret)
		return ferr_wrap(err, "process %d of the tree", p->pid);
	sum->threads += r.threads;
	sum->vmas += r.vmas;
	sum->data_pages += r.data_pages;
	sum->zero_pages += r.zero_pages;
	return 0;
}

int dump_tree(const struct dump_opts *o, struct dump_result *res, struct ferr *err)
{
	cleanup_val(ptree) struct ptree pt = { 0 };
	struct dump_tree_ctx tc = { .pt = &pt, .shell_job = o->shell_job };
	struct dump_result sum = { 0 };
	struct dump_opts ro = *o;
	uint64_t t0 = now_ns();
	int ret;

	memset(res, 0, sizeof(*res));
	ret = ptree_open(&pt, o->pid, err);
	if (!ret && !o->skip_unsupported_fds)
		ret = check_early(o->pid, o->tree, o->file_locks, err);
	if (!ret)
		ret = start_dir(o->dir, err);
	if (!ret)
		ret = ptree_freeze(&pt, o->tree, err);
	if (!ret)
		ret = check_ttys(&pt, o->shell_job, err);
	if (ret) {
		ptree_release(&pt);
		objs_free(&tc.objs);
		return ret;
	}
	pr_info("froze a tree of %zu process(es) under %d in %.1f ms", pt.n, o->pid,
		(now_ns() - t0) / 1e6);
	for (size_t i = 1; !ret && i < pt.n; i++)
		if (!pt.p[i].zombie)
			ret = dump_member(&tc, &pt.p[i], o, &sum, err);
	if (!ret) {
		ro.tc = &tc;
		ro.tc_root = true;
		ro.hold = true;
		ro.leave_running = false;
		ret = dump_round(&pt.p[0].t, &ro, res, err);
	}
	if (!ret) {
		res->threads += sum.threads;
		res->vmas += sum.vmas;
		res->data_pages += sum.data_pages;
		res->zero_pages += sum.zero_pages;
		res->processes = pt.n;
		if (o->leave_running || o->hold) {
			res->freeze_ns = now_ns() - pt.p[0].t.freeze_start_ns;
		} else {
			/* Ended only once every image is safely on disk. */
			ptree_kill(&pt);
			res->killed = true;
		}
	}
	if (!o->hold || ret)
		ptree_release(&pt);
	objs_free(&tc.objs);
	res->seconds = (now_ns() - t0) / 1e9;
	return ret;
}
