/* A tree's own namespaces, checked and collected while it is frozen
 * (dump/ns.h). The mount table and the namespace links are read from
 * ferry's side; what can be seen only from inside (the hostname, SysV IPC
 * objects, network interfaces, a tmpfs's files under the mounts on top of
 * them) a helper child reads: it enters the namespaces, and for the mounts
 * a private copy of the tree's mount namespace, where each tmpfs is bound
 * again alone on its own mount point so that its files hidden under other
 * mounts show. It streams its findings back through a pipe: frames of a
 * 32-bit length, a tag byte, and the payload. */
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/ns.h"
#include "proc/mounts.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define CHUNK (4u << 20)            /* bytes of a tmpfs file in one entry */
#define FRAME_MAX (CHUNK + 65536u)
#define WALK_DEPTH 64

static const struct {
	const char *name;
	int flag;
	bool dumped;
} kinds[] = {
	{ "mnt", CLONE_NEWNS, true },         { "uts", CLONE_NEWUTS, true },
	{ "ipc", CLONE_NEWIPC, true },        { "net", CLONE_NEWNET, true },
	{ "cgroup", CLONE_NEWCGROUP, false }, { "user", CLONE_NEWUSER, false },
	{ "time", CLONE_NEWTIME, false },
};

static int ns_id(int procfd, const char *name, struct stat *st)
{
	char path[32];

	snprintf(path, sizeof(path), "ns/%s", name);
	return fstatat(procfd, path, st, 0);
}

/* Which of the kinds the root has of its own, refusing those ferry does not
 * dump, and any process of the tree in other ones than the root's. */
static int own_namespaces(const struct ptree *pt, unsigned *own, struct ferr *err)
{
	const struct ptree_proc *r = &pt->p[0];

	*own = 0;
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		char self[40];
		struct stat mine, st;

		snprintf(self, sizeof(self), "/proc/self/ns/%s", kinds[k].name);
		if (stat(self, &mine) < 0)
			continue; /* not in this kernel */
		if (ns_id(r->t.procfd, kinds[k].name, &st) < 0)
			return ferr_sys(err, errno, "process %d: its %s namespace", r->pid,
					kinds[k].name);
		for (size_t i = 1; i < pt->n; i++) {
			struct stat m;

			if (pt->p[i].zombie || ns_id(pt->p[i].t.procfd, kinds[k].name, &m) < 0)
				continue;
			if (m.st_ino != st.st_ino || m.st_dev != st.st_dev)
				return ferr_new(err, EOPNOTSUPP, "process %d is in a %s namespace of "
						"its own below the tree's: nested namespaces are not "
						"dumped", pt->p[i].pid, kinds[k].name);
		}
		if (st.st_ino == mine.st_ino && st.st_dev == mine.st_dev)
			continue;
		if (!kinds[k].dumped)
			return ferr_new(err, EOPNOTSUPP, "process %d is in a %s namespace of its own: "
					"ferry does not dump %s namespaces yet; nothing was changed "
					"and it runs on", r->pid, kinds[k].name, kinds[k].name);
		*own |= (unsigned)kinds[k].flag;
	}
	return 0;
}

static Ferry__TreeItem *new_item(void)
{
	Ferry__TreeItem *it = malloc(sizeof(*it));

	if (it)
		ferry__tree_item__init(it);
	return it;
}

static int push(struct dump_ns *ns, Ferry__TreeItem *it, struct ferr *err)
{
	Ferry__TreeItem **v = it ? realloc(ns->items, (ns->n + 1) * sizeof(*v)) : NULL;

	if (!v) {
		if (it)
			ferry__tree_item__free_unpacked(it, NULL);
		return ferr_sys(err, ENOMEM, "namespaces");
	}
	ns->items = v;
	ns->items[ns->n++] = it;
	return 0;
}

void dump_ns_free(struct dump_ns *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		ferry__tree_item__free_unpacked(ns->items[i], NULL);
	free(ns->items);
	memset(ns, 0, sizeof(*ns));
}

/* ---- the mount tree ---- */

struct cls {
	const struct mnt_info *m;
	bool done;
};

