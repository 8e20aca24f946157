/* The iterative pre-copy loop (see iter.h). */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cancel.h"
#include "common/fault.h"
#include "common/log.h"
#include "dump/converge.h"
#include "dump/iter.h"
#include "dump/throttle.h"
#include "proc/tree.h"

void iter_result_free(struct iter_result *r)
{
	free(r->rounds);
	r->rounds = NULL;
	r->nr = 0;
}

/* A directory from an earlier run must not look like this run's result. */
static int forget_old_dump(const char *dir, struct ferr *err)
{
	char path[PATH_MAX];

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ferr_sys(err, errno, "create image directory `%s`", dir);
	snprintf(path, sizeof(path), "%s/" IMG_INVENTORY_NAME, dir);
	if (unlink(path) < 0 && errno != ENOENT)
		return ferr_sys(err, errno, "remove old %s", path);
	return 0;
}

static int add_round(struct iter_result *res, const struct iter_round *r, struct ferr *err)
{
	struct iter_round *n = realloc(res->rounds, (res->nr + 1) * sizeof(*n));

	if (!n)
		return ferr_sys(err, ENOMEM, "rounds");
	res->rounds = n;
	res->rounds[res->nr++] = *r;
	return 0;
}

/* The processes pre-copied, each with the tracker that follows it from
 * round to round. A PID given to a new process is another member. */
struct iter_proc {
	pid_t pid;
	uint64_t start;
	struct tracker tr;
};

struct iter_set {
	const struct tracker_ops *ops;
	struct iter_proc *p;
	size_t n;
};

static void set_free(struct iter_set *s)
{
	/* Closing ferry's only reference unregisters the tracking: nothing of
	 * it stays in the targets. */
	for (size_t i = 0; i < s->n; i++)
		tracker_fini(&s->p[i].tr);
	free(s->p);
	s->p = NULL;
	s->n = 0;
}
DEFINE_CLEANUP_VAL(iter_set, set_free)

static struct tracker *set_tracker(struct iter_set *s, const struct target *t, struct ferr *err)
{
	struct iter_proc *n;
	uint64_t start = 0;

	if (ptree_start_time(t->procfd, &start) < 0) {
		ferr_new(err, ESRCH, "process %d exited", t->pid);
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (s->p[i].pid != t->pid)
			continue;
		if (s->p[i].start == start)
			return &s->p[i].tr;
		/* The PID went to a new process: it starts untracked. */
		tracker_fini(&s->p[i].tr);
		s->p[i].start = start;
		tracker_init(&s->p[i].tr, s->ops);
		return &s->p[i].tr;
	}
	n = realloc(s->p, (s->n + 1) * sizeof(*n));
	if (!n) {
		ferr_sys(err, ENOMEM, "trackers");
		return NULL;
	}
	s->p = n;
	n = &s->p[s->n++];
	n->pid = t->pid;
	n->start = start;
	tracker_init(&n->tr, s->ops);
	return &n->tr;
}

/* A process's round (of a tree round, or the root alone) with its tracker. */
static int set_round(void *arg, struct target *t, const struct dump_opts *mo,
		     struct dump_result *r, struct ferr *err)
{
	struct dump_opts o = *mo;

	o.tr = set_tracker(arg, t, err);
	return o.tr ? dump_round(t, &o, r, err) : -err->code;
}

/* One pre-dump round into DIR/pre-k on top of pre-(k-1): its measurements
 * go to *in for the model, its counts to *row. */
static int pre_round(const struct iter_opts *o, struct target *t, struct iter_set *set,
		     unsigned k, struct iter_round *row, struct conv_round *in, struct ferr *err)
{
	const struct dump_member_ops mops = { set_round, set, NULL };
	uint64_t ps = (uint64_t)ferry_page_size();
	char dir[PATH_MAX], parent[64];
	struct dump_opts d = o->base;
	struct dump_result r;
	int ret;

	snprintf(dir, sizeof(dir), "%s/pre-%u", o->base.dir, k);
	snprintf(parent, sizeof(parent), "../pre-%u", k - 1);
	d.dir = dir;
	d.pre = true;
	d.parent = k > 1 ? parent : NULL;
	d.member = &mops;
	in->start_ns = now_ns();
	/* The tree as it is now: a child forked since the last round joins
	 * with a tracker of its own. */
	ret = dump_is_tree(&d) ? dump_tree_pre(&d, &r, err) : set_round(set, t, &d, &r, err);
	if (ret)
		return ferr_wrap(err, "round %u", k);
	row->pages = r.data_pages;
	row->parent_pages = r.parent_pages;
	row->bytes = r.data_pages * ps;
	row->seconds = r.seconds;
	row->freeze_ns = r.freeze_ns;
	in->tracked = r.tracked;
	in->bytes = row->bytes;
	in->copy_ns = r.copy_ns;
	in->freeze_ns = r.freeze_ns;
	in->collect_ns = r.collect_ns;
	in->seconds = r.seconds;
	/* A migration sends the round (and waits for the destination)
	 * before the next one starts: that time is part of the round. */
	if (o->round_done) {
		uint64_t h0 = now_ns();

		ret = o->round_done(o->hook_arg, k, dir, err);
		if (ret)
			return ret;
		in->send_s = (now_ns() - h0) / 1e9;
	}
	pr_debug("round %u model input: tracked %d bytes %" PRIu64 " start_ns %" PRIu64
		 " copy_ns %" PRIu64 " freeze_ns %" PRIu64 " collect_ns %" PRIu64
		 " seconds %.9g send_s %.9g", k, in->tracked, in->bytes, in->start_ns, in->copy_ns,
		 in->freeze_ns, in->collect_ns, in->seconds, in->send_s);
	return 0;
}

