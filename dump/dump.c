/* One dump round. A pre-dump reads the layout and the pages while the target
 * runs (a tracker may freeze it for a moment, and says so); the final dump
 * freezes it, writes its complete state, then ends it or lets it go on.
 * With a parent, pages the tracker saw unwritten since the parent's round and
 * that the parent holds are recorded as in-parent instead of copied. Every
 * failure resumes the target as it was and leaves no inventory behind. */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common/cancel.h"
#include "common/fault.h"
#include "common/log.h"
#include "dump/dump.h"
#include "dump/fileid.h"
#include "dump/fdata.h"
#include "proc/fds.h"
#include "proc/locks.h"
#include "proc/shared.h"
#include "proc/state.h"
#include "proc/tree.h"
#include "dump/vmsplice.h"
#include "dump/pageread.h"
#include "dump/split.h"

/* As criu: locks are taken only when asked (--file-locks), for a restore
 * takes them again and could block or fail where another holds them. */
int dump_refuse_locks(const struct fd_list *l, pid_t pid, bool allowed, struct ferr *err)
{
	const Ferry__Fd *f = locks_first(l->fds, l->n);

	if (!f || allowed)
		return 0;
	return ferr_new(err, EOPNOTSUPP, "process %d holds a file lock through fd %u (`%s`): "
			"--file-locks dumps the locks and restore takes them again", pid, f->fd,
			f->path ? f->path : "?");
}

static int refuse_unsupported_fds(const struct fd_list *l, pid_t pid, struct ferr *err)
{
	char desc[1024];

	if (!l->nr_unsupported)
		return 0;
	fds_describe_unsupported(l, desc, sizeof(desc));
	return ferr_new(err, EOPNOTSUPP, "process %d has file descriptors ferry cannot dump yet: "
			"%s (use --skip-unsupported-fds to dump without them)", pid, desc);
}

/* Refuse before freezing, so an unsupported fd costs the target nothing;
 * the list is taken again once frozen, as it may have changed. */