static const char *ext_key(const struct dump_ns_opts *o, const char *point)
{
	for (size_t i = 0; i < o->nr_ext; i++)
		if (!strcmp(o->ext[i].point, point))
			return o->ext[i].key;
	return NULL;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*oom = true;
	return d;
}

/* One mount as an item, m's parent emitted before it. */
static int mount_item(struct dump_ns *ns, const struct dump_ns_opts *o, struct cls *c, size_t n,
		      size_t i, bool root, struct ferr *err)
{
	const struct mnt_info *m = c[i].m;
	Ferry__TreeItem *it = new_item();
	Ferry__MountItem *mi = malloc(sizeof(*mi));
	const char *key = root ? NULL : ext_key(o, m->point);
	bool oom = !it || !mi;

	if (oom) {
		free(it);
		free(mi);
		return ferr_sys(err, ENOMEM, "mounts");
	}
	ferry__mount_item__init(mi);
	mi->kind = 0; /* none yet (init sets the enum's first value) */
	it->mnt = mi;
	mi->id = m->id;
	mi->parent = root ? 0 : m->parent;
	mi->point = dup_or_null(m->point, &oom);
	mi->fstype = dup_or_null(m->fstype, &oom);
	mi->source = dup_or_null(m->source, &oom);
	mi->has_flags = true;
	mi->flags = (uint32_t)m->flags;
	if (root) {
		mi->kind = FERRY__MOUNT_KIND__MNT_ROOT;
		mi->bind_root = dup_or_null(m->root, &oom);
	} else if (key) {
		mi->kind = FERRY__MOUNT_KIND__MNT_EXTERNAL;
		mi->ext_key = dup_or_null(key, &oom);
	} else {
		/* A part of an earlier mount of the same filesystem: bound again. */
		for (size_t k = 0; k < n && !mi->kind; k++) {
			const struct mnt_info *e = c[k].m;
			size_t el = strlen(e->root);

			if (!c[k].done || e->major != m->major || e->minor != m->minor ||
			    !mnt_path_under(m->root, e->root))
				continue;
			mi->kind = FERRY__MOUNT_KIND__MNT_BIND;
			mi->has_bind_of = true;
			mi->bind_of = e->id;
			mi->bind_root = dup_or_null(!strcmp(e->root, "/") ? m->root :
						    m->root[el] ? m->root + el : "/", &oom);
		}
		if (!mi->kind && mnt_fresh_type(m->fstype) && !strcmp(m->root, "/")) {
			char *data = m->super;

			mi->kind = FERRY__MOUNT_KIND__MNT_FRESH;
			if (!strncmp(data, "ro", 2) && (data[2] == ',' || !data[2]))
				mi->flags |= MS_RDONLY;
			if (!strncmp(data, "rw", 2) || !strncmp(data, "ro", 2))
				data += data[2] == ',' ? 3 : 2;
			mi->data = dup_or_null(data, &oom);
		}
	}
	if (!mi->kind) {
		ferry__tree_item__free_unpacked(it, NULL);
		return ferr_new(err, EOPNOTSUPP, "the mount at %s (%s from %s, %s) is none ferry can "
				"create again: name it as external (--ext-mount-map %s:KEY, "
				"criu's ext_mnt) and bind it at restore", m->point, m->fstype,
				m->source, m->root, m->point);
	}
	if (oom) {
		ferry__tree_item__free_unpacked(it, NULL);
		return ferr_sys(err, ENOMEM, "mounts");
	}
	if (m->propagates)
		pr_info("mount %s shares mount events with others: it is restored private",
			m->point);
	c[i].done = true;
	return push(ns, it, err);
}

static int mounts(struct dump_ns *ns, const struct ptree_proc *r, const struct dump_ns_opts *o,
		  struct mnt_table *t, struct ferr *err)
{
	cleanup_free struct cls *c = NULL;
	size_t root = SIZE_MAX, left;
	char link[8];
	ssize_t len;
	int ret;

