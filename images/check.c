/* Bounds on what process.img, threads.img and fds.img may say: every count
 * and length an image gives is checked here, before restore sizes a buffer,
 * a loop or a syscall by it. Duplicates are found in one pass over sorted
 * keys, never by comparing every pair. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "images/load.h"

static bool str_ok(const char *s)
{
	return !s || strnlen(s, PATH_MAX) < PATH_MAX;
}

/* (uint32_t)-1 means "leave unchanged" to setresuid and friends: an id the
 * image cannot ask for, or it would keep ferry's own. */
static bool ids_ok(const uint32_t *ids, size_t n)
{
	if (n != 4)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == UINT32_MAX)
			return false;
	return true;
}

static const char *creds_ok(const Ferry__Creds *c)
{
	if (!ids_ok(c->uid, c->n_uid))
		return "uids: need 4 (real, effective, saved, filesystem), none of them -1";
	if (!ids_ok(c->gid, c->n_gid))
		return "gids: need 4 (real, effective, saved, filesystem), none of them -1";
	if (c->n_groups > IMG_GROUPS_MAX)
		return "more supplementary groups than the kernel allows";
	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i] == UINT32_MAX)
			return "supplementary group -1";
	return NULL;
}

static const char *siginfos_ok(const ProtobufCBinaryData *s, size_t n)
{
	if (n > IMG_SIGINFO_MAX)
		return "too many pending signals";
	for (size_t i = 0; i < n; i++)
		if (s[i].len != IMG_SIGINFO_SIZE)
			return "a pending signal record of the wrong size";
	return NULL;
}

