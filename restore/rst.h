/* Internal to restore/: the state of one restore, shared by its steps.
 * child.c creates the stopped child, mem.c rebuilds its address space (and
 * has fill.c write the pages), task.c its threads and kernel state;
 * restore.c and warm.c run them in order. Every step acts in the child
 * through sys.c alone, which calls nothing else of restore/. */
#ifndef FERRY_RESTORE_RST_H
#define FERRY_RESTORE_RST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "proc/inject.h"
#include "images/img.h"
#include "restore/restore.h"
#include "restore/ns.h"
#include "restore/pty.h"
#include "restore/validate.h"

struct rst_thread {
	const Ferry__Thread *img;  /* as dumped */
	pid_t tid;                 /* in the restored process */
	struct inj inj;            /* injection context, valid once the thread exists */
};

/* Capability sets as 64-bit masks. */
struct rst_caps {
	uint64_t eff, prm, inh, bnd, amb;
};

/* Who asked for the restore: what the restored process may get at most. */
struct rst_caller {
	uid_t uid[3];              /* real, effective, saved */
	gid_t gid[3];
	gid_t *groups;
	size_t ngroups;
	struct rst_caps caps;
};

#define RST_GROUPS_MAX 1024    /* supplementary groups restore sets (scratch space) */

/* objs.c: the objects of tree.img, made by ferry and inherited by every
 * process of the tree at fd numbers from base up. */
struct rst_obj {
	uint64_t id;
	const Ferry__TreeItem *it;
	int fd[2];                 /* pipe: read, write; socket: [0] (and its lost peer);
				      FIFO: an O_RDWR opener; shm: a memfd */
};

struct rst_pool {
	struct rst_obj *o;
	size_t n;
	int base, top;             /* every object fd is in [base, top] */
	/* For rst_pool_fill: the PID each process had at the dump ([i].dumped)
	 * and has now (a message's sender is named by the one it has now). */
	const struct rst_pid_map { pid_t dumped, now; } *pids;
	size_t nr_pids;
};

int rst_pool_create(struct rst_pool *p, Ferry__TreeItem *const *items, size_t n, int base,
		    struct ferr *err);
int rst_pool_fill(struct rst_pool *p, struct ferr *err);  /* queued data, once the tree exists */
int rst_pool_fd(const struct rst_pool *p, const Ferry__Fd *f);  /* -1: not an object's */
int rst_pool_shm_fd(const struct rst_pool *p, uint64_t id);
void rst_pool_close(struct rst_pool *p);

struct rst {
	const struct rst_opts *opts;
	struct rst_caller caller;
	const struct kerndat *kd;  /* the feature probe's answers */
	struct rst_result *res;
	struct img_image *img;
	Ferry__Process *proc;
	Ferry__Thread **threads_img;
	size_t nr_threads;
	Ferry__Fd **fds;
	size_t nr_fds;
	struct rst_files files;    /* what validation found at each path: opened later, each
				      must still be that file (rst_file_is) */
	struct img_fdata fdata;    /* fdata.img mapped, for memfds and deleted files */

	pid_t pid;                 /* the child; 0 until created */
	int procfd;                /* /proc/PID of the child */
	struct rst_thread *th;     /* [0] is the main thread */
	uint64_t scratch;          /* our RW pages in the child */
	size_t scratch_size;
	size_t xsave_size;         /* this CPU's NT_X86_XSTATE size */

	/* A process of a tree: its place, the shared objects, and the
	 * detach left to the tree (all processes go at once). */
	const Ferry__TreeProc *tp;
	const struct rst_pool *pool;
	bool hold_detach;

	/* cow.c: the private VMAs this process's stub holds, filled, at a
	 * place of their own when ferry takes it over (inherited from its
	 * parent's stub, or filled by its own for its children), and the
	 * area all such places lie in. */
	const struct rst_cow **cow;
	size_t nr_cow;
	uint64_t cow_lo, cow_hi;
};

/* One private anonymous VMA a parent and its children had copy-on-write:
 * its owner's stub maps it at tmp and fills it with the owner's pages
 * before it forks; each descendant that has the same VMA inherits it, and
 * gets only the pages in which it differs from the owner. */
struct rst_cow {
	uint64_t start, end;              /* as dumped */
	uint64_t tmp;                     /* in the stubs */
	const struct rst *owner;
};

/* The processes of one restore, created together (child.c): parents fork
 * their children, with their PIDs, sessions, groups and shared fd tables. */
