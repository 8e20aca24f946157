/* `ferry dump --iterative`: pre-dump rounds into DIR/pre-1, DIR/pre-2, ...
 * while the target runs, each copying only what the previous one saw
 * written, then the final frozen dump into DIR on top of the last round.
 *
 * Convergence. After round k (k >= 2) ferry knows the bytes the target
 * wrote since round k-1 collected its dirty set, so its dirty rate R, and
 * the copy bandwidth B over all rounds so far. Stopping now, the final dump
 * would copy about R * (duration of round k) bytes, so the predicted freeze
 * is F + R * T_k / B, F being the fixed part measured so far (the tracker's
 * brief freeze and its scan). A migration adds the time its round took to
 * send (and the destination to take it) to T_k, and that many bytes at the
 * send rate seen to the freeze. Rounds stop when that fits the downtime limit,
 * when a round no longer shrinks (less than 10% smaller than the one
 * before), or at the round cap. With auto-converge a round that does not
 * shrink raises the throttle instead, by 20 points up to 80%. The model is
 * dump/converge.h, pure functions of the rounds' measurements. */
#ifndef FERRY_DUMP_ITER_H
#define FERRY_DUMP_ITER_H

#include "dump/dump.h"

struct iter_opts {
	struct dump_opts base;         /* pid, dir, leave_running, layout, pages, ... */
	const struct tracker_ops *track;
	uint64_t downtime_limit_ns;
	unsigned max_rounds;           /* pre-dump rounds at most */
	bool auto_converge;
	/* A migration's hooks, or NULL. round_done: round k's images are in
	 * dir (send them); an error ends the iteration, the target running on.
	 * handover: the final dump is in base.dir and the target is still
	 * frozen; 0 means the hook ended the target, an error resumes it. */
	int (*round_done)(void *arg, unsigned k, const char *dir, struct ferr *err);
	int (*handover)(void *arg, const struct dump_frozen *f, struct ferr *err);
	void *hook_arg;
};

struct iter_round {
	unsigned n;
	uint64_t pages, parent_pages;  /* copied; recorded as in-parent */
	uint64_t bytes;
	double seconds;
	double dirty_rate;             /* bytes/s written by the target (0 in round 1) */
	double bandwidth;              /* bytes/s copied, all rounds so far */
	double predicted_ns;           /* freeze if the final dump came now (0 in round 1) */
	double throttle;               /* level during the round */
	uint64_t freeze_ns;            /* brief freezes the round needed */
};

struct iter_result {
	struct iter_round *rounds;
	size_t nr;
	struct dump_result final;
	const char *stop_reason;
	const char *throttle_method;   /* NULL if never throttled */
	double seconds;
	uint64_t total_bytes;
};

typedef void (*iter_round_cb)(const struct iter_round *r, void *arg);

int __must_check iter_run(const struct iter_opts *o, struct iter_result *res, iter_round_cb cb,
			  void *arg, struct ferr *err);
void iter_result_free(struct iter_result *r);
DEFINE_CLEANUP_VAL(iter_result, iter_result_free)

#endif
