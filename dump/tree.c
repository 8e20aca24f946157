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
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/dump.h"
#include "dump/pty.h"
#include "images/img.h"
#include "proc/cgfreeze.h"
#include "proc/fds.h"
#include "proc/shared.h"
#include "proc/tree.h"

struct desc_seen {
	pid_t pid;
	uint32_t fd;
	uint64_t dev, ino, desc;
};
struct descs {
	struct desc_seen *v;
	size_t n;
	uint64_t last;
};

/* The regular files' fds of the tree's processes in turn: an fd gets the
 * desc of an earlier one that kcmp(2) says shares its open file
 * description, else a new one. Candidates are the fds of the same file
 * (device and inode) only, so the kcmp calls stay few whatever the number
 * of fds. */
static int note_descs(struct descs *d, const struct target *t, struct fd_list *l,
		    struct ferr *err)
{
	for (size_t i = 0; i < l->n; i++) {
		Ferry__Fd *f = l->fds[i];
		struct desc_seen *n;
		uint64_t desc = 0;

		if (f->kind != FERRY__FD_KIND__FD_REG || !f->file)
			continue;
		for (size_t k = 0; k < d->n && !desc; k++) {
			const struct desc_seen *s = &d->v[k];

			if (s->dev == f->file->dev && s->ino == f->file->ino &&
			    syscall(SYS_kcmp, s->pid, t->pid, KCMP_FILE, s->fd, f->fd) == 0)
				desc = s->desc;
		}
		n = realloc(d->v, (d->n + 1) * sizeof(*n));
		if (!n)
			return ferr_sys(err, ENOMEM, "open file descriptions");
		d->v = n;
		d->v[d->n++] = (struct desc_seen){ t->pid, f->fd, f->file->dev, f->file->ino,
						       desc ? desc : ++d->last };
		f->has_desc = true;
		f->desc = d->v[d->n - 1].desc;
	}
	return 0;
}

static void descs_free(struct descs *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}

struct dump_tree_ctx {
	struct ptree *pt;
	struct objs objs;
	bool shell_job;
	bool pidns_init;           /* the root is the init of the tree's PID namespace */
	struct descs descs;   /* open file descriptions, across the tree */
	struct dump_ns ns;         /* its own namespaces (dump/ns.h), written last */
	struct dump_pty pty;       /* --orphan-pts: its terminal (dump/pty.h), or none */
};

/* --shell-job: the fds on a process's controlling terminal (or /dev/tty)
 * are marked, to be the restoring ferry's own terminal; but those on the
 * --orphan-pts terminal, which gets a new pair. */
static void mark_tty(const struct ptree_proc *p, struct fd_list *fl)
{
	for (size_t i = 0; p->tty && i < fl->n; i++) {
		Ferry__Fd *f = fl->fds[i];

		if (f->kind == FERRY__FD_KIND__FD_CHR && f->has_rdev && !f->orphan_pty &&
		    (f->rdev == p->tty || f->rdev == makedev(5, 0)))
			f->has_tty = f->tty = true;
	}
}

int dump_tree_note(struct dump_tree_ctx *tc, struct target *t, struct fd_list *fl,
		   struct ferr *err)
{
	const struct ptree_proc *p = NULL;
	int ret;

	for (size_t i = 0; i < tc->pt->n && !p; i++)
		if (tc->pt->p[i].pid == t->pid)
			p = &tc->pt->p[i];
	if (p)
		dump_pty_mark(&tc->pty, p, fl);
	if (p && tc->shell_job)
		mark_tty(p, fl);
	ret = objs_note_fds(&tc->objs, t, fl, err);
	return ret ? ret : note_descs(&tc->descs, t, fl, err);
}

int dump_tree_shm(struct dump_tree_ctx *tc, struct target *t, Ferry__Vma *v, struct ferr *err)
{
	int ret = objs_note_shm(&tc->objs, t, v->start, v->end, v->has_pgoff ? v->pgoff : 0,
				&v->shm_id, err);

	v->has_shm_id = !ret;
	return ret;
}

/* Every process of the namespace is below its init: one joined from
 * outside (`runc exec`, nsenter) has its parent out here, would not be
 * dumped, and would be lost with the namespace. */
static int whole_pidns(const struct ptree *pt, struct ferr *err)
{
	cleanup_dir DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return ferr_sys(err, errno, "/proc");
	while ((de = readdir(d))) {
		char path[300];
		struct stat st;
		bool ours = false;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/ns/pid", pid);
		if (stat(path, &st) < 0 || st.st_ino != pt->p[0].pidns)
			continue;
		for (size_t i = 0; i < pt->n && !ours; i++)
			ours = pt->p[i].pid == (pid_t)pid;
		if (!ours)
			return ferr_new(err, EOPNOTSUPP, "process %ld is in the tree's PID namespace "
					"but not below its init (joined from outside, as `runc exec` "
					"does): it would be lost; nothing was changed and the tree "
					"runs on", pid);
	}
	return 0;
}

