/* Dump jobs: the choices a command makes by name, turned into a round or
 * an iterative dump (see job.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/job.h"
#include "dump/keeper.h"
#include "proc/backend.h"
#include "proc/cgfreeze.h"

int dump_choose_backends(struct dump_opts *o, const struct dump_choice *c,
			 const struct kerndat *kd, struct ferr *err)
{
	const struct backend_desc *b;
	char why[256];

	b = backend_choose(backend_family("layout"), c->layout, kd, why, sizeof(why));
	if (!b || !(o->layout = layout_ops_by_name(b->name)))
		return ferr_new(err, EINVAL, "%s", why);
	b = backend_choose(backend_family("pages"), c->pages, kd, why, sizeof(why));
	if (!b || !(o->pages = pages_ops_by_name(b->name)))
		return ferr_new(err, EINVAL, "%s", why);
	o->use_pidfd = kd_has(kd, KD_PROCESS_VM_PIDFD);
	/* How page data leaves a frozen target: read into a buffer (auto: the
	 * faster in bench/b_dump.sh and b_migrate.sh), or through a pipe the
	 * target vmsplices into. process-vmsplice is refused by name where the
	 * kernel lacks it (everywhere: it was never merged). */
	b = backend_choose(backend_family("reader"), c->reader, kd, why, sizeof(why));
	if (!b)
		return ferr_new(err, EINVAL, "%s", why);
	if (!strcmp(b->name, "process-vmsplice"))
		return ferr_new(err, ENOSYS, "--reader process-vmsplice is not built: no kernel "
				"has the system call");
	o->splice = !strcmp(b->name, "vmsplice");
	return 0;
}

const struct tracker_ops *dump_choose_tracker(const char *choice, const char *prev,
					      const struct kerndat *kd, pid_t pid,
					      struct ferr *err)
{
	const struct backend_family *f = backend_family("tracker");
	const struct backend_desc *b;
	char why[256];

	if (strcmp(choice, "auto") == 0 && prev && tracker_ops_by_name(prev))
		return tracker_ops_by_name(prev);
	if (strcmp(choice, "auto") == 0) {
		struct target t;
		struct ferr e;
		bool uses = false;

		if (target_open(&t, pid, &e) == 0)
			uses = target_uses_uffd(&t);
		target_close(&t);
		for (size_t i = 0; i < f->n; i++) {
			if (!backend_usable(&f->list[i], kd))
				continue;
			if (uses && strcmp(f->list[i].name, "uffd-wp") == 0) {
				pr_info("process %d uses userfaultfd itself: not tracking with uffd-wp",
					pid);
				continue;
			}
			return tracker_ops_by_name(f->list[i].name);
		}
		ferr_new(err, ENOTSUP, "no dirty tracker is usable here");
		return NULL;
	}
	b = backend_choose(f, choice, kd, why, sizeof(why));
	if (!b) {
		ferr_new(err, EINVAL, "%s", why);
		return NULL;
	}
	return tracker_ops_by_name(b->name);
}

/* Pick up the previous round's tracking: soft-dirty bits live in the kernel,
 * hashes in the previous images, a userfaultfd in its keeper. */
static void resume_tracker(struct tracker *tr, const struct img_image *prev, pid_t pid)
{
	struct ferr e;
	int fd;

	if (!prev || !prev->inv->tracker || strcmp(prev->inv->tracker, tr->ops->name))
		return;
	if (tr->ops != &track_uffd_ops) {
		tr->armed = true;
		return;
	}
	fd = keeper_take(prev->inv->id.data, pid, &e);
	if (fd >= 0) {
		tr->uffd = fd;
		tr->armed = true;
		return;
	}
	if (fd == -ENOENT)
		pr_warn("the uffd-wp tracking of the previous images is gone (its keeper exited, "
			"or the process was tracked by a round that failed): copying every page");
	else
		pr_warn("%s: copying every page", e.msg);
}