/* The final dump on top of the last round: never with the target held
 * stopped by the throttle (the caller ended it). */
static int final_round(const struct iter_opts *o, struct iter_set *set, struct iter_result *res,
		       struct ferr *err)
{
	const struct dump_member_ops mops = { set_round, set, NULL };
	const struct dump_handover h = { o->handover, o->hook_arg };
	struct dump_opts d = o->base;
	char parent[64];
	int ret;

	snprintf(parent, sizeof(parent), "pre-%zu", res->nr);
	d.pre = false;
	d.parent = parent;
	d.member = &mops;
	/* A tree round, of one process too (its pipes and sockets are
	 * tree.img's objects): frozen as one, each process on top of its last
	 * round, still frozen through the hand-over. */
	ret = dump_tree(&d, o->handover ? &h : NULL, &res->final, err);
	if (ret)
		return ferr_wrap(err, "final dump");
	res->total_bytes += res->final.data_pages * (uint64_t)ferry_page_size();
	return 0;
}

/* Pre-dump rounds until the model says stop; the throttle it asks for is
 * applied between them. */
static int pre_rounds(const struct iter_opts *o, struct target *t, struct iter_set *set,
		      struct iter_result *res, iter_round_cb cb, void *arg, struct ferr *err)
{
	const struct conv_params p = { .downtime_limit_ns = o->downtime_limit_ns,
				       .max_rounds = o->max_rounds,
				       .auto_converge = o->auto_converge };
	cleanup_val(throttle) struct throttle th;
	cleanup_free struct conv_round *in = NULL;
	double level = 0;
	int ret = 0;

	throttle_init(&th, t->pid, t->pidfd);
	for (unsigned k = 1; k <= o->max_rounds; k++) {
		struct iter_round row = { .n = k, .throttle = level };
		struct conv_round *n = realloc(in, k * sizeof(*n));
		struct conv_estimate e;
		struct conv_decision d;

		if (!n)
			return ferr_sys(err, ENOMEM, "rounds");
		in = n;
		in[k - 1] = (struct conv_round){ 0 };
		ret = cancel_check(err);
		if (ret)
			return ferr_wrap(err, "before round %u", k);
		ret = pre_round(o, t, set, k, &row, &in[k - 1], err);
		if (ret)
			return ret;
		e = converge_predict(in, k);
		row.dirty_rate = e.dirty_rate;
		row.bandwidth = e.bandwidth;
		row.predicted_ns = e.predicted_ns;
		res->total_bytes += row.bytes;
		ret = add_round(res, &row, err);
		if (ret)
			return ret;
		if (cb)
			cb(&row, arg);
		if (k == 1 && fault_hit("kill-target-after-round")) {
			/* Dies between rounds, its tracking armed, for certain. */
			struct pollfd pfd = { .fd = t->pidfd, .events = POLLIN };
			syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL, 0);
			poll(&pfd, 1, 5000);
		}
		d = converge_decide(&p, in, k, &e, level);
		if (d.raise) {
			level = d.level;
			ret = throttle_set(&th, level, err);
			res->throttle_method = th.method;
			if (ret)
				return ret;
		}
		if (d.stop_reason) {
			res->stop_reason = d.stop_reason;
			break;
		}
	}
	if (!res->stop_reason)
		res->stop_reason = CONV_REASON_CAP;
	return 0;
}

int iter_run(const struct iter_opts *o, struct iter_result *res, iter_round_cb cb, void *arg,
	     struct ferr *err)
{
	cleanup_val(iter_set) struct iter_set set = { .ops = o->track };
	uint64_t t0 = now_ns();
	struct target t;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = forget_old_dump(o->base.dir, err);
	if (!ret)
		ret = target_open(&t, o->base.pid, err);
	if (ret)
		return ret;
	ret = pre_rounds(o, &t, &set, res, cb, arg, err);
	if (!ret && (ret = cancel_check(err)))
		ferr_wrap(err, "before the final dump");
	if (!ret)
		ret = final_round(o, &set, res, err);
	if (ret && !target_alive(&t) && err->code != ESRCH) {
		ferr_wrap(err, "process %d exited", t.pid);
		err->code = ESRCH;
	}
	set_free(&set);
	target_close(&t);
	res->seconds = (now_ns() - t0) / 1e9;
	return ret;
}