	/* Mount points are read as the root process sees them: its root must
	 * be its namespace's, as the helper child's will be. */
	len = readlinkat(r->t.procfd, "root", link, sizeof(link));
	if (len != 1 || link[0] != '/')
		return ferr_new(err, EOPNOTSUPP, "process %d is chrooted inside its mount namespace: "
				"not dumped", r->pid);
	ret = mnt_table_read(r->t.procfd, t, err);
	if (ret)
		return ret;
	c = calloc(t->n, sizeof(*c));
	if (!c)
		return ferr_sys(err, ENOMEM, "mounts");
	for (size_t i = 0; i < t->n; i++) {
		c[i].m = &t->m[i];
		if (!strcmp(t->m[i].point, "/")) {
			if (root != SIZE_MAX)
				return ferr_new(err, EOPNOTSUPP, "process %d: two mounts on its root: "
						"not dumped", r->pid);
			root = i;
		}
	}
	if (root == SIZE_MAX)
		return ferr_new(err, EIO, "process %d: no root in its mountinfo", r->pid);
	ret = mount_item(ns, o, c, t->n, root, true, err);
	/* Parents first: each pass takes the mounts whose parent is done. */
	for (left = t->n - 1; !ret && left;) {
		size_t before = left;

		for (size_t i = 0; !ret && i < t->n; i++) {
			const struct mnt_info *p = mnt_by_id(t, t->m[i].parent);

			if (c[i].done || !p || !c[p - t->m].done)
				continue;
			ret = mount_item(ns, o, c, t->n, i, false, err);
			left--;
		}
		if (!ret && left == before)
			return ferr_new(err, EIO, "process %d: mounts whose parents are not in its "
					"mountinfo", r->pid);
	}
	return ret;
}

/* An fd on a file of a mount outside the namespace (its fdinfo's mnt_id is
 * none of the table's) names a path the container cannot see: refused,
 * but for a character device (/dev/null given as stdio), which the restore
 * opens at the same path inside, checked to be the same device. */
static int outside_fds(const struct ptree *pt, const struct mnt_table *t, struct ferr *err)
{
	for (size_t i = 0; i < pt->n; i++) {
		const struct ptree_proc *p = &pt->p[i];
		int dfd = p->zombie ? -1 : openat(p->t.procfd, "fdinfo", O_RDONLY | O_DIRECTORY |
						  O_CLOEXEC);
		cleanup_dir DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		struct dirent *de;

		if (p->zombie)
			continue;
		if (!d) {
			if (dfd >= 0)
				close(dfd);
			return ferr_sys(err, errno, "process %d: fdinfo", p->pid);
		}
		while ((de = readdir(d))) {
			char path[300], link[PATH_MAX], info[512];
			unsigned mnt = 0;
			struct stat st;
			ssize_t n;
			int fd;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "fd/%s", de->d_name);
			n = readlinkat(p->t.procfd, path, link, sizeof(link) - 1);
			if (n <= 0 || link[0] != '/')
				continue; /* pipes, sockets, anon inodes: not on a mount */
			link[n] = '\0';
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
			n = fd >= 0 ? read(fd, info, sizeof(info) - 1) : -1;
			if (fd >= 0)
				close(fd);
			if (n <= 0)
				continue;
			info[n] = '\0';
			if (!strstr(info, "mnt_id:") ||
			    sscanf(strstr(info, "mnt_id:"), "mnt_id: %u", &mnt) != 1 ||
			    mnt_by_id(t, mnt))
				continue;
			if (fstatat(p->t.procfd, path, &st, 0) == 0 && S_ISCHR(st.st_mode))
				continue;
			return ferr_new(err, EOPNOTSUPP, "fd %s of process %d is `%s`, on a mount "
					"outside the tree's mount namespace: the restored tree could "
					"not reopen it; nothing was changed and it runs on",
					de->d_name, p->pid, link);
		}
	}
	return 0;
}

/* ---- the helper child ---- */

static bool put_frame(int fd, char tag, const void *p, size_t len)
{
	unsigned char h[5];
	uint32_t l = (uint32_t)len;

	memcpy(h, &l, 4);
	h[4] = (unsigned char)tag;
	if (write(fd, h, 5) != 5)
		return false;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, (const char *)p + off, len - off);

		if (w <= 0)
			return false;
		off += (size_t)w;
	}
	return true;
}

static void __attribute__((noreturn, format(printf, 2, 3))) child_fail(int fd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	put_frame(fd, 'E', msg, strlen(msg));
	_exit(1);
}

