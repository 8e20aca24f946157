/* The dump engine as functions, so that the CLI, the iterative loop and a
 * later service call the same code. One round is either a pre-dump (memory
 * only, read while the target runs) or the final dump (frozen, complete). */
#ifndef FERRY_DUMP_DUMP_H
#define FERRY_DUMP_DUMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"
#include "proc/layout.h"
#include "proc/pages.h"
#include "proc/target.h"
#include "dump/ns.h"
#include "dump/track.h"

struct fd_list;

struct dump_opts {
	pid_t pid;
	const char *dir;
	bool pre;                  /* pre-dump round: memory only, the target keeps running */
	bool leave_running;
	bool skip_unsupported_fds;
	bool file_locks;           /* --file-locks: dump the locks the process holds */
	bool shell_job;            /* --shell-job: a controlling terminal is allowed */
	bool orphan_pts;           /* --orphan-pts: a terminal whose master is outside the
				      tree (a container's console) is dumped (dump/pty.h) */
	bool use_pidfd;            /* kernel has PROCESS_VM_PIDFD */
	const struct layout_ops *layout;
	const struct pages_ops *pages;
	const char *parent;        /* the previous round, relative to dir (as criu's
				      --prev-images-dir), or NULL */
	bool parent_optional;      /* a tree's other process: a parent round of another
				      process (PID reused) is dropped, not refused */
	struct img_image *parent_img; /* that round already opened by the caller, handed
					 over (dump_round closes it), or NULL */
	struct tracker *tr;        /* dirty tracker kept across rounds, or NULL */
	struct img_pages_sink *sink;  /* page data goes there (a page server), not to
					 DIR/pages.img; or NULL */
	bool splice;               /* frozen rounds: pages leave through a pipe the target
				      vmsplices into (--reader vmsplice), not a buffer */
	bool tree;                 /* PID and all its descendants (--tree) */
	const char *freeze_cgroup; /* a final dump freezes the tree through this cgroup's
				      freezer first (proc/cgfreeze.h), or NULL: ptrace alone */
	struct dump_ns_opts ns;    /* a tree with namespaces of its own: external mounts... */
	/* A tree round: how each process's round is run (dump/job.c and
	 * iter.c give it its tracker), or NULL for dump_round as it is; */
	const struct dump_member_ops *member;
	/* and what follows each other process's committed round (a migration
	 * sends its images before the next one's pages), or NULL. */
	int (*member_done)(void *arg, const char *dir, struct ferr *err);
	void *member_arg;
	struct dump_tree_ctx *tc;  /* set by dump/tree.c for each process of a tree round, */
	bool tc_root;              /* the root's (it writes tree.img last) */
};

struct dump_result {
	size_t threads, vmas;
	uint64_t data_pages, zero_pages, parent_pages, skipped_pages;
	uint64_t freeze_ns;        /* final dump: the freeze; pre-dump: brief tracker freezes */
	uint64_t collect_ns;       /* asking the tracker what was written */
	uint64_t copy_ns;          /* reading and writing the pages */
	double seconds;
	bool killed;
	bool tracked;              /* a dirty set was known: only it was copied */
	size_t processes;          /* a tree round: processes dumped (zombies included) */
	const char *tracker;       /* the tracker's name, or NULL (set by dump/job.c) */
	uint8_t id[IMG_ID_SIZE];   /* of the dump written */
};

/* One process's round of a tree round: mo is its own options (pid, dir,
 * and parent set); t is open (and, in a final round, frozen). */
struct dump_member_ops {
	int (*round)(void *arg, struct target *t, const struct dump_opts *mo,
		     struct dump_result *r, struct ferr *err);
	void *arg;
	/* A final dump, before the tree is frozen: for each process in it
	 * then, what its round can get ready while it still runs (its
	 * previous images, its tracker); or NULL. */
	void (*prepare)(void *arg, const struct dump_opts *mo);
};

/* What a final dump leaves frozen for its hand-over: every process of the
 * tree it took (one, with --tree=no or without children). */
struct ptree;
struct dump_frozen {
	struct target *root;       /* pt's first */
	struct ptree *pt;
};
/* SIGKILL every process of f: frozen, none of them runs again. 0, or the
 * first failure (-errno). */
int dump_frozen_kill(const struct dump_frozen *f);
/* Let every process of f go (children first). */
void dump_frozen_release(const struct dump_frozen *f);

/* A final dump's hand-over: the target stays frozen after the round until
 * fn has put its images somewhere safe; fn returns 0 having ended it
 * (dump_frozen_kill), or an error, and the target resumes. */
struct dump_handover {
	int (*fn)(void *arg, const struct dump_frozen *f, struct ferr *err);
	void *arg;
};

/* A tree round (dump/tree.c): the tree frozen as one, each process's
 * images in DIR/pid-PID, the root's in DIR with tree.img. With o->parent
 * (relative to DIR), each other process's parent is the same process's
 * images in the parent round (../PARENT/pid-PID), where it has them. With
 * h, the tree stays frozen for h->fn. */
struct dump_tree_ctx;
struct img_writer;
int __must_check dump_tree(const struct dump_opts *o, const struct dump_handover *h,
			   struct dump_result *res, struct ferr *err);
/* Does o take a tree of more than one process (o->tree and PID has
 * descendants now)? */
bool dump_is_tree(const struct dump_opts *o);
/* A pre-dump round of a tree (o->pre), while it runs: each process found
 * now, in DIR/pid-PID and the root in DIR, parents as dump_tree's. A
 * process other than the root that exits meanwhile is left out. */
int __must_check dump_tree_pre(const struct dump_opts *o, struct dump_result *res,
			       struct ferr *err);
/* dump/tree.c, for round_steps: a process's objects noted, the root's
 * tree.img written. */
int __must_check dump_tree_note(struct dump_tree_ctx *tc, struct target *t, struct fd_list *fl,
				struct ferr *err);
int __must_check dump_tree_shm(struct dump_tree_ctx *tc, struct target *t, Ferry__Vma *v,
			       struct ferr *err);
int __must_check dump_tree_write(struct dump_tree_ctx *tc, struct img_writer *w,
				 struct ferr *err);

/* Refuse l's locks unless allowed (--file-locks). */
int __must_check dump_refuse_locks(const struct fd_list *l, pid_t pid, bool allowed,
				   struct ferr *err);

/* The previous round named by o->parent (relative to o->dir, which is made
 * if new), opened and checked; *pimg NULL without one. */
int __must_check dump_open_parent(const struct dump_opts *o, struct img_image **pimg,
				  struct ferr *err);

/* One round against a target already open: a pre-dump (not frozen), or a
 * final dump as one process of a tree round (dump_tree: frozen, and ended
 * or let go by it). */
int __must_check dump_round(struct target *t, const struct dump_opts *o, struct dump_result *res,
			    struct ferr *err);

#endif