/* The tree in its own PID namespace: ferry's (nothing to record), or one
 * whose init is the root (each process's IDs there recorded), every process
 * in that one. A process in a namespace that is not the tree's own is
 * refused: in ferry's it would come back with IDs it never had. */
static int check_pidns(const struct ptree *pt, bool *init, struct ferr *err)
{
	const struct ptree_proc *r = &pt->p[0];
	struct stat self;

	*init = false;
	if (stat("/proc/self/ns/pid", &self) < 0)
		return ferr_sys(err, errno, "ferry's PID namespace");
	if (r->pidns != self.st_ino) {
		if (r->ns_pid != 1)
			return ferr_new(err, EOPNOTSUPP, "process %d is in another PID namespace (as "
					"%d there) and is not its init: ferry takes a PID namespace "
					"whole, from its init", r->pid, r->ns_pid);
		*init = true;
	}
	for (size_t i = 1; i < pt->n; i++)
		if (!pt->p[i].zombie && pt->p[i].pidns != r->pidns)
			return ferr_new(err, EOPNOTSUPP, "process %d is in a PID namespace of its own "
					"below the tree's: nested PID namespaces are not dumped",
					pt->p[i].pid);
	return *init ? whole_pidns(pt, err) : 0;
}

int dump_tree_write(struct dump_tree_ctx *tc, struct img_writer *w, struct ferr *err)
{
	bool init = tc->pidns_init;
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
		tp.has_pidns_init = tp.pidns_init = init && !i;
		tp.has_ns_pid = tp.has_ns_pgid = tp.has_ns_sid = init;
		tp.ns_pid = (uint32_t)p->ns_pid;
		tp.ns_pgid = (uint32_t)p->ns_pgid;
		tp.ns_sid = (uint32_t)p->ns_sid;
		it.proc = &tp;
		ret = img_write_tree_item(w, &it, err);
	}
	for (size_t i = 0; !ret && i < tc->objs.n; i++)
		ret = img_write_tree_item(w, tc->objs.items[i], err);
	for (size_t i = 0; !ret && i < tc->ns.n; i++)
		ret = img_write_tree_item(w, tc->ns.items[i], err);
	if (!ret && tc->pty.img) {
		Ferry__TreeItem it = FERRY__TREE_ITEM__INIT;

		it.pty = tc->pty.img;
		ret = img_write_tree_item(w, &it, err);
	}
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
		if (ret && i && !target_alive(&t)) {
			/* It exited while its fds were read (a shell loop's
			 * sleep): its /proc went with it, and the freeze will
			 * not find it. */
			ferr_clear(err);
			ret = 0;
		}
	}
	return ret;
}

/* A process with a controlling terminal is a shell job: taken only with
 * --shell-job (as criu), whose restore gives it the restoring terminal;
 * or its terminal is the --orphan-pts one (checked by dump/pty.c). */