struct walk {
	int out;
	uint32_t mnt;
	bool mqueue;
	uint64_t bytes;
	char *buf;
};

static void put_file(struct walk *w, Ferry__TmpfsFile *f)
{
	size_t len = ferry__tmpfs_file__get_packed_size(f);
	unsigned char *p = malloc(len);

	if (!p)
		child_fail(w->out, "out of memory");
	ferry__tmpfs_file__pack(f, p);
	if (!put_frame(w->out, 'F', p, len))
		_exit(1);
	free(p);
}

static void walk_dir(struct walk *w, int dirfd, const char *rel, int depth);

static void walk_one(struct walk *w, int dirfd, const char *name, const char *rel, int depth)
{
	Ferry__TmpfsFile f = FERRY__TMPFS_FILE__INIT;
	char target[PATH_MAX];
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		child_fail(w->out, "tmpfs file %s: %s", rel, strerror(errno));
	if (w->mqueue && strcmp(rel, "."))
		child_fail(w->out, "POSIX message queue %s in the tree's IPC namespace: ferry does "
			   "not dump message queues yet", name);
	if (S_ISSOCK(st.st_mode))
		return; /* a bound socket's name: its owner's restore binds it again */
	if (w->mqueue) {
		if (S_ISDIR(st.st_mode))
			walk_dir(w, openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rel,
				 depth + 1);
		return; /* only checked empty: a fresh mqueue is */
	}
	f.mnt = w->mnt;
	f.path = (char *)rel;
	f.mode = st.st_mode;
	f.has_uid = f.has_gid = f.has_mtime_ns = true;
	f.uid = st.st_uid;
	f.gid = st.st_gid;
	f.mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		f.has_rdev = true;
		f.rdev = st.st_rdev;
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);

		if (n < 0)
			child_fail(w->out, "tmpfs symlink %s: %s", rel, strerror(errno));
		target[n] = '\0';
		f.target = target;
	} else if (S_ISREG(st.st_mode)) {
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		uint64_t off = 0;

		if (fd < 0)
			child_fail(w->out, "tmpfs file %s: %s", rel, strerror(errno));
		w->bytes += (uint64_t)st.st_size;
		if (w->bytes > DUMP_TMPFS_MAX)
			child_fail(w->out, "the tree's tmpfs files hold more than %llu MiB (at %s): "
				   "not dumped", DUMP_TMPFS_MAX >> 20, rel);
		f.has_offset = f.has_data = true;
		do {
			ssize_t n = pread(fd, w->buf, CHUNK, (off_t)off);

			if (n < 0)
				child_fail(w->out, "tmpfs file %s: %s", rel, strerror(errno));
			f.offset = off;
			f.data.data = (uint8_t *)w->buf;
			f.data.len = (size_t)n;
			put_file(w, &f);
			off += (uint64_t)n;
			if (n == 0)
				break;
		} while (off < (uint64_t)st.st_size);
		close(fd);
		return;
	}
	put_file(w, &f);
	if (S_ISDIR(st.st_mode)) {
		int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (sub < 0)
			child_fail(w->out, "tmpfs directory %s: %s", rel, strerror(errno));
		if (depth >= WALK_DEPTH)
			child_fail(w->out, "tmpfs directory %s: deeper than %d", rel, WALK_DEPTH);
		walk_dir(w, sub, rel, depth + 1);
	}
}

static void walk_dir(struct walk *w, int dirfd, const char *rel, int depth)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;

	if (!d)
		child_fail(w->out, "tmpfs directory %s: %s", rel, strerror(errno));
	while ((de = readdir(d))) {
		char path[PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", strcmp(rel, ".") ? rel : "",
				     de->d_name) >= sizeof(path))
			child_fail(w->out, "tmpfs path too long under %s", rel);
		walk_one(w, dirfd, de->d_name, path[0] == '/' ? path + 1 : path, depth);
	}
	closedir(d);
}

static void enter(int procfd, const char *name, int flag, int out)
{
	char path[32];
	int fd;

	snprintf(path, sizeof(path), "ns/%s", name);
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, flag) < 0)
		child_fail(out, "enter the tree's %s namespace: %s", name, strerror(errno));
	close(fd);
}

