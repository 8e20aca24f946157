/* The cold restore of a dump with tree.img: every process validated and
 * loaded first, the shared objects made, the processes created together
 * (child.c), then each one's memory and state built as a lone process's
 * would be, and all of them let go at the end. A failure anywhere kills
 * every process created: never half a tree. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "common/log.h"
#include "restore/rst.h"
#include "restore/validate.h"

struct tree_restore {
	struct rst_tree t;
	struct rst *rs;                    /* one per process (a zombie's unused) */
	struct rst **r;
	const Ferry__TreeProc **tp;
	Ferry__TreeProc *ns;               /* tp in the tree's own PID namespace, or NULL */
	struct rst_pool pool;
	bool pool_made;
};

/* The tree's terminal whose master was outside (restore/pty.h), if any. */
static int find_pty(struct tree_restore *x, Ferry__TreeItem *const *items, size_t n,
		    struct ferr *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!items[i]->pty)
			continue;
		if (x->t.pty.img)
			return ferr_new(err, EBADMSG, "%s: tree.img has two terminals", x->t.opts->dir);
		x->t.pty.img = items[i]->pty;
	}
	return 0;
}

/* The new terminal's master to the caller, once the tree exists in its
 * namespaces and before it runs (when criu sends orphan-pts-master). */
static int hand_pty(struct tree_restore *x, struct ferr *err)
{
	const struct rst_opts *o = x->t.opts;
	int ret;

	if (!x->t.pty.img)
		return 0;
	ret = o->pty_master(o->pty_master_arg, x->t.pty.master, err);
	if (ret)
		return ferr_wrap(err, "hand over the terminal %s's master", x->t.pty.img->path);
	pr_info("the terminal %s is a new pair; its master was handed over", x->t.pty.img->path);
	return 0;
}

static void tree_restore_free(struct tree_restore *x, size_t n)
{
	if (x->r)
		rst_cow_free(&x->t);
	for (size_t i = 0; x->rs && i < n; i++)
		if (x->r[i])
			rst_free(&x->rs[i]);
		else
			rst_files_free(&x->rs[i].files);
	if (x->pool_made)
		rst_pool_close(&x->pool);
	if (x->t.pty.img && x->t.pty.master >= 0)
		close(x->t.pty.master);
	free(x->rs);
	free(x->r);
	free(x->tp);
	free(x->ns);
}

/* The PID in the tree's namespace of the process that had `pid` out here. */
static uint32_t ns_of(const struct tree_restore *x, uint32_t pid)
{
	for (size_t i = 0; i < x->t.n; i++)
		if (x->tp[i]->pid == pid)
			return x->tp[i]->ns_pid;
	return 0;
}

/* A tree that was a PID namespace of its own, its root the init: every
 * process is created with the IDs it had in there, in a new namespace with
 * the root as its init. A session or group led from outside the namespace
 * (0 in there) stays the restoring ferry's. */
static int to_ns_ids(struct tree_restore *x, struct ferr *err)
{
	size_t n = x->t.n;

	if (!x->tp[0]->pidns_init)
		return 0;
	x->ns = calloc(n, sizeof(*x->ns));
	if (!x->ns)
		return ferr_sys(err, ENOMEM, "restore");
	for (size_t i = 0; i < n; i++) {
		const Ferry__TreeProc *o = x->tp[i];
		Ferry__TreeProc *p = &x->ns[i];

		if (!o->has_ns_pid || !o->ns_pid || (!i) != (o->ns_pid == 1) ||
		    (i && o->pidns_init))
			return ferr_new(err, EBADMSG, "%s: process %u has no valid PID in the tree's "
					"namespace (%u)", x->t.opts->dir, o->pid, o->ns_pid);
		for (size_t k = 0; k < i; k++)
			if (x->tp[k]->ns_pid == o->ns_pid)
				return ferr_new(err, EBADMSG, "%s: PID %u twice in the tree's "
						"namespace", x->t.opts->dir, o->ns_pid);
		*p = *o;
		p->pid = o->ns_pid;
		p->ppid = i ? ns_of(x, o->ppid) : 0;
		p->pgid = o->ns_pgid;
		p->sid = o->ns_sid;
		p->files_with = o->files_with ? ns_of(x, o->files_with) : 0;
		p->fs_with = o->fs_with ? ns_of(x, o->fs_with) : 0;
		if (i && !p->ppid)
			return ferr_new(err, EBADMSG, "%s: the parent of process %u is not in the tree",
					x->t.opts->dir, o->pid);
	}
	for (size_t i = 0; i < n; i++) {
		x->tp[i] = &x->ns[i];
		if (x->r[i])
			x->r[i]->tp = &x->ns[i];
	}
	x->t.pidns_init = true;
	pr_info("the tree was a PID namespace of its own: restored into a new one, its root "
		"as the init");
	return 0;
}