static int check_ttys(const struct ptree *pt, bool shell_job, const struct dump_pty *pty,
		      struct ferr *err)
{
	for (size_t i = 0; i < pt->n; i++) {
		const struct ptree_proc *p = &pt->p[i];

		if (!p->tty || p->zombie || (pty->img && p->tty == pty->rdev))
			continue;
		if (pty->img)
			return ferr_new(err, EOPNOTSUPP, "process %d has another controlling terminal "
					"(%u:%u) than the tree's terminal %s: --orphan-pts takes one "
					"terminal", p->pid, major(p->tty), minor(p->tty), pty->img->path);
		if (!shell_job)
			return ferr_new(err, EOPNOTSUPP, "process %d has a controlling terminal (device "
					"%u:%u): --shell-job dumps it as a shell job, restored on the "
					"terminal of the restoring ferry; --orphan-pts (criu's "
					"orphan_pts_master) a terminal whose master is outside the "
					"tree, as a container's console, restored as a new pair whose "
					"master goes to the restore's caller", p->pid, major(p->tty),
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

int dump_frozen_kill(const struct dump_frozen *f)
{
	return ptree_kill(f->pt);
}

void dump_frozen_release(const struct dump_frozen *f)
{
	ptree_release(f->pt);
}

/* Process pid's options in a tree round: its directory, and as parent its
 * own images in the parent round if it has them there. */
static int member_opts(const struct dump_opts *o, pid_t pid, bool root, struct dump_opts *mo,
		       char *dir, size_t dlen, char *parent, size_t plen, struct ferr *err)
{
	char inv[PATH_MAX];

	*mo = *o;
	mo->pid = pid;
	mo->parent_optional = !root;
	if (root)
		return 0;
	if (snprintf(dir, dlen, "%s/pid-%d", o->dir, pid) >= (int)dlen)
		return ferr_new(err, ENAMETOOLONG, "image directory for process %d", pid);
	mo->dir = dir;
	mo->parent = NULL;
	mo->leave_running = false;
	/* Asked from DIR: the process's own directory may not exist yet. */
	if (o->parent && snprintf(parent, plen, "../%s/pid-%d", o->parent, pid) < (int)plen &&
	    snprintf(inv, sizeof(inv), "%s/%s/pid-%d/" IMG_INVENTORY_NAME, o->dir, o->parent,
		     pid) < (int)sizeof(inv) && access(inv, F_OK) == 0)
		mo->parent = parent;
	return 0;
}

/* One process's round, by the job's hook if there is one; an other
 * process's images then go where the job wants them. */
static int member_round(const struct dump_opts *o, struct target *t, const struct dump_opts *mo,
			bool root, struct dump_result *r, struct ferr *err)
{
	int ret = o->member ? o->member->round(o->member->arg, t, mo, r, err)
			    : dump_round(t, mo, r, err);

	if (!ret && !root && o->member_done)
		ret = o->member_done(o->member_arg, mo->dir, err);
	return ret;
}

static void add_counts(struct dump_result *sum, const struct dump_result *r)
{
	sum->threads += r->threads;
	sum->vmas += r->vmas;
	sum->data_pages += r->data_pages;
	sum->zero_pages += r->zero_pages;
	sum->parent_pages += r->parent_pages;
	sum->skipped_pages += r->skipped_pages;
	sum->collect_ns += r->collect_ns;
	sum->copy_ns += r->copy_ns;
	sum->freeze_ns += r->freeze_ns;
	sum->tracked = sum->processes ? sum->tracked && r->tracked : r->tracked;
	sum->processes++;
}

static int dump_member(struct dump_tree_ctx *tc, struct ptree_proc *p, const struct dump_opts *o,
		       struct dump_result *sum, struct ferr *err)
{
	char dir[PATH_MAX], parent[PATH_MAX];
	struct dump_opts mo;
	struct dump_result r;
	int ret = member_opts(o, p->pid, false, &mo, dir, sizeof(dir), parent, sizeof(parent), err);

	if (ret)
		return ret;
	mo.tc = tc;
	mo.tc_root = false;
	mo.tr = NULL;
	ret = member_round(o, &p->t, &mo, false, &r, err);
	if (ret)
		return ferr_wrap(err, "process %d of the tree", p->pid);
	add_counts(sum, &r);
	return 0;
}

/* What each process's round can get ready while the tree still runs. One
 * that exits before the freeze was prepared in vain; one born meanwhile
 * gets ready inside the freeze, as every process did before. */
static void prepare_members(const struct dump_opts *o)
{
	cleanup_free pid_t *pids = NULL;
	struct ferr err;
	size_t n = 0;

	if (ptree_scan(o->pid, &pids, &n, &err))
		return;
	for (size_t i = 0; i < (o->tree ? n : !!n); i++) {
		char dir[PATH_MAX], parent[PATH_MAX];
		struct dump_opts mo;

		if (!member_opts(o, pids[i], !i, &mo, dir, sizeof(dir), parent, sizeof(parent),
				 &err))
			o->member->prepare(o->member->arg, &mo);
	}
}

int dump_tree(const struct dump_opts *o, const struct dump_handover *h, struct dump_result *res,
	      struct ferr *err)
{
	cleanup_val(ptree) struct ptree pt = { 0 };
	cleanup_val(cgfreeze) struct cgfreeze cg = { 0 };
	struct dump_tree_ctx tc = { .pt = &pt, .shell_job = o->shell_job };
	struct dump_result sum = { 0 };
	struct dump_opts ro = *o;
	uint64_t t0 = now_ns();
	int ret;

	memset(res, 0, sizeof(*res));
	ret = ptree_open(&pt, o->pid, err);
	if (!ret)
		ret = dump_ns_ext_net_pid(o->pid, &o->ns, err);
	if (!ret && o->freeze_cgroup)
		ret = cgf_open(&cg, o->freeze_cgroup, err);
	if (!ret && !o->skip_unsupported_fds)
		ret = check_early(o->pid, o->tree, o->file_locks, err);
	if (!ret)
		ret = start_dir(o->dir, err);
	if (!ret && o->member && o->member->prepare)
		prepare_members(o);
	/* The cgroup is thawed again as soon as ptrace holds the tree: no
	 * container stays frozen for the dump, or after a ferry that dies. */
	if (!ret)
		ret = o->freeze_cgroup ? ptree_freeze_cgroup(&pt, &cg, o->tree, err)
				       : ptree_freeze(&pt, o->tree, err);
	if (!ret && o->orphan_pts)
		ret = dump_pty_find(&pt, &tc.pty, err);
	if (!ret)
		ret = check_ttys(&pt, o->shell_job, &tc.pty, err);
	if (!ret)
		ret = check_pidns(&pt, &tc.pidns_init, err);
	/* A container's namespaces are dumped from its init; a process that
	 * is only in other mount or network namespaces (`ip netns exec`) is
	 * restored in the restorer's, as it always was. */
	if (!ret)
		ret = dump_ns_ext_net_check(&pt, &o->ns, err);
	if (!ret && tc.pidns_init)
		ret = dump_ns_collect(&pt, &o->ns, &tc.ns, err);
	/* An external network namespace is recorded for either: the restore
	 * joins it, whatever else it makes. */
	if (!ret)
		ret = dump_ns_ext_net_item(&o->ns, &tc.ns, err);
	if (!ret)
		ret = dump_pty_check_mount(&tc.pty, tc.ns.items, tc.ns.n, err);
	if (ret) {
		ptree_release(&pt);
		objs_free(&tc.objs);
		dump_ns_free(&tc.ns);
		dump_pty_free(&tc.pty);
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
		ro.leave_running = false;
		ret = member_round(o, &pt.p[0].t, &ro, true, res, err);
	}
	if (!ret) {
		res->threads += sum.threads;
		res->vmas += sum.vmas;
		res->data_pages += sum.data_pages;
		res->zero_pages += sum.zero_pages;
		res->parent_pages += sum.parent_pages;
		res->processes = pt.n;
		if (h && !o->leave_running) {
			/* Still frozen: it ends only once its images are safe. */
			struct dump_frozen f = { .root = &pt.p[0].t, .pt = &pt };

			ret = h->fn(h->arg, &f, err);
			res->killed = !ret;
			res->freeze_ns = now_ns() - pt.p[0].t.freeze_start_ns;
		} else if (o->leave_running) {
			res->freeze_ns = now_ns() - pt.p[0].t.freeze_start_ns;
		} else {
			/* Ended only once every image is safely on disk. */
			ptree_kill(&pt);
			res->killed = true;
		}
	}
	ptree_release(&pt);
	objs_free(&tc.objs);
	descs_free(&tc.descs);
	dump_ns_free(&tc.ns);
	dump_pty_free(&tc.pty);
	res->seconds = (now_ns() - t0) / 1e9;
	return ret;
}

bool dump_is_tree(const struct dump_opts *o)
{
	cleanup_free pid_t *pids = NULL;
	struct ferr err;
	size_t n = 0;

	return o->tree && ptree_scan(o->pid, &pids, &n, &err) == 0 && n > 1;
}

int dump_tree_pre(const struct dump_opts *o, struct dump_result *res, struct ferr *err)
{
	cleanup_free pid_t *pids = NULL;
	struct dump_result sum = { 0 };
	uint64_t t0 = now_ns();
	size_t n = 0;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = ptree_scan(o->pid, &pids, &n, err);
	if (!ret)
		ret = start_dir(o->dir, err);
	/* The others first, the root (whose inventory makes DIR complete) last. */
	for (size_t k = 1; !ret && k <= n; k++) {
		size_t i = k % n;
		cleanup_val(target) struct target t = { 0 };
		char dir[PATH_MAX], parent[PATH_MAX];
		struct dump_opts mo;
		struct dump_result r;

		ret = member_opts(o, pids[i], !i, &mo, dir, sizeof(dir), parent, sizeof(parent),
				  err);
		if (!ret)
			ret = target_open(&t, pids[i], err);
		if (!ret)
			ret = member_round(o, &t, &mo, !i, i ? &r : res, err);
		if (ret && i && (err->code == ESRCH || (t.pidfd >= 0 && !target_alive(&t)))) {
			/* Gone: the final dump will not look for it. */
			pr_info("process %d of the tree exited during the pre-dump", pids[i]);
			ferr_clear(err);
			ret = 0;
			continue;
		}
		if (ret && i)
			ferr_wrap(err, "process %d of the tree", pids[i]);
		else if (!ret)
			add_counts(&sum, i ? &r : res);
	}
	if (!ret) {
		/* The root's id and tracker name the round; counts are the tree's. */
		memcpy(sum.id, res->id, sizeof(sum.id));
		sum.tracker = res->tracker;
		*res = sum;
	}
	res->seconds = (now_ns() - t0) / 1e9;
	return ret;
}