static void ipc_empty(int out)
{
	struct shm_info shm;
	struct msginfo msg;
	struct seminfo sem;
	union {
		int val;
		struct semid_ds *buf;
		unsigned short *array;
		struct seminfo *__buf;
	} arg = { .__buf = &sem };
	int nshm = 0, nmsg = 0, nsem = 0;

	memset(&shm, 0, sizeof(shm));
	memset(&msg, 0, sizeof(msg));
	memset(&sem, 0, sizeof(sem));
	if (shmctl(0, SHM_INFO, (struct shmid_ds *)&shm) >= 0)
		nshm = shm.used_ids;
	if (msgctl(0, MSG_INFO, (struct msqid_ds *)&msg) >= 0)
		nmsg = msg.msgpool;
	if (semctl(0, 0, SEM_INFO, arg) >= 0)
		nsem = sem.semusz;
	if (nshm || nmsg || nsem)
		child_fail(out, "the tree's IPC namespace holds SysV objects (%d shared memory "
			   "segments, %d message queues, %d semaphore sets): ferry does not dump "
			   "them yet", nshm, nmsg, nsem);
}

static void net_lo_only(int out)
{
	struct if_nameindex *ifs = if_nameindex();
	char names[256] = "";
	size_t used = 0;

	if (!ifs)
		child_fail(out, "list the network interfaces: %s", strerror(errno));
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		if (strcmp(i->if_name, "lo") && used < sizeof(names) - 1)
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
						 used ? ", " : "", i->if_name);
	if_freenameindex(ifs);
	if (used)
		child_fail(out, "the tree's network namespace has interfaces (%s): ferry restores a "
			   "network namespace with loopback only; ask for it empty (--empty-ns "
			   "net, criu's empty_ns) and let the runtime set it up, or name it "
			   "external (--external net[INODE]:KEY)", names);
}