static int load_proc(struct tree_restore *x, size_t i, const char *dir, struct img_image *root,
		     const struct kerndat *kd, size_t *files, struct ferr *err)
{
	struct rst *r = &x->rs[i];
	struct rst_check_report rep;
	char path[PATH_MAX];
	int ret = 0;

	if (i == 0) {
		r->img = root;
	} else {
		if (snprintf(path, sizeof(path), "%s/%s", dir, x->tp[i]->dir) >= (int)sizeof(path))
			return ferr_new(err, ENAMETOOLONG, "images of process %u", x->tp[i]->pid);
		ret = img_open(&r->img, path, err);
		if (!ret)
			ret = rst_validate(r->img, &rep, true, &r->files, err);
		if (!ret)
			ret = rst_vdso_fits(r->img, err);
		if (!ret)
			*files += rep.files_checked;
	}
	if (!ret)
		ret = rst_load_entries(r, err);
	if (!ret && r->proc->pid != x->tp[i]->pid)
		ret = ferr_new(err, EBADMSG, "%s: the images are of process %u, tree.img says %u",
			       r->img->path, r->proc->pid, x->tp[i]->pid);
	if (ret)
		return ferr_wrap(err, "process %u", x->tp[i]->pid);
	r->kd = kd;
	r->tp = x->tp[i];
	r->pool = &x->pool;
	r->hold_detach = true;
	return 0;
}

/* The shared memory objects leave each fd table once every process has
 * mapped them. */
