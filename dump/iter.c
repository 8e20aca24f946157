/* The iterative pre-copy loop (see iter.h). */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fault.h"
#include "common/log.h"
#include "dump/iter.h"
#include "dump/throttle.h"

#define ITER_SHRINK 0.9     /* a round must copy less than this share of the last */
#define ITER_THROTTLE_STEP 0.2
#define ITER_THROTTLE_MAX 0.8

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

int iter_run(const struct iter_opts *o, struct iter_result *res, iter_round_cb cb, void *arg,
	     struct ferr *err)
{
	uint64_t ps = (uint64_t)ferry_page_size(), t0 = now_ns(), prev_collect = 0;
	uint64_t copy_bytes = 0, copy_ns = 0, fixed_ns = 0, prev_bytes = 0;
	double hook_s = 0, send_bw = 0;
	char dir[PATH_MAX], parent[64];
	struct tracker tr;
	struct throttle th;
	struct target t;
	double level = 0;
	unsigned k;
	int ret;

	memset(res, 0, sizeof(*res));
	tracker_init(&tr, o->track);
	ret = forget_old_dump(o->base.dir, err);
	if (!ret)
		ret = target_open(&t, o->base.pid, err);
	if (ret) {
		tracker_fini(&tr);
		return ret;
	}
	throttle_init(&th, t.pid, t.pidfd);

	for (k = 1; !ret && k <= o->max_rounds; k++) {
		struct dump_opts d = o->base;
		struct dump_result r;
		struct iter_round row = { .n = k, .throttle = level };
		uint64_t start = now_ns();

		snprintf(dir, sizeof(dir), "%s/pre-%u", o->base.dir, k);
		snprintf(parent, sizeof(parent), "../pre-%u", k - 1);
		d.dir = dir;
		d.pre = true;
		d.parent = k > 1 ? parent : NULL;
		d.tr = &tr;
		ret = dump_round(&t, &d, &r, err);
		if (ret) {
			ferr_wrap(err, "round %u", k);
			break;
		}
		row.pages = r.data_pages;
		row.parent_pages = r.parent_pages;
		row.bytes = r.data_pages * ps;
		row.seconds = r.seconds;
		row.freeze_ns = r.freeze_ns;
		copy_bytes += row.bytes;
		copy_ns += r.copy_ns;
		row.bandwidth = copy_ns ? copy_bytes / (copy_ns / 1e9) : 0;
		if (r.freeze_ns > fixed_ns)
			fixed_ns = r.freeze_ns;
		/* A migration sends the round (and waits for the destination)
		 * before the next one starts: that time is part of the round. */
		if (o->round_done) {
			uint64_t h0 = now_ns();

			ret = o->round_done(o->hook_arg, k, dir, err);
			if (ret)
				break;
			hook_s = (now_ns() - h0) / 1e9;
			send_bw = hook_s > 0 ? row.bytes / hook_s : 0;
		}
		if (k > 1 && r.tracked) {
			/* The dirty set is taken at the start of a round: the
			 * interval between two starts is what the target wrote in. */
			double interval = (start - prev_collect) / 1e9;
			double next_bytes;

			row.dirty_rate = interval > 0 ? row.bytes / interval : 0;
			next_bytes = row.dirty_rate * (row.seconds + hook_s);
			row.predicted_ns = fixed_ns + r.collect_ns +
					   (row.bandwidth > 0 ? next_bytes / row.bandwidth * 1e9 : 0) +
					   (send_bw > 0 ? next_bytes / send_bw * 1e9 : 0);
		}
		prev_collect = start;
		res->total_bytes += row.bytes;
		ret = add_round(res, &row, err);
		if (ret)
			break;
		if (cb)
			cb(&row, arg);
		if (k == 1 && fault_hit("kill-target-after-round")) {
			/* Dies between rounds, its tracking armed, for certain. */
			struct pollfd pfd = { .fd = t.pidfd, .events = POLLIN };
			syscall(SYS_pidfd_send_signal, t.pidfd, SIGKILL, NULL, 0);
			poll(&pfd, 1, 5000);
		}

		if (k > 1 && r.tracked && row.predicted_ns <= o->downtime_limit_ns) {
			res->stop_reason = "the predicted freeze fits the downtime limit";
		} else if (k > 2 && row.bytes >= prev_bytes * ITER_SHRINK) {
			if (o->auto_converge && level < ITER_THROTTLE_MAX) {
				level += ITER_THROTTLE_STEP;
				ret = throttle_set(&th, level, err);
				res->throttle_method = th.method;
			} else {
				res->stop_reason = o->auto_converge ? "rounds stopped shrinking at the "
								      "highest throttle"
								    : "rounds stopped shrinking";
			}
		}
		prev_bytes = row.bytes;
		if (res->stop_reason)
			break;
	}
	if (!ret && !res->stop_reason)
		res->stop_reason = "the round limit";
	/* The final dump: never with the target held stopped by the throttle. */
	throttle_fini(&th);
	if (!ret) {
		struct dump_opts d = o->base;

		snprintf(parent, sizeof(parent), "pre-%zu", res->nr);
		d.pre = false;
		d.parent = parent;
		d.tr = &tr;
		d.hold = o->handover != NULL;
		ret = dump_round(&t, &d, &res->final, err);
		if (ret)
			ferr_wrap(err, "final dump");
		else
			res->total_bytes += res->final.data_pages * ps;
		if (!ret && o->handover) {
			/* Still frozen: the freeze lasts until the hand-over ends. */
			ret = o->handover(o->hook_arg, &t, err);
			res->final.freeze_ns = now_ns() - t.freeze_start_ns;
			res->final.killed = !ret;
			if (ret)
				target_release(&t);
		}
	}
	if (ret && !target_alive(&t) && err->code != ESRCH) {
		ferr_wrap(err, "process %d exited", t.pid);
		err->code = ESRCH;
	}
	/* Closing ferry's only reference unregisters the tracking: nothing of
	 * it stays in the target. */
	tracker_fini(&tr);
	target_close(&t);
	res->seconds = (now_ns() - t0) / 1e9;
	return ret;
}