static int write_vmas(struct target *t, struct img_writer *w, const struct vma_list *vl,
		      const struct dump_state *st, struct filesum_cache *fs,
		      struct dump_tree_ctx *tc, struct ferr *err)
{
	dump_fileid_live(fs, t, vl);
	for (size_t i = 0; i < vl->n; i++) {
		const struct vma *v = &vl->v[i];
		Ferry__Vma e;
		char path[64];
		int ret;

		vma_to_entry(v, &e);
		e.madv = madv_list_find(&st->madv, v->start);
		e.has_madv = e.madv != 0;
		if (v->kind == FERRY__VMA_KIND__VMA_FILE) {
			snprintf(path, sizeof(path), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
			e.file = state_file_id(t->procfd, path);
			dump_fileid_fill(fs, t, path, e.file);
		}
		ret = 0;
		/* Shared anonymous memory is an object other processes may map. */
		if (tc && v->kind == FERRY__VMA_KIND__VMA_ANON && (v->flags & MAP_SHARED))
			ret = dump_tree_shm(tc, t, &e, err);
		if (!ret)
			ret = img_write_vma(w, &e, err);
		if (e.file)
			ferry__file_id__free_unpacked(e.file, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

/* What the page path needs, set up before any freeze: a fresh buffer's first
 * touch is a page fault (on this VM about 7 us a page: 30 ms for the 16 MiB
 * of batches), so for a frozen dump the writer thread faults them in while
 * the target is being frozen and its state read, off the reader's path. */
struct page_path {
	struct pages_ctx pc;
	struct pgread x;
	struct vmsp vs;
	struct page_run *runs;
	bool pc_open, x_init;
};

static int page_path_init(struct page_path *pp, struct target *t, const struct dump_opts *o,
			  struct img_writer *w, struct ferr *err)
{
	int ret;

	memset(pp, 0, sizeof(*pp));
	pp->runs = malloc(PAGES_BATCH * sizeof(*pp->runs));
	if (!pp->runs)
		return ferr_sys(err, ENOMEM, "page runs");
	ret = pages_ctx_open(&pp->pc, t->procfd, err);
	if (ret)
		return ret;
	pp->pc_open = true;
	pp->x_init = true;
	/* A live round touches only what it copies; a frozen one must not
	 * fault in its buffers while the target waits. */
	ret = pgread_init(&pp->x, t, o->use_pidfd, w, PGREAD_BUF_DEFAULT, !o->pre, err);
	pp->x.live = o->pre;
	return ret;
}

/* --reader vmsplice on a frozen target: the pages go by the target's own
 * vmsplice. If the pipe cannot be made, the buffer does the job. */
static void page_path_splice(struct page_path *pp, struct target *t, struct img_writer *w)
{
	struct ferr e;

	if (!img_pages_can_splice(w)) {
		pr_info("the page sink needs the data in a buffer (zstd, or TLS in user space): "
			"pages are not spliced");
		return;
	}
	ferr_clear(&e);
	if (vmsp_open(&pp->vs, t, &e)) {
		pr_warn("pages go through a buffer: no pipe from process %d: %s", t->pid, e.msg);
		vmsp_close(&pp->vs, &e);
		return;
	}
	pr_info("pages leave through a %zu-byte pipe the process vmsplices into", pp->vs.pipe_size);
	pp->x.vs = &pp->vs;
}

/* Take the pipe out of the target (it is still frozen). */
static int page_path_unsplice(struct page_path *pp, int ret, struct ferr *err)
{
	struct ferr ignored;
	int r2 = vmsp_close(&pp->vs, ret ? &ignored : err);

	pp->x.vs = NULL;
	return ret ? ret : r2;
}

static void page_path_fini(struct page_path *pp)
{
	if (pp->x_init)
		pgread_fini(&pp->x);
	if (pp->pc_open)
		pages_ctx_close(&pp->pc);
	free(pp->runs);
	memset(pp, 0, sizeof(*pp));
}

/* The split's runs go to the page reader, for the VMA being read. */
struct to_reader {
	struct pgread *x;
	const struct vma *v;
};

static int emit_to_reader(void *arg, const struct page_run *runs, size_t n, struct ferr *err)
{
	struct to_reader *a = arg;

	return pgread_runs(a->x, a->v, runs, n, err);
}

/* Read every dumped page and write it. With leave_running the target is
 * released as soon as its memory is read, while the last batch is written.
 * Only what dirty (with pimg) says was written is copied. */
static int write_pages(struct target *t, struct page_path *pp, const struct vma_list *vl,
		       const struct dump_opts *o, const struct range_list *dirty,
		       const struct img_image *pimg, struct dump_result *res, struct ferr *err)
{
	struct pgread *x = &pp->x;
	struct to_reader to = { .x = x };
	struct split s;
	int ret = 0;

	split_init(&s, dirty, pimg, emit_to_reader, &to);
	for (size_t i = 0; !ret && i < vl->n; i++) {
		const struct vma *v = &vl->v[i];
		enum pages_policy pol = pages_policy_of(v);
		uint64_t pos = v->start;

		to.v = v;
		while (!ret && pos < v->end) {
			size_t n;

			ret = cancel_check(err);
			if (!ret)
				ret = o->pages->next(&pp->pc, v, pol, &pos, pp->runs, &n, err);
			for (size_t k = 0; !ret && k < n; k++)
				ret = split_run(&s, &pp->runs[k], err);
			if (!ret)
				ret = split_flush(&s, err);
		}
	}
	if (!ret)
		ret = pgread_read_all(x, err);
	ret = page_path_unsplice(pp, ret, err);
	pr_debug("pages read from the target");
	if (!ret && o->leave_running && !o->pre) {
		target_release(t);
		res->freeze_ns = t->freeze_ns;
	}
	if (!ret)
		ret = pgread_flush(x, err);
	res->data_pages = x->data_pages - x->skipped_pages;
	res->zero_pages = x->zero_pages;
	res->parent_pages = x->parent_pages;
	res->skipped_pages = x->skipped_pages;
	return ret;
}

/* ---- the round ------------------------------------------------------------ */

int dump_open_parent(const struct dump_opts *o, struct img_image **pimg, struct ferr *err)
{
	cleanup_free char *path = NULL;
	int ret;

	*pimg = NULL;
	if (!o->parent)
		return 0;
	if (o->parent[0] == '/')
		return ferr_new(err, EINVAL, "--prev-images-dir is relative to -D DIR (as in "
				"criu), not `%s`", o->parent);
	/* The parent is relative to DIR, which must exist for the path to resolve. */
	if (mkdir(o->dir, 0700) < 0 && errno != EEXIST)
		return ferr_sys(err, errno, "create image directory `%s`", o->dir);
	if (asprintf(&path, "%s/%s", o->dir, o->parent) < 0)
		return ferr_sys(err, ENOMEM, "parent path");
	ret = img_open(pimg, path, err);
	if (ret)
		return ferr_wrap(err, "previous images `%s`", path);
	return 0;
}

/* The parent round must be of this very process, not of an earlier one
 * whose PID it got: a tracker's record of what was written (soft-dirty bits
 * especially) means nothing across processes. A tree's other process just
 * goes without a parent; the process asked for is refused. */
static int check_parent_proc(const struct dump_opts *o, const struct target *t, uint64_t start,
			     struct img_image **pimg, struct img_writer_opts *wo, struct ferr *err)
{
	const Ferry__Inventory *inv = (*pimg)->inv;

	if (!inv->has_start_time || inv->start_time == start)
		return 0;
	if (!o->parent_optional)
		return ferr_new(err, ESRCH, "process %d is not the process of the previous images "
				"`%s` (it started later: the PID was reused)", t->pid, o->parent);
	pr_info("process %d is new since the previous round (PID reused): dumped in full",
		t->pid);
	img_close(*pimg);
	*pimg = NULL;
	wo->parent = NULL;
	return 0;
}

/* Ask the tracker what changed since the parent's round (dirty gets it and
 * *known says so), then arm it if this round is where tracking starts. */
static int track_round(struct target *t, const struct dump_opts *o, const struct vma_list *vl,
		       const struct img_image *pimg, struct range_list *dirty, bool *known,
		       struct dump_result *res, struct ferr *err)
{
	struct tracker *tr = o->tr;
	uint64_t t0 = now_ns();
	int ret = 0;

	*known = false;
	if (!tr)
		return 0;
	tr->freeze_ns = 0;
	if (tr->armed && pimg) {
		const char *was = pimg->inv->tracker;

		if (!was || strcmp(was, tr->ops->name)) {
			pr_warn("the previous images were not tracked by %s (%s): copying every page",
				tr->ops->name, was ? was : "no tracker");
		} else {
			tr->parent = pimg;
			ret = tr->ops->collect(tr, t, vl, dirty, err);
			tr->parent = NULL;
			*known = !ret;
		}
	}
	if (!ret && !tr->armed && o->pre)
		ret = tr->ops->arm(tr, t, vl, err);
	res->collect_ns = now_ns() - t0;
	return ret;
}

static int write_process(struct target *t, struct img_writer *w, const struct dump_state *st,
			 const struct fd_list *fl, struct ferr *err)
{
	int ret = img_write_process(w, st->proc, err);

	for (size_t i = 0; !ret && i < st->nr_threads; i++)
		ret = img_write_thread(w, st->threads[i], err);
	for (size_t i = 0; !ret && i < fl->n; i++) {
		ret = dump_fd_data(t, w, fl->fds[i], err);
		if (!ret)
			ret = img_write_fd(w, fl->fds[i], err);
	}
	if (!ret && fault_hit("kill-target-mid-dump")) {
		/* Half the images are written; the target dies for certain
		 * (its pidfd turns readable) before its memory is read. */
		struct pollfd pfd = { .fd = t->pidfd, .events = POLLIN };
		syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL, 0);
		poll(&pfd, 1, 5000);
	}
	return ret;
}

/* What a round holds until its end, released in order by round_fini. */
struct round {
	struct dump_state st;
	struct vma_list vl;
	struct fd_list fl;
	struct range_list dirty;
	struct img_image *pimg;
	struct img_writer *w;
	struct page_path pp;
	struct filesum_cache fs;   /* content checksums of the files behind it */
};

/* The round's steps; whatever it took is released by the caller. */
static int round_steps(struct target *t, const struct dump_opts *o, struct round *rd,
		       struct dump_result *res, uint64_t t0, struct ferr *err)
{
	struct img_writer_opts wo = {
		.kind = o->pre ? FERRY__DUMP_KIND__DUMP_PRE : FERRY__DUMP_KIND__DUMP_FULL,
		.root_pid = (uint32_t)o->pid,
		.parent = o->parent,
		.sink = o->sink,
		.tree = o->tc && o->tc_root,
	};
	bool known = false;
	uint64_t tc;
	int ret;

	if (o->tr) {
		wo.tracker = o->tr->ops->name;
		wo.page_hashes = o->tr->ops == &track_hash_ops;
	}
	/* The parent chain is read and checked, and the writer and the page
	 * path set up, before any freeze. */
	ret = cancel_check(err);
	if (!ret && ptree_start_time(t->procfd, &wo.start_time) < 0)
		ret = ferr_new(err, ESRCH, "process %d exited before its dump", t->pid);
	if (!ret && !rd->pimg)
		ret = dump_open_parent(o, &rd->pimg, err);
	if (!ret && rd->pimg)
		ret = check_parent_proc(o, t, wo.start_time, &rd->pimg, &wo, err);
	if (!ret)
		ret = dump_fileid_seed(&rd->fs, rd->pimg, err);
	/* The writer takes the parent's id and hashes from it, not from
	 * reading the chain again (8 ms for 256 MiB, frozen). */
	wo.parent_img = rd->pimg;
	if (!ret)
		ret = img_writer_create(&rd->w, o->dir, &wo, err);
	if (!ret)
		ret = page_path_init(&rd->pp, t, o, rd->w, err);
	if (!ret && !o->pre)
		dump_fileid_prehash(&rd->fs, t, o->layout);
	if (!ret && !o->pre) {
		/* The tree's processes were all frozen together before. */
		res->threads = t->nr_th;
		pr_debug("frozen %zu threads after %.1f ms", t->nr_th, (now_ns() - t0) / 1e6);
		ret = state_collect(t, &rd->st, err);
		pr_debug("state collected at %.1f ms", (now_ns() - t0) / 1e6);
	}
	if (!ret)
		ret = cancel_check(err);
	if (!ret)
		ret = o->layout->read(t->procfd, &rd->vl, err);
	if (!ret && !o->pre)
		ret = fds_collect(t, &rd->fl, err);
	if (!ret && o->tc)
		ret = dump_tree_note(o->tc, t, &rd->fl, err);
	if (!ret && !o->pre && !o->skip_unsupported_fds)
		ret = refuse_unsupported_fds(&rd->fl, t->pid, err);
	if (!ret && !o->pre)
		ret = dump_refuse_locks(&rd->fl, t->pid, o->file_locks, err);
	if (!ret && !o->pre)
		dump_fileid_state(&rd->fs, t, &rd->st, &rd->fl, &rd->vl);
	if (!ret)
		pr_debug("layout and fds at %.1f ms", (now_ns() - t0) / 1e6);
	if (!ret)
		ret = cancel_check(err);
	if (!ret)
		ret = track_round(t, o, &rd->vl, rd->pimg, &rd->dirty, &known, res, err);
	if (ret)
		return ret;
	res->vmas = rd->vl.n;
	res->tracked = known;
	pr_debug("layout (%zu VMAs)%s read at %.1f ms", rd->vl.n,
		 known ? " and dirty set" : "", (now_ns() - t0) / 1e6);

	ret = cancel_check(err);
	if (!ret && !o->pre)
		ret = write_process(t, rd->w, &rd->st, &rd->fl, err);
	if (!ret)
		ret = write_vmas(t, rd->w, &rd->vl, &rd->st, &rd->fs, o->tc, err);
	pr_debug("%" PRIu64 " files hashed (%.1f MiB, %.1f ms), %" PRIu64 " from the cache",
		 rd->fs.hashed_files, rd->fs.hashed_bytes / 1048576.0, rd->fs.hash_ns / 1e6,
		 rd->fs.hits);
	if (ret)
		return ret;
	/* The pipe appears in the target only now, after its fds were read. */
	if (!o->pre && o->splice)
		page_path_splice(&rd->pp, t, rd->w);
	tc = now_ns();
	ret = write_pages(t, &rd->pp, &rd->vl, o, known ? &rd->dirty : NULL, rd->pimg, res, err);
	res->copy_ns = now_ns() - tc;
	if (ret)
		return ret;
	pr_debug("pages written at %.1f ms", (now_ns() - t0) / 1e6);

	/* A live snapshot let the process go once its memory was read; the
	 * fsyncs of the commit need not be inside the freeze either. */
	/* The last safe point: once committed, the round stands. */
	ret = cancel_check(err);
	if (ret)
		return ret;
	if (o->tc && o->tc_root)
		ret = dump_tree_write(o->tc, rd->w, err);
	if (ret)
		return ret;
	if (o->pre)
		res->freeze_ns = o->tr ? o->tr->freeze_ns : 0;
	else if (!o->leave_running)
		res->freeze_ns = now_ns() - t->freeze_start_ns;
	ret = img_writer_commit(rd->w, o->pre ? 0 : res->freeze_ns, err);
	pr_debug("committed at %.1f ms", (now_ns() - t0) / 1e6);
	if (ret)
		return ret;
	memcpy(res->id, img_writer_id(rd->w), IMG_ID_SIZE);
	return 0;
}

int dump_round(struct target *t, const struct dump_opts *o, struct dump_result *res,
	       struct ferr *err)
{
	struct round rd = { .pimg = o->parent_img };
	uint64_t t0 = now_ns();
	int ret;

	memset(res, 0, sizeof(*res));
	/* A final round runs inside a tree round (dump_tree), which froze it. */
	if (!o->pre && !o->tc) {
		img_close(rd.pimg);
		return ferr_new(err, EINVAL, "process %d: a final dump is a tree round", o->pid);
	}
	ret = round_steps(t, o, &rd, res, t0, err);
	/* Whatever call noticed it, a dead target is the error to report. */
	if (ret && t->pidfd >= 0 && !target_alive(t) && !strstr(err->msg, "exited")) {
		ferr_wrap(err, "process %d exited during the %s", o->pid,
			  o->pre ? "pre-dump" : "dump");
		err->code = ESRCH;
	}
	/* In this order: the pipe leaves the target while it is still
	 * frozen, and the workers stop before the writer goes. */
	ret = page_path_unsplice(&rd.pp, ret, err);
	/* A final round's process stays frozen: its tree round lets it go. */
	if (ret || o->pre)
		target_release(t);
	page_path_fini(&rd.pp);
	if (rd.w)
		img_writer_free(rd.w);
	img_close(rd.pimg);
	res->seconds = (now_ns() - t0) / 1e9;
	state_free(&rd.st);
	vma_list_free(&rd.vl);
	fds_free(&rd.fl);
	range_list_free(&rd.dirty);
	filesum_cache_free(&rd.fs);
	return ret;
}