/* What a process's round got ready before its tree was frozen. */
struct prepared {
	pid_t pid;
	struct img_image *prev;
	struct tracker tr;
};

/* The choices a job made, for each process's round. */
struct job_ctx {
	const struct dump_choice *c;
	const struct kerndat *kd;
	/* A final dump's userfaultfds, closed once the tree is let go:
	 * closing one un-protects every page it tracked (5 ms for 256 MiB
	 * here), which is no work for the freeze. */
	int *later;
	size_t nr_later;
	struct prepared *prep;
	size_t nr_prep;
};

static void close_later(struct job_ctx *j)
{
	for (size_t i = 0; i < j->nr_later; i++)
		close(j->later[i]);
	free(j->later);
	j->later = NULL;
	j->nr_later = 0;
}

/* A final dump's tracker: its userfaultfd to close_later. */
static void keep_for_later(struct job_ctx *j, struct tracker *tr)
{
	int *v;

	if (tr->uffd < 0)
		return;
	v = realloc(j->later, (j->nr_later + 1) * sizeof(*v));
	if (!v)
		return;
	j->later = v;
	j->later[j->nr_later++] = tr->uffd;
	tr->uffd = -1;
}

/* A round's previous images (o->parent) and its tracker: the one those
 * images were tracked by, resumed. */
static int get_ready(struct job_ctx *j, const struct dump_opts *o, struct img_image **prev,
		     struct tracker *tr, struct ferr *err)
{
	int ret;

	tracker_init(tr, NULL);
	ret = dump_open_parent(o, prev, err);
	if (ret || !(o->pre || *prev))
		return ret;
	tr->ops = dump_choose_tracker(j->c->track, *prev ? (*prev)->inv->tracker : NULL, j->kd,
				      o->pid, err);
	if (!tr->ops) {
		img_close(*prev);
		*prev = NULL;
		return -err->code;
	}
	resume_tracker(tr, *prev, o->pid);
	return 0;
}

/* Before the freeze: reading the previous images of a 256 MiB process
 * and taking its tracker from the keeper took 10-18 ms, all of it frozen. */
static void tracked_prepare(void *arg, const struct dump_opts *mo)
{
	struct job_ctx *j = arg;
	struct prepared *p = realloc(j->prep, (j->nr_prep + 1) * sizeof(*p));
	struct ferr err;

	if (!p)
		return;
	j->prep = p;
	p = &p[j->nr_prep];
	p->pid = mo->pid;
	if (get_ready(j, mo, &p->prev, &p->tr, &err)) {
		pr_debug("process %d: %s (tried again once frozen)", mo->pid, err.msg);
		return;
	}
	j->nr_prep++;
}

/* What was got ready for pid, taken out of the list; false if nothing. */
static bool take_prepared(struct job_ctx *j, pid_t pid, struct prepared *out)
{
	for (size_t i = 0; i < j->nr_prep; i++)
		if (j->prep[i].pid == pid) {
			*out = j->prep[i];
			j->prep[i] = j->prep[--j->nr_prep];
			return true;
		}
	return false;
}

/* What was got ready for a process the dump did not reach. */
static void drop_prepared(struct job_ctx *j)
{
	for (size_t i = 0; i < j->nr_prep; i++) {
		img_close(j->prep[i].prev);
		keep_for_later(j, &j->prep[i].tr);
		tracker_fini(&j->prep[i].tr);
	}
	free(j->prep);
	j->prep = NULL;
	j->nr_prep = 0;
}

/* One process's round with its tracker: the one its previous images
 * (mo->parent) were tracked by, resumed; a pre-dump's userfaultfd is left to
 * a keeper for the next round. */
static int tracked_round(void *arg, struct target *t, const struct dump_opts *mo,
			 struct dump_result *r, struct ferr *err)
{
	struct job_ctx *j = arg;
	struct dump_opts o = *mo;
	struct prepared p;
	int ret;