struct rst_tree {
	const struct rst_opts *opts;
	size_t n;
	struct rst **r;                   /* per process; NULL for a zombie */
	const Ferry__TreeProc **tp;       /* per process; [0] the root */
	const struct rst_pool *pool;      /* or NULL */
	bool same_pid;                    /* out: every PID as dumped */
	pid_t init;                       /* --pid-ns: the namespace's init (ours, traced) */
	bool pidns_init;                  /* the root is the init of a new PID namespace; tp
					     hold the IDs in it (restore/tree.c) */
	/* Open file descriptions several fds share (spawn.c): the process
	 * `owner` (an ancestor of every holder, or the holder) opens each as
	 * r's fd f, at the stubs' errfd + 1 + its index, before it forks. */
	struct rst_desc {
		uint64_t desc;
		size_t owner, holders;
		const struct rst *r;
		const Ferry__Fd *f;
	} *descs;
	size_t nr_descs;
	int tty_fd;                       /* --shell-job: ferry's terminal, above every fd; or -1 */
	int *inherit_fd;                  /* opts->inherit's fds, moved above every fd */
	const struct rst_ns *ns;          /* the tree's own namespaces (restore/ns.h) */
	struct rst_pty pty;               /* its terminal whose master was outside (pty.h) */
	/* cow.c: the shared VMAs, and ferry's reservation of their area
	 * (inherited by the stubs, given up once they exist). */
	struct rst_cow *cow;
	size_t nr_cow;
	void *cow_area;
	size_t cow_len;
};

/* cow.c. Plan the VMAs the tree's stubs pass on to their children (none
 * found, or no room: nothing shared, no error), and reserve their area in
 * ferry; give the reservation up; free the plan. */
int rst_cow_plan(struct rst_tree *t, struct ferr *err);
void rst_cow_unreserve(struct rst_tree *t);
void rst_cow_free(struct rst_tree *t);
/* In the stub of process i, before it forks: its own VMAs for its
 * children mapped and filled. NULL, or what failed. */
const char *rst_cow_premap(const struct rst_tree *t, size_t i, char *why, size_t len);
/* The shared VMA of r at exactly [start, end), or NULL. */
const struct rst_cow *rst_cow_held(const struct rst *r, uint64_t start, uint64_t end);

/* spawn.c: the whole tree, every live process stopped and seized, its fds,
 * cwd, umask, session and group in place; zombies exited. On error nothing
 * is left (every process killed and reaped). */
int rst_tree_create(struct rst_tree *t, struct ferr *err);

/* child.c, the stubs' side, for spawn.c: clone3 with the PID want (0: any)
 * and flags; a stub's life (process i of t, errors to errfd); the life of
 * --pid-ns's init (forks the root, then execs `ferry __pidns-init`). */
pid_t rst_clone_pid(pid_t want, uint64_t flags);
void __attribute__((noreturn)) rst_stub_main(const struct rst_tree *t, size_t i, int errfd);
void __attribute__((noreturn)) rst_ns_init_main(struct rst_tree *t, int go_rd, int err_wr);
/* tree.c: the cold restore of a dump with tree.img (root's ownership
 * passes to it). */
int rst_restore_tree(const struct rst_opts *opts, struct rst_result *res,
		     struct img_image *root, struct rst_files *root_files,
		     Ferry__TreeItem *const *items, size_t nitems, const struct rst_ns *ns,
		     const struct kerndat *kd, struct ferr *err);
/* child.c: reject what a tree cannot be created as before anything is made. */
int rst_tree_check(const struct rst_tree *t, struct ferr *err);
/* spawn.c: every process of t that is ferry's child or tracee killed and
 * reaped (a PID the tree was to get may be someone else's). */
void rst_tree_kill(struct rst_tree *t);
/* spawn.c, --pid-ns: the namespace's init let go once the tree is built (res->ns_init). */
void rst_tree_release_init(struct rst_tree *t, struct rst_result *res);

#define RST_SCRATCH_PAGES 4

/* restore.c: the steps, shared by the cold restore and the warm one
 * (warm.c). build_memory: the stopped child, injection set up in it, its
 * address space and pages as r->img has them; build_state: mm fields,
 * threads, kernel state, registers, and the child let go. */
/* process, threads, fds; the image's credentials checked against the caller's */
int rst_load_entries(struct rst *r, struct ferr *err);
int rst_build_memory(struct rst *r, struct ferr *err);
/* The same for a child created already (rst_tree_create). */
int rst_build_memory_on(struct rst *r, struct ferr *err);
int rst_build_state(struct rst *r, struct ferr *err);
void rst_kill_child(struct rst *r);
void rst_free(struct rst *r);   /* r->procfd -1 when there is none */
DEFINE_CLEANUP_VAL(rst, rst_free)

/* spawn.c: create the child of a one-process restore (PID as dumped where
 * free), let it set up its fds, cwd, umask and session, and wait for its
 * first ptrace stop. */
int rst_child_create(struct rst *r, struct ferr *err);