static void __attribute__((noreturn)) helper(int out, const struct ptree_proc *r, unsigned own,
					     bool empty_net, const struct dump_ns *ns)
{
	if (own & CLONE_NEWUTS) {
		struct utsname u;

		enter(r->t.procfd, "uts", CLONE_NEWUTS, out);
		if (uname(&u) < 0)
			child_fail(out, "uname: %s", strerror(errno));
		if (!put_frame(out, 'H', u.nodename, strlen(u.nodename)) ||
		    !put_frame(out, 'D', u.domainname, strlen(u.domainname)))
			_exit(1);
	}
	if (own & CLONE_NEWIPC) {
		enter(r->t.procfd, "ipc", CLONE_NEWIPC, out);
		ipc_empty(out);
	}
	if ((own & CLONE_NEWNET) && !empty_net) {
		enter(r->t.procfd, "net", CLONE_NEWNET, out);
		net_lo_only(out);
	}
	if (own & CLONE_NEWNS) {
		struct walk w = { .out = out, .buf = malloc(CHUNK) };

		if (!w.buf)
			child_fail(out, "out of memory");
		enter(r->t.procfd, "mnt", CLONE_NEWNS, out);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			child_fail(out, "a private copy of the tree's mounts: %s", strerror(errno));
		for (size_t i = 0; i < ns->n; i++) {
			const Ferry__MountItem *m = ns->items[i]->mnt;
			int fd;

			if (!m || m->kind != FERRY__MOUNT_KIND__MNT_FRESH ||
			    (strcmp(m->fstype, "tmpfs") && strcmp(m->fstype, "mqueue")))
				continue;
			/* Alone on its point, without what is mounted on it. */
			if (mount(m->point, m->point, NULL, MS_BIND, NULL) < 0)
				child_fail(out, "bind %s: %s", m->point, strerror(errno));
			fd = open(m->point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				child_fail(out, "open %s: %s", m->point, strerror(errno));
			w.mnt = m->id;
			w.mqueue = !strcmp(m->fstype, "mqueue");
			walk_one(&w, fd, ".", ".", 0);
			close(fd);
			umount2(m->point, MNT_DETACH);
		}
	}
	_exit(0);
}

static int read_full(int fd, void *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = read(fd, (char *)p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return off ? -EIO : 0;
		off += (size_t)n;
	}
	return 1;
}

/* What the helper found: hostname and domain into info, files as items. */
static int gather(int in, Ferry__NsInfo *info, struct dump_ns *ns, char *fail, struct ferr *err)
{
	cleanup_free unsigned char *buf = malloc(FRAME_MAX + 1);
	unsigned char h[5];
	uint32_t len;
	int got;

	if (!buf)
		return ferr_sys(err, ENOMEM, "namespaces");
	while ((got = read_full(in, h, 5)) == 1) {
		memcpy(&len, h, 4);
		if (len > FRAME_MAX || read_full(in, buf, len) != (len ? 1 : 0))
			return ferr_new(err, EIO, "the namespace helper's answer is cut short");
		buf[len] = '\0';
		if (h[4] == 'E') {
			snprintf(fail, 512, "%s", (char *)buf);
		} else if (h[4] == 'H' || h[4] == 'D') {
			char **to = h[4] == 'H' ? &info->hostname : &info->domainname;

			free(*to);
			*to = strdup((char *)buf);
			if (!*to)
				return ferr_sys(err, ENOMEM, "namespaces");
		} else if (h[4] == 'F') {
			Ferry__TmpfsFile *f = ferry__tmpfs_file__unpack(NULL, len, buf);
			Ferry__TreeItem *it = f ? new_item() : NULL;
			int ret;

			if (!it) {
				if (f)
					ferry__tmpfs_file__free_unpacked(f, NULL);
				return ferr_sys(err, ENOMEM, "tmpfs contents");
			}
			it->tfile = f;
			ret = push(ns, it, err);
			if (ret)
				return ret;
		} else {
			return ferr_new(err, EIO, "the namespace helper said something unknown");
		}
	}
	return got < 0 ? ferr_new(err, EIO, "the namespace helper's answer is cut short") : 0;
}

int dump_ns_collect(const struct ptree *pt, const struct dump_ns_opts *o, struct dump_ns *ns,
		    struct ferr *err)
{
	cleanup_val(mnt_table) struct mnt_table t = { 0 };
	Ferry__TreeItem *it;
	Ferry__NsInfo *info;
	char fail[512] = "";
	unsigned own;
	int p[2], status, ret;
	pid_t child;

	memset(ns, 0, sizeof(*ns));
	ret = own_namespaces(pt, &own, err);
	if (ret || !own)
		return ret;
	it = new_item();
	info = malloc(sizeof(*info));
	if (!it || !info) {
		free(it);
		free(info);
		return ferr_sys(err, ENOMEM, "namespaces");
	}
	ferry__ns_info__init(info);
	info->flags = own;
	info->has_net_empty = info->net_empty = (own & CLONE_NEWNET) && o->empty_net &&
						!o->net_key;
	it->ns = info;
	ret = push(ns, it, err);
	if (!ret && (own & CLONE_NEWNS))
		ret = mounts(ns, &pt->p[0], o, &t, err);
	if (!ret && (own & CLONE_NEWNS))
		ret = outside_fds(pt, &t, err);
	if (!ret && pipe2(p, O_CLOEXEC) < 0)
		ret = ferr_sys(err, errno, "pipe");
	if (ret) {
		dump_ns_free(ns);
		return ret;
	}
	fflush(NULL);
	child = fork();
	if (child == 0) {
		close(p[0]);
		signal(SIGPIPE, SIG_DFL);
		helper(p[1], &pt->p[0], own, o->empty_net || o->net_key, ns);
	}
	close(p[1]);
	if (child < 0) {
		close(p[0]);
		dump_ns_free(ns);
		return ferr_sys(err, errno, "fork");
	}
	ret = gather(p[0], info, ns, fail, err);
	close(p[0]);
	if (ret)
		kill(child, SIGKILL);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!ret && fail[0])
		ret = ferr_new(err, EOPNOTSUPP, "%s", fail);
	else if (!ret && (!WIFEXITED(status) || WEXITSTATUS(status)))
		ret = ferr_new(err, EIO, "the namespace helper failed (status %#x)", status);
	if (ret)
		dump_ns_free(ns);
	else
		pr_info("namespaces of the tree: %u item(s) (mounts, tmpfs files)", (unsigned)ns->n);
	return ret;
}