int img_check_process(const char *what, const Ferry__Process *p, struct ferr *err)
{
	const char *why = NULL;

	if (!p->pid || p->pid > IMG_PID_MAX)
		why = "pid out of range";
	else if (!str_ok(p->comm) || !str_ok(p->cwd) || !str_ok(p->root))
		why = "a name or path longer than PATH_MAX";
	else if (p->n_sigactions > IMG_SIGNALS)
		why = "more signal handlers than signals";
	else if (p->n_rlimits > RLIM_NLIMITS)
		why = "more resource limits than the kernel has";
	else if (p->creds && (why = creds_ok(p->creds)))
		return ferr_new(err, EBADMSG, "%s: credentials: %s", what, why);
	else
		why = siginfos_ok(p->shared_pending, p->n_shared_pending);
	for (size_t i = 0; !why && i < p->n_sigactions; i++)
		if (!p->sigactions[i]->signo || p->sigactions[i]->signo > IMG_SIGNALS)
			why = "a signal handler for a signal number out of range";
	for (size_t i = 0; !why && i < p->n_rlimits; i++)
		if (p->rlimits[i]->resource >= RLIM_NLIMITS)
			why = "an unknown resource limit";
	if (!why && p->mm) {
		const Ferry__MmState *mm = p->mm;

		if (!str_ok(mm->exe_path))
			why = "executable path longer than PATH_MAX";
		else if (mm->has_auxv && (mm->auxv.len > IMG_AUXV_MAX || mm->auxv.len % 16))
			why = "auxiliary vector not whole (type, value) pairs of at most 4 KiB";
	}
	if (why)
		return ferr_new(err, EBADMSG, "%s: %s", what, why);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

int img_check_threads(const char *what, Ferry__Thread *const *t, size_t n, struct ferr *err)
{
	cleanup_free uint32_t *tids = NULL;

	if (!n)
		return ferr_new(err, EBADMSG, "%s: no threads", what);
	if (n > IMG_THREADS_MAX)
		return ferr_new(err, EBADMSG, "%s: %zu threads, more than %u", what, n, IMG_THREADS_MAX);
	tids = malloc(n * sizeof(*tids));
	if (!tids)
		return ferr_sys(err, ENOMEM, "%s", what);
	for (size_t i = 0; i < n; i++) {
		const Ferry__Thread *e = t[i];
		const char *why = NULL;

		if (!e->tid || e->tid > IMG_PID_MAX)
			why = "tid out of range";
		else if (e->has_xsave && (e->xsave.len < IMG_FXSAVE_SIZE || e->xsave.len > IMG_XSAVE_MAX))
			why = "XSAVE state of an impossible size";
		else if (e->has_fpregs && e->fpregs.len != IMG_FXSAVE_SIZE)
			why = "FPU registers of the wrong size";
		else if (!str_ok(e->comm))
			why = "name longer than PATH_MAX";
		else
			why = siginfos_ok(e->pending, e->n_pending);
		if (why)
			return ferr_new(err, EBADMSG, "%s: entry %zu (tid %u): %s", what, i, e->tid, why);
		tids[i] = e->tid;
	}
	qsort(tids, n, sizeof(*tids), cmp_u32);
	for (size_t i = 1; i < n; i++)
		if (tids[i] == tids[i - 1])
			return ferr_new(err, EBADMSG, "%s: tid %u repeated", what, tids[i]);
	return 0;
}

/* The state of one fd beyond its number and path (Fd fields 20 on). */
static const char *fd_state_ok(const Ferry__Fd *f)
{
	uint32_t prev = 0;

	if (f->n_epoll > IMG_FD_ENTRIES_MAX || f->n_inotify > IMG_FD_ENTRIES_MAX)
		return "more epoll targets or inotify watches than ferry restores";
	for (size_t i = 0; i < f->n_epoll; i++)
		if (f->epoll[i]->tfd >= IMG_FD_MAX)
			return "an epoll target fd out of range";
	for (size_t i = 0; i < f->n_inotify; i++) {
		const Ferry__InotifyWatch *w = f->inotify[i];

		if (!w->wd || w->wd <= prev)
			return "inotify watch descriptors not ascending from 1";
		if (!str_ok(w->path) || !w->path[0])
			return "an inotify watch without a path, or one longer than PATH_MAX";
		prev = w->wd;
	}
	if (f->memfd && strnlen(f->memfd->name, IMG_MEMFD_NAME_MAX + 1) > IMG_MEMFD_NAME_MAX)
		return "memfd name longer than 249 bytes";
	switch (f->kind) {
	case FERRY__FD_KIND__FD_MEMFD:
		return f->memfd ? NULL : "a memfd without its name";
	case FERRY__FD_KIND__FD_DELETED:
		return f->path ? NULL : "a deleted file without its path";
	default:
		return NULL;
	}
}

int img_check_fds(const char *what, Ferry__Fd *const *f, size_t n, struct ferr *err)
{
	for (size_t i = 0; i < n; i++) {
		const char *why = NULL;

		/* The dumper writes them ascending: a repeat is one step away. */
		if (f[i]->fd >= IMG_FD_MAX)
			why = "fd number out of range";
		else if (i && f[i]->fd <= f[i - 1]->fd)
			why = "not above the previous fd (repeated or out of order)";
		else if (f[i]->kind < FERRY__FD_KIND__FD_REG || f[i]->kind > FERRY__FD_KIND__FD_DELETED)
			why = "unknown kind";
		else if (!str_ok(f[i]->path))
			why = "path longer than PATH_MAX";
		else if (f[i]->n_locks > 1024)
			why = "more than 1024 locks";
		else
			why = fd_state_ok(f[i]);
		for (size_t k = 0; !why && k < f[i]->n_locks; k++)
			if (f[i]->locks[k]->kind < 1 || f[i]->locks[k]->kind > 3)
				why = "a lock of an unknown kind";
		if (why)
			return ferr_new(err, EBADMSG, "%s: entry %zu (fd %u): %s", what, i, f[i]->fd, why);
	}
	return 0;
}

int img_check_fd_data(const char *what, Ferry__Fd *const *f, size_t n, uint64_t fdata_size,
		      struct ferr *err)
{
	for (size_t i = 0; i < n; i++) {
		const Ferry__FileData *d = f[i]->data;

		if (!d)
			continue;
		if (!fdata_size)
			return ferr_new(err, EBADMSG, "%s: fd %u: contents in fdata.img, which the dump "
					"does not have", what, f[i]->fd);
		if (d->offset < IMG_HEADER_SIZE || d->offset > fdata_size ||
		    d->size > fdata_size - d->offset)
			return ferr_new(err, EBADMSG, "%s: fd %u: %llu bytes of contents at %llu, "
					"beyond the end of fdata.img (%llu bytes)", what, f[i]->fd,
					(unsigned long long)d->size, (unsigned long long)d->offset,
					(unsigned long long)fdata_size);
	}
	return 0;
}

bool img_pid_dir_name(const char *s, size_t len)
{
	if (len < 5 || len > 14 || strncmp(s, "pid-", 4) || s[4] == '0')
		return false;
	for (size_t i = 4; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* "../../NAME/pid-N": a tree's other process's parent, the same process in
 * the parent round. */
static bool tree_parent_path(const char *p)
{
	const char *name = p + 6, *slash;
	size_t len;

	if (strncmp(p, "../../", 6) || !(slash = strchr(name, '/')))
		return false;
	len = (size_t)(slash - name);
	if (!len || (len == 1 && name[0] == '.') || (len == 2 && !strncmp(name, "..", 2)))
		return false;
	return img_pid_dir_name(slash + 1, strlen(slash + 1));
}

/* "pre-1", "../pre-1", "rounds/3": at most one "..", first, then plain
 * names. Nothing absolute, nothing that climbs further; but a tree's other
 * process (a directory pid-N in its round) names its own images in the
 * parent round, "../../NAME/pid-N" (img_open_parent_dir checks where it
 * is). */
bool img_parent_path_ok(const char *p)
{
	const char *c = p;
	bool first = true;

	if (!*p || *p == '/' || strnlen(p, PATH_MAX) >= PATH_MAX)
		return false;
	if (tree_parent_path(p))
		return true;
	while (*c) {
		size_t len = strcspn(c, "/");

		if (!len || (len == 1 && c[0] == '.'))
			return false;
		if (len == 2 && c[0] == '.' && c[1] == '.' && !first)
			return false;
		first = false;
		c += len;
		if (*c == '/' && !*++c)
			return false; /* a trailing slash */
	}
	return strcmp(p, "..") != 0;
}

int img_open_parent_dir(int dirfd, const char *rel, const char *what, struct ferr *err)
{
	cleanup_close int cur = -1;
	char name[NAME_MAX + 1];
	const char *c = rel;

	const char *base = strrchr(what, '/');

	base = base ? base + 1 : what;
	if (!img_parent_path_ok(rel) ||
	    (tree_parent_path(rel) && !img_pid_dir_name(base, strlen(base))))
		return ferr_new(err, EBADMSG, "%s: parent `%s` is not a path inside the dump's parent "
				"directory (`pre-1`, `../pre-1`; a tree's process pid-N: "
				"`../../pre-1/pid-N`)", what, rel);
	while (*c) {
		size_t len = strcspn(c, "/");
		int next;

		if (len > NAME_MAX)
			return ferr_new(err, ENAMETOOLONG, "%s: parent `%s`: a name is too long", what,
					rel);
		memcpy(name, c, len);
		name[len] = '\0';
		next = openat(cur >= 0 ? cur : dirfd, name,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && (errno == ELOOP || errno == ENOTDIR))
			return ferr_new(err, ELOOP, "%s: parent `%s`: `%s` is not a directory (a "
					"symbolic link is not followed)", what, rel, name);
		if (next < 0)
			return ferr_sys(err, errno, "%s: parent `%s`", what, rel);
		if (cur >= 0)
			close(cur);
		cur = next;
		c += len;
		if (*c == '/')
			c++;
	}
	return steal_fd(cur);
}

#define IMG_TREE_MAX 4096u          /* processes in one tree */
#define IMG_SK_MSGS_MAX 65536u      /* queued messages on one socket */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Are the n ids unique? (sorts them) */
static bool ids_unique(uint64_t *ids, size_t n)
{
	if (n > 1)
		qsort(ids, n, sizeof(*ids), cmp_u64);
	for (size_t i = 1; i < n; i++)
		if (ids[i] == ids[i - 1])
			return false;
	return true;
}

/* A path of the namespace items: absolute (a mount point) or relative (in a
 * tmpfs), with no ".." component, so that it stays under where it is put. */
static bool ns_path_ok(const char *p, bool absolute)
{
	if (!p || !str_ok(p) || (p[0] == '/') != absolute || (!absolute && !*p))
		return false;
	for (const char *c = p; *c;) {
		size_t len = strcspn(c, "/");

		if (len == 2 && c[0] == '.' && c[1] == '.')
			return false;
		c += len;
		if (*c)
			c++;
	}
	return true;
}

#define NS_FLAGS_KNOWN 0x4c020000u  /* CLONE_NEWNS|NEWUTS|NEWIPC|NEWNET */
#define MNT_FLAGS_KNOWN 0x1200c0fu  /* MS_RDONLY..NOEXEC, NOATIME, NODIRATIME, RELATIME,
				      STRICTATIME */
#define TMPFS_CHUNK_MAX (4u << 20)

/* The namespace items: one NsInfo; mounts with unique ids, the root first,
 * each parent (and bound mount) listed before; tmpfs files of a tmpfs
 * listed before them, with paths that stay inside it. */
static const char *check_ns_items(Ferry__TreeItem *const *t, size_t n)
{
	cleanup_free const Ferry__MountItem **m = calloc(n, sizeof(*m));
	const Ferry__NsInfo *ns = NULL;
	const Ferry__Pty *pty = NULL;
	size_t nm = 0;

	if (!m)
		return "out of memory";
	for (size_t i = 0; i < n; i++) {
		const Ferry__MountItem *mi = t[i]->mnt;
		const Ferry__TmpfsFile *f = t[i]->tfile;
		bool parent = false, bound = false, tmpfs = false;

		if (t[i]->ns) {
			if (ns)
				return "two namespace entries";
			ns = t[i]->ns;
			if (ns->flags & ~NS_FLAGS_KNOWN || !ns->flags)
				return "namespace flags unknown";
			if ((ns->hostname && strlen(ns->hostname) > 64) ||
			    (ns->domainname && strlen(ns->domainname) > 64))
				return "hostname longer than 64 bytes";
			/* An external network namespace is the caller's, named
			 * by a key: never made, so never made empty either. */
			if (ns->net_ext_key &&
			    (!(ns->flags & 0x40000000u) || ns->net_empty || !ns->net_ext_key[0] ||
			     strlen(ns->net_ext_key) > 255))
				return "an external network namespace without a network namespace or "
				       "a name";
		}
		if (mi) {
			if (!ns || !(ns->flags & 0x00020000u))
				return "a mount without a mount namespace";
			if (!ns_path_ok(mi->point, true) || (mi->flags & ~MNT_FLAGS_KNOWN) ||
			    !str_ok(mi->fstype) || !str_ok(mi->source) || !str_ok(mi->data) ||
			    !str_ok(mi->ext_key))
				return "mount point or options out of range";
			if ((mi->kind == FERRY__MOUNT_KIND__MNT_ROOT) != (nm == 0) ||
			    (nm == 0 && (mi->parent || strcmp(mi->point, "/"))))
				return "the root mount is not first, or not at /";
			for (size_t k = 0; k < nm; k++) {
				if (m[k]->id == mi->id)
					return "a mount is listed twice";
				parent |= m[k]->id == mi->parent;
				bound |= mi->has_bind_of && m[k]->id == mi->bind_of;
			}
			if (nm && !parent)
				return "a mount's parent is not listed before it";
			if (mi->kind == FERRY__MOUNT_KIND__MNT_BIND &&
			    (!bound || !ns_path_ok(mi->bind_root, true)))
				return "a bind mount of no earlier mount";
			if (mi->kind == FERRY__MOUNT_KIND__MNT_FRESH && (!mi->fstype || !mi->source))
				return "a mount without a type";
			if (mi->kind == FERRY__MOUNT_KIND__MNT_EXTERNAL && (!mi->ext_key || !*mi->ext_key))
				return "an external mount without a name";
			m[nm++] = mi;
		}
		if (t[i]->pty) {
			bool devpts = false;

			if (pty)
				return "two terminals";
			pty = t[i]->pty;
			for (size_t k = 0; k < nm; k++)
				devpts |= m[k]->id == pty->mnt && m[k]->kind ==
					  FERRY__MOUNT_KIND__MNT_FRESH && !strcmp(m[k]->fstype, "devpts");
			if (pty->has_mnt && nm && !devpts)
				return "a terminal of no devpts listed before it";
		}
		if (f) {
			for (size_t k = 0; k < nm; k++)
				tmpfs |= m[k]->id == f->mnt && m[k]->kind ==
					FERRY__MOUNT_KIND__MNT_FRESH && !strcmp(m[k]->fstype, "tmpfs");
			if (!tmpfs)
				return "a tmpfs file of no tmpfs listed before it";
			if (strcmp(f->path, ".") && !ns_path_ok(f->path, false))
				return "a tmpfs file's path leaves its mount";
			if (f->data.len > TMPFS_CHUNK_MAX || f->offset > (1ull << 40) ||
			    !str_ok(f->target))
				return "a tmpfs file's data out of range";
			switch (f->mode & S_IFMT) {
			case S_IFDIR: case S_IFREG: case S_IFLNK: case S_IFCHR: case S_IFBLK:
			case S_IFIFO:
				break;
			default:
				return "a tmpfs file of an unknown type";
			}
			if (S_ISLNK(f->mode) && !f->target)
				return "a symlink without a target";
		}
	}
	return NULL;
}

static const char *check_tree_item(const Ferry__TreeItem *t, size_t i)
{
	int set = !!t->proc + !!t->pipe + !!t->sk + !!t->shm + !!t->ns + !!t->mnt + !!t->tfile +
		  !!t->pty;

	if (set != 1)
		return "not exactly one of proc, pipe, sk, shm, ns, mnt, tfile, pty";
	if (t->proc) {
		const Ferry__TreeProc *p = t->proc;

		if (!p->pid || p->pid >= IMG_PID_MAX || p->ppid >= IMG_PID_MAX ||
		    p->pgid >= IMG_PID_MAX || p->sid >= IMG_PID_MAX ||
		    p->files_with >= IMG_PID_MAX || p->fs_with >= IMG_PID_MAX)
			return "PID out of range";
		if (!str_ok(p->comm) || (p->comm && strlen(p->comm) > 15))
			return "comm longer than a task name";
		if (i == 0 && (p->ppid || (p->dir && *p->dir)))
			return "the root has a parent or a directory";
		if (i > 0) {
			char want[32];

			snprintf(want, sizeof(want), "pid-%u", p->pid);
			if (!p->dir || strcmp(p->dir, want))
				return "directory is not pid-PID";
			if (!p->ppid)
				return "a process other than the root has no parent";
		}
	}
	if (t->pipe && (t->pipe->data.len > t->pipe->size || t->pipe->size > (1u << 30) ||
			!str_ok(t->pipe->fifo_path)))
		return "pipe data larger than the pipe";
	if (t->sk) {
		const Ferry__UnixSk *s = t->sk;

		if (s->type != SOCK_STREAM && s->type != SOCK_DGRAM && s->type != SOCK_SEQPACKET)
			return "socket type unknown";
		if (s->name.len > sizeof(((struct sockaddr_un *)0)->sun_path))
			return "socket name too long";
		if (s->n_queue > IMG_SK_MSGS_MAX)
			return "too many queued messages";
		if (s->has_peer && s->peer == s->id)
			return "socket is its own peer";
	}
	if (t->shm && (!t->shm->size || t->shm->size > IMG_ADDR_LIMIT))
		return "shared memory size out of range";
	/* A devpts gives out indexes below 1M (NR_UNIX98_PTY_MAX); termios'
	 * c_cc is 32 bytes in glibc. */
	if (t->pty && (t->pty->index >= (1u << 20) || t->pty->cc.len > 32 ||
		       !str_ok(t->pty->path)))
		return "terminal index or state out of range";
	return NULL;
}

int img_check_tree(const char *what, Ferry__TreeItem *const *t, size_t n, struct ferr *err)
{
	cleanup_free uint64_t *pids = NULL, *objs = NULL;
	size_t np = 0, no = 0;

	if (!n || !t[0]->proc)
		return ferr_new(err, EBADMSG, "%s: does not start with the root process", what);
	pids = calloc(n, sizeof(*pids));
	objs = calloc(n, sizeof(*objs));
	if (!pids || !objs)
		return ferr_sys(err, ENOMEM, "%s", what);
	for (size_t i = 0; i < n; i++) {
		const char *why = check_tree_item(t[i], i);

		if (why)
			return ferr_new(err, EBADMSG, "%s: entry %zu: %s", what, i, why);
		if (t[i]->proc)
			pids[np++] = t[i]->proc->pid;
		else if (t[i]->pipe || t[i]->sk || t[i]->shm)
			objs[no++] = t[i]->pipe ? t[i]->pipe->id : t[i]->sk ? t[i]->sk->id :
				     t[i]->shm->id;
	}
	if (np > IMG_TREE_MAX)
		return ferr_new(err, EBADMSG, "%s: %zu processes, at most %u", what, np, IMG_TREE_MAX);
	if (!ids_unique(pids, np))
		return ferr_new(err, EBADMSG, "%s: a process is listed twice", what);
	/* Each parent is an earlier process of the tree: a restore creates
	 * parents first, and a loop cannot be written down. pids is sorted;
	 * seen[k] marks pids[k] once its entry has gone by. */
	cleanup_free bool *seen = calloc(np, sizeof(*seen));

	if (!seen)
		return ferr_sys(err, ENOMEM, "%s", what);
	for (size_t i = 0; i < n; i++) {
		const uint64_t *at;
		uint64_t key;

		if (!t[i]->proc)
			continue;
		key = t[i]->proc->ppid;
		at = i ? bsearch(&key, pids, np, sizeof(*pids), cmp_u64) : NULL;
		if (i && (!at || !seen[at - pids]))
			return ferr_new(err, EBADMSG, "%s: process %u: parent %u is not listed before it",
					what, t[i]->proc->pid, t[i]->proc->ppid);
		key = t[i]->proc->pid;
		at = bsearch(&key, pids, np, sizeof(*pids), cmp_u64);
		seen[at - pids] = true;
	}
	if (!ids_unique(objs, no))
		return ferr_new(err, EBADMSG, "%s: an object is listed twice", what);
	const char *why = check_ns_items(t, n);

	if (why)
		return ferr_new(err, EBADMSG, "%s: namespaces: %s", what, why);
	return 0;
}
