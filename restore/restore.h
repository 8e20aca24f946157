/* ferry restore: re-create a dumped process from an image chain and let it
 * run on from where it was frozen (docs/ARCHITECTURE.md, "Restore").
 *
 * The process is built as a ptrace-controlled child of the caller: a fork
 * that arranges its own fds, cwd and session, then stops; everything else
 * (the address space, threads, per-thread kernel state) is done from outside
 * by injected syscalls at an instruction of the child's vdso and by
 * process_vm_writev. No code is written into it and no restorer blob is
 * needed. Any failure kills the half-built child. */
#ifndef FERRY_RESTORE_RESTORE_H
#define FERRY_RESTORE_RESTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/kerndat.h"
#include "common/util.h"

/* How much restore checks of each file behind the process: a mapping, an
 * open file or the executable (docs/IMAGES.md "Files behind the process").
 * Never device and inode, which name a file only on the dumping host. */
enum rst_file_validation {
	RST_FILES_CONTENT = 0,  /* type, size, XXH3-128 of the content (build-id first) */
	RST_FILES_SIZE,         /* type and size */
	RST_FILES_NONE,         /* it exists and is of the same type */
};

/* "content", "size", "none" to the mode (-EINVAL for anything else), and back. */
int rst_file_validation_parse(const char *s, enum rst_file_validation *out);
const char *rst_file_validation_name(enum rst_file_validation m);

/* A --join-ns (criu's join_ns) type, ipc, uts or net, as its CLONE_NEW*
 * flag; mnt, pid, user, cgroup and time refused (EOPNOTSUPP) and anything
 * else (EINVAL), with an error naming the type and why. */
int __must_check rst_join_flag(const char *name, int *flag, struct ferr *err);

struct rst_opts {
	const char *dir;
	enum rst_file_validation files;  /* default (0): content */
	bool require_same_pid;  /* fail rather than take new PIDs/TIDs */
	bool stopped;           /* leave it stopped (SIGSTOP); SIGCONT lets it run */
	bool pid_ns;            /* in a new PID namespace, under an init of ferry's */
	bool shell_job;         /* a dump --shell-job: its terminal fds get ours */
	bool sibling;           /* the root (or --pid-ns's init) becomes a child of
				   the caller's parent (CLONE_PARENT), as criu's
				   rst_sibling: a runtime's restored container init */
	/* --inherit-fd fd[N]:KEY (as criu): every dumped fd that was KEY (what
	 * /proc/PID/fd showed: "pipe:[INO]", "socket:[INO]", or a file's path)
	 * gets ferry's fd N instead, e.g. the new end of a pipe whose other end
	 * was outside the dumped tree. */
	const struct rst_inherit {
		int fd;
		const char *key;
	} *inherit;
	size_t nr_inherit;
	/* A tree with a mount namespace of its own (a container): root is the
	 * directory its root mount is rebuilt on (criu's --root), and ext the
	 * caller's paths for its external mounts (--ext-mount-map KEY:PATH). */
	const char *root;
	const struct rst_ext_mnt {
		const char *key, *path;
	} *ext;
	size_t nr_ext;
	/* --join-ns TYPE:PATH (criu's join_ns; runc sends one per namespace
	 * config.json names by path, a Kubernetes pod's IPC and UTS): the tree
	 * joins the namespace PATH (a PID: /proc/PID/ns/TYPE) instead of
	 * making one, and what was dumped of it is not applied. TYPE is ipc,
	 * uts or net (restore/ns.h rst_join_flag refuses the others). */
	const struct rst_join {
		const char *ns, *path;
	} *join;
	size_t nr_join;
	/* A tree's restore calls stage (when set) at CRIU's moments: with
	 * "setup-namespaces" and "post-setup-namespaces" once the root exists
	 * in its new namespaces, stopped (pid: the root as seen from here),
	 * and "pre-resume" once everything is built, just before the tree
	 * runs. A failure fails the restore: everything is killed. */
	int (*stage)(void *arg, const char *name, pid_t pid, struct ferr *err);
	void *stage_arg;
	/* A tree dumped with --orphan-pts on a terminal whose master was
	 * outside it (a container's console) is restored on a new pty pair,
	 * whose master ferry hands over through pty_master (criu's
	 * orphan-pts-master callback; restore --console-socket), once the tree
	 * exists in its namespaces, before it runs. The fd stays ferry's: the
	 * callback passes on a copy. Unset: such a tree is refused. A failure
	 * fails the restore. */
	int (*pty_master)(void *arg, int master, struct ferr *err);
	void *pty_master_arg;
	/* The caller's kernel feature probe (common/kerndat.h), whose answers
	 * (FERRY_HIDE_FEATURES included) choose how pages are written; NULL:
	 * the restore probes once itself. */
	const struct kerndat *kd;
};

struct rst_result {
	pid_t pid;              /* of the restored process, now running (as seen here) */
	pid_t ns_init;          /* --pid-ns: the new namespace's init, as seen here */
	bool same_pid;          /* every PID and TID as dumped */
	uint32_t threads;
	uint32_t vmas;
	uint64_t pages;         /* pages written into the process */
	uint64_t bytes;
	uint64_t cow_pages;     /* pages a child kept of its parent's, copy-on-write */
	uint64_t validate_ns;   /* checksums and backing files */
	uint64_t build_ns;      /* child, address space, pages, state */
	uint64_t total_ns;
};

/* `ferry __pidns-init`: the reaper --pid-ns leaves as pid 1 of the new
 * namespace. */
void __attribute__((noreturn)) rst_pidns_init(void);

/* Restore the final dump in opts->dir. On success the process runs, as a
 * child of the caller (of its parent with opts->sibling), no longer traced. */
int __attribute__((warn_unused_result))
rst_restore(const struct rst_opts *opts, struct rst_result *res, struct ferr *err);

/* Warm restore, for a migration's destination: the process is built while
 * the pre-dump rounds arrive, so that once the final dump is in only what
 * changed since the last round (pages, layout) and the process and thread
 * state remain to do. begin: a stopped child with the layout and memory of
 * the first round; update: the next round's changes; finish: the final
 * dump's, then everything else, as rst_restore does. Any error leaves the
 * child killed and the warm state unusable (rst_warm_free it; a cold
 * rst_restore still works). The child is traced by the calling thread. */
struct rst_warm;
int __attribute__((warn_unused_result))
rst_warm_begin(struct rst_warm **w, const char *dir, enum rst_file_validation files,
	       struct ferr *err);
int __attribute__((warn_unused_result))
rst_warm_update(struct rst_warm *w, const char *dir, struct ferr *err);
int __attribute__((warn_unused_result))
rst_warm_finish(struct rst_warm *w, const struct rst_opts *opts, struct rst_result *res,
		struct ferr *err);
void rst_warm_free(struct rst_warm *w);
DEFINE_CLEANUP(rst_warm, rst_warm_free)

#endif
