/* A dump job as a command, the service or a migration asks for it: backends
 * and tracker chosen by name from the feature probe, the previous round's
 * tracking picked up, one round or the iterative loop run, and a pre-dump's
 * userfaultfd left to a keeper for the next command. Nothing here prints. */
#ifndef FERRY_DUMP_JOB_H
#define FERRY_DUMP_JOB_H

#include "common/kerndat.h"
#include "dump/dump.h"
#include "dump/iter.h"

/* Backends by name ("auto" or one of `ferry check`'s). */
struct dump_choice {
	const char *layout, *pages, *reader, *track;
};

/* Set o's layout, pages and reader backends (and use_pidfd) from c. */
int __must_check dump_choose_backends(struct dump_opts *o, const struct dump_choice *c,
				      const struct kerndat *kd, struct ferr *err);
/* The tracker: the caller's choice, else the previous images' (prev, or
 * NULL), else the first usable (uffd-wp is passed over for a process that
 * uses userfaultfd itself). NULL with err set if there is none. */
const struct tracker_ops *dump_choose_tracker(const char *choice, const char *prev,
					      const struct kerndat *kd, pid_t pid,
					      struct ferr *err);

/* One round of o: a pre-dump (o->pre) or the final dump, on top of
 * o->parent (relative to o->dir) if set. A pre-dump, and a dump on top of a
 * previous round, run with a tracker (c->track); a pre-dump's userfaultfd
 * goes to a keeper. A final dump that ends the target goes through h if
 * given. */
int __must_check dump_job_round(struct dump_opts *o, const struct dump_choice *c,
				const struct kerndat *kd, const struct dump_handover *h,
				struct dump_result *r, struct ferr *err);
/* The iterative loop with the tracker c->track; io->base holds the rest. */
int __must_check dump_job_iterative(struct iter_opts *io, const struct dump_choice *c,
				    const struct kerndat *kd, struct iter_result *r,
				    iter_round_cb cb, void *arg, struct ferr *err);

#endif