static int close_shm(struct tree_restore *x, struct ferr *err)
{
	for (size_t i = 0; i < x->t.n; i++) {
		struct rst *r = x->r[i];

		if (!r || x->tp[i]->files_with)
			continue;
		for (size_t k = 0; k < x->pool.n; k++) {
			long rv;
			int ret;

			if (!x->pool.o[k].it->shm)
				continue;
			ret = rst_sys(&r->th[0], "close a shared memory object", &rv, err, __NR_close,
				      (uint64_t)x->pool.o[k].fd[0], 0, 0, 0, 0, 0);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int stage(struct tree_restore *x, const char *name, struct ferr *err)
{
	const struct rst_opts *o = x->t.opts;

	return o->stage ? o->stage(o->stage_arg, name, x->r[0]->pid, err) : 0;
}

static int build(struct tree_restore *x, struct rst_result *res, struct ferr *err)
{
	size_t n = x->t.n;
	int ret = rst_cow_plan(&x->t, err);

	if (!ret)
		ret = rst_tree_create(&x->t, err);
	/* The stubs have the area now (or nothing will). */
	rst_cow_unreserve(&x->t);

	/* The tree exists in its namespaces, nothing of it built yet: where a
	 * runtime sets them up (runc runs its prestart hooks). */
	if (!ret)
		ret = stage(x, "setup-namespaces", err);
	if (!ret)
		ret = stage(x, "post-setup-namespaces", err);
	if (!ret)
		ret = hand_pty(x, err);

	for (size_t i = 0; !ret && i < n; i++)
		if (x->r[i])
			ret = rst_build_memory_on(x->r[i], err);
	if (!ret)
		ret = close_shm(x, err);
	for (size_t i = 0; !ret && i < n; i++)
		if (x->r[i])
			ret = rst_build_state(x->r[i], err);
	if (!ret)
		ret = stage(x, "pre-resume", err);
	/* All built: children first, so a parent never sees one stopped. */
	for (size_t i = n; !ret && i-- > 0;)
		if (x->r[i])
			ret = rst_detach(x->r[i], err);
	if (ret)
		return ret;
	rst_tree_release_init(&x->t, res);
	res->pid = x->r[0]->pid;
	for (size_t i = 0; i < n; i++)
		if (x->r[i])
			res->threads += (uint32_t)x->r[i]->nr_threads;
	return 0;
}

int rst_restore_tree(const struct rst_opts *opts, struct rst_result *res,
		     struct img_image *root, struct rst_files *root_files,
		     Ferry__TreeItem *const *items, size_t nitems, const struct rst_ns *ns,
		     const struct kerndat *kd, struct ferr *err)
{
	struct tree_restore x = { 0 };
	size_t n = 0, files = 0;
	int ret = 0, maxfd = 2;
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < nitems; i++)
		n += items[i]->proc != NULL;
	x.rs = calloc(n, sizeof(*x.rs));
	x.r = calloc(n, sizeof(*x.r));
	x.tp = calloc(n, sizeof(*x.tp));
	if (!x.rs || !x.r || !x.tp) {
		tree_restore_free(&x, 0);
		img_close(root);
		return ferr_sys(err, ENOMEM, "restore");
	}
	for (size_t i = 0, k = 0; i < nitems; i++)
		if (items[i]->proc)
			x.tp[k++] = items[i]->proc;
	for (size_t i = 0; i < n; i++) {
		x.rs[i] = (struct rst){ .opts = opts, .res = res, .procfd = -1 };
		x.rs[i].files.mode = opts->files;
		x.rs[i].files.view = ns->view.rootfd >= 0 ? &ns->view : NULL;
		if (!x.tp[i]->zombie)
			x.r[i] = &x.rs[i];
	}
	/* The root's files were checked with its images: what was seen is
	 * what its fds must open. */
	x.rs[0].files = *root_files;
	memset(root_files, 0, sizeof(*root_files));
	if (!x.r[0]) {
		img_close(root);
		ret = ferr_new(err, EBADMSG, "%s: the root process is a zombie", opts->dir);
	}
	x.t = (struct rst_tree){ .opts = opts, .n = n, .r = x.r, .tp = x.tp, .pool = &x.pool,
				 .same_pid = true, .tty_fd = -1, .ns = ns,
				 .pty = { .master = -1, .master_at = -1, .slave_at = -1 } };
	if (!ret)
		ret = find_pty(&x, items, nitems, err);
	for (size_t i = 0; !ret && i < n; i++)
		if (x.r[i])
			ret = load_proc(&x, i, opts->dir, root, kd, &files, err);
	for (size_t k = 0; !ret && k < opts->nr_inherit; k++) {
		/* The external network namespace's is the root's to join. */
		bool found = ns->net_key && !strcmp(ns->net_key, opts->inherit[k].key);

		for (size_t i = 0; i < n && !found; i++)
			for (size_t j = 0; x.r[i] && j < x.r[i]->nr_fds && !found; j++)
				found = x.r[i]->fds[j]->path &&
					!strcmp(x.r[i]->fds[j]->path, opts->inherit[k].key);
		if (!found)
			pr_warn("--inherit-fd fd[%d]:%s: no fd of the dump was %s", opts->inherit[k].fd,
				opts->inherit[k].key, opts->inherit[k].key);
	}
	if (!ret)
		ret = to_ns_ids(&x, err);
	if (!ret)
		ret = rst_tree_check(&x.t, err);
	res->validate_ns += now_ns() - t0;
	for (size_t i = 0; !ret && i < n; i++)
		for (size_t k = 0; x.r[i] && k < x.r[i]->nr_fds; k++)
			if ((int)x.r[i]->fds[k]->fd > maxfd)
				maxfd = (int)x.r[i]->fds[k]->fd;
	if (!ret) {
		x.pool_made = true;
		ret = rst_pool_create(&x.pool, items, nitems, maxfd + 1, err);
	}
	if (!ret) {
		pr_info("tree of %zu process(es), %zu shared object(s), %zu more files checked, "
			"loaded in %.3f s", n, x.pool.n, files, (now_ns() - t0) / 1e9);
		ret = build(&x, res, err);
		if (ret) {
			if (n == 1)
				ferr_wrap(err, "new process %u (killed)", x.tp[0]->pid);
			else
				ferr_wrap(err, "tree of %zu processes under %u (every one killed)", n,
					  x.tp[0]->pid);
			rst_tree_kill(&x.t);
		}
		res->same_pid = x.t.same_pid;
	}
	tree_restore_free(&x, n);
	return ret;
}