	if (!take_prepared(j, t->pid, &p)) {
		ret = get_ready(j, &o, &p.prev, &p.tr, err);
		if (ret)
			return ret;
	}
	if (p.tr.ops)
		o.tr = &p.tr;
	o.parent_img = p.prev; /* dump_round's to close */
	pr_debug("%s process %d%s%s", o.pre ? "pre-dump" : "dump", o.pid,
		 p.tr.ops ? " with --track " : "", p.tr.ops ? p.tr.ops->name : "");
	ret = dump_round(t, &o, r, err);
	/* Its images are complete by now (committed): a keeper that does not
	 * start, an interrupt included, only makes the next round copy every
	 * page, as a lost keeper does. */
	if (!ret && o.pre && p.tr.uffd >= 0) {
		struct ferr kerr;

		if (keeper_spawn(r->id, t->pid, t->pidfd, p.tr.uffd, &kerr))
			pr_warn("%s: the next round of this chain will copy every page", kerr.msg);
	}
	r->tracker = p.tr.ops ? p.tr.ops->name : NULL;
	if (!o.pre)
		keep_for_later(j, &p.tr);
	tracker_fini(&p.tr);
	return ret;
}

int dump_job_round(struct dump_opts *o, const struct dump_choice *c, const struct kerndat *kd,
		   const struct dump_handover *h, struct dump_result *r, struct ferr *err)
{
	struct job_ctx j = { .c = c, .kd = kd };
	struct dump_member_ops mops = { tracked_round, &j, NULL };
	struct target t;
	bool tree;
	int ret;

	if (!o->pre) {
		/* A final dump is a tree round, of one process too: frozen as
		 * one, its pipes, sockets and shared memory in tree.img, each
		 * process on top of its own previous images. */
		pr_info("dump %s process %d with --layout %s --pages %s", o->tree ? "the tree of" :
			"only", o->pid, o->layout->name, o->pages->name);
		mops.prepare = tracked_prepare;
		o->member = &mops;
		ret = dump_tree(o, h, r, err);
		o->member = NULL;
		drop_prepared(&j);
		close_later(&j);
		return ret;
	}
	/* A pre-dump records no namespaces, but a wrong external one fails the
	 * chain now rather than at the dump. */
	ret = dump_ns_ext_net_pid(o->pid, &o->ns, err);
	if (ret)
		return ret;
	/* A pre-dump freezes nothing as a whole: the freezer is only checked
	 * here, so that a wrong path fails now rather than at the dump. */
	if (o->freeze_cgroup) {
		cleanup_val(cgfreeze) struct cgfreeze cg = { 0 };

		ret = cgf_open(&cg, o->freeze_cgroup, err);
		if (ret)
			return ret;
		pr_info("freeze cgroup %s: checked; a pre-dump does not freeze it", cg.path);
	}
	tree = dump_is_tree(o);
	pr_info("pre-dump %s process %d with --layout %s --pages %s", tree ? "the tree of" : "only",
		o->pid, o->layout->name, o->pages->name);
	if (tree) {
		/* Each process on top of its own previous images. */
		o->member = &mops;
		ret = dump_tree_pre(o, r, err);
		o->member = NULL;
		return ret;
	}
	ret = target_open(&t, o->pid, err);
	if (!ret)
		ret = tracked_round(&j, &t, o, r, err);
	target_close(&t);
	return ret;
}

int dump_job_iterative(struct iter_opts *io, const struct dump_choice *c,
		       const struct kerndat *kd, struct iter_result *r, iter_round_cb cb,
		       void *arg, struct ferr *err)
{
	memset(r, 0, sizeof(*r));
	io->track = dump_choose_tracker(c->track, NULL, kd, io->base.pid, err);
	if (!io->track)
		return -err->code;
	pr_info("iterative dump of process %d with --track %s, downtime limit %.0f ms",
		io->base.pid, io->track->name, io->downtime_limit_ns / 1e6);
	return iter_run(io, r, cb, arg, err);
}