/* child.c: the open(2) flags an fd is re-opened with. */
int rst_reopen_flags(const Ferry__Fd *f);

/* fdkind.c: fds that are kernel objects (eventfd, timerfd, signalfd, epoll,
 * inotify, memfd, deleted files). load: fdata.img mapped (rst_load_entries);
 * open: one fd in the child, before its first stop; epoll: every epoll
 * interest list, in the child once all its fds are in place. */
bool rst_fdkind_owns(const Ferry__Fd *f);
int rst_fdkind_load(struct rst *r, struct ferr *err);
int rst_fdkind_open(const struct rst *r, const Ferry__Fd *f, struct ferr *err);
int rst_fdkind_epoll(const struct rst *r, struct ferr *err);
/* The memfd or deleted file of fds a deleted-file mapping v maps, or NULL. */
const Ferry__Fd *rst_fdkind_backing(Ferry__Fd *const *fds, size_t n, const Ferry__Vma *v);

/* mem.c (with the scratch pages mapped: rst_scratch_map) */
int rst_mm_map(struct rst *r, const Ferry__Vma *v, struct ferr *err); /* one VMA, files closed */
int rst_mm_protect(struct rst *r, struct ferr *err); /* every VMA to its dumped protection */
int rst_mm_clear(struct rst *r, struct ferr *err);    /* ours out (scratch kept), vdso moved */
int rst_mm_build(struct rst *r, struct ferr *err);    /* VMAs, pages, protections */
int rst_mm_fields(struct rst *r, struct ferr *err);   /* brk, arg/env, auxv, exe */
int rst_vdso_fits(const struct img_image *img, struct ferr *err);

/* fill.c: the features the page filler uses, probed into a kd (not the
 * whole probe: it forks a traced child). */
struct kerndat;
void rst_probe(struct kerndat *kd);

/* fill.c: write every page of the chain into the child's mapped VMAs. */
int rst_fill_pages(struct rst *r, struct ferr *err);

/* task.c */
int rst_threads_create(struct rst *r, struct ferr *err);
int rst_process_state(struct rst *r, struct ferr *err);  /* handlers, rlimits, creds, signals */
int rst_finish(struct rst *r, struct ferr *err);          /* registers, masks, detach */
int rst_detach(struct rst *r, struct ferr *err);          /* (when hold_detach held it back) */

/* pstate.c: after creds, madvise flags, THP, subreaper, pdeathsig, timers
 * (refusing what it cannot restore first); in rst_finish once the scratch
 * pages are gone, no_new_privs and seccomp, the last calls in the child. */
int rst_pstate_check(struct rst *r, struct ferr *err);  /* before the child exists */
int rst_pstate_set(struct rst *r, struct ferr *err);
int rst_pstate_seccomp(struct rst *r, struct ferr *err);

/* creds.c */
int rst_caller_get(struct rst_caller *who, struct ferr *err);
void rst_caller_free(struct rst_caller *who);
/* The image's capability sets, those it leaves out empty (bounding: full). */
void rst_creds_caps(const Ferry__Creds *c, struct rst_caps *out);
/* -EPERM naming the first uid, gid, group or capabilities c asks for that
 * who could not give itself; before anything is created. */
int rst_creds_check(const Ferry__Creds *c, const struct rst_caller *who, struct ferr *err);
/* Are c exactly who's own (nothing to set)? */
bool rst_creds_are_callers(const Ferry__Creds *c, const struct rst_caller *who);
int rst_creds_set(struct rst *r, struct ferr *err);      /* in every thread */
/* The image's groups, fsgid and fsuid, so that every file the process gets
 * is opened as the process: in the child itself before its first stop
 * (self), or by injection (a warm restore's child). */
int rst_creds_fs_self(const struct rst *r, struct ferr *err);
int rst_creds_fs_inject(struct rst *r, struct ferr *err);

/* ---- sys.c: acting inside the child ---------------------------------- */

/* Run a syscall in thread t of the child; a negative result in the child
 * becomes an error naming `what`. */
int rst_sys(struct rst_thread *t, const char *what, long *ret, struct ferr *err, long nr,
	    uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6);

/* The n-th candidate place for len bytes that no dumped VMA of img uses,
 * from the top of the address space down; 0 when there are no more. */
uint64_t rst_hole(const struct img_image *img, uint64_t len, unsigned n);

/* Map the scratch pages where neither the child's current mappings nor any
 * dumped VMA are, so they survive everything until rst_finish. */
int rst_scratch_map(struct rst *r, struct ferr *err);

/* Copy len bytes to the scratch area at off, returning its address there. */
int rst_scratch_put(struct rst *r, size_t off, const void *buf, size_t len, uint64_t *addr,
		    struct ferr *err);

#endif
