/* A tree's own namespaces, made again (restore/ns.h). The mount tree is
 * built in the new root process's copy of ferry's mount namespace, made
 * private first so nothing shows outside: the caller's --root bound on
 * itself, each mount on its point below it (mounted anew, bound from a
 * part of an earlier one, or bound from the caller's path for an external
 * one), every tmpfs filled with its dumped files, and pivot_root into it.
 * Every path of the image is looked up inside the root being built
 * (openat2 RESOLVE_IN_ROOT) and mounted through its fd, and tmpfs files are
 * made below their mount without following any symlink: the image names
 * places in the container, never outside it. */
#include <fcntl.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "proc/mounts.h"
#include "restore/ns.h"
#include "restore/pty.h"

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)

static bool grow(void *pv, size_t n, size_t size)
{
	void **p = pv, *q = realloc(*p, (n + 1) * size);

	if (q)
		*p = q;
	return q != NULL;
}

void rst_ns_free(struct rst_ns *ns)
{
	if (ns->view.rootfd >= 0)
		close(ns->view.rootfd);
	if (ns->net_key && ns->net_fd >= 0)
		close(ns->net_fd);
	for (size_t i = 0; i < ns->nr_join; i++)
		close(ns->join[i].fd);
	for (size_t i = 0; ns->points && i < ns->nr_mnt; i++)
		free(ns->points[i]);
	free(ns->points);
	free(ns->mnt);
	free(ns->tf);
	free(ns->ext);
	memset(ns, 0, sizeof(*ns));
	ns->view.rootfd = -1;
}

static int load_mounts(struct rst_ns *ns, const struct rst_opts *o, struct ferr *err)
{
	struct stat st;

	if (!o->root)
		return ferr_new(err, EINVAL, "the images hold a mount namespace (a container's): "
				"--root DIR names the directory its root filesystem is on (criu's "
				"--root; runc passes it)");
	if (!ns->nr_mnt)
		return ferr_new(err, EBADMSG, "the images hold a mount namespace without mounts");
	ns->view.rootfd = open(o->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ns->view.rootfd < 0)
		return ferr_sys(err, errno, "--root %s", o->root);
	ns->root = o->root;
	ns->ext = calloc(ns->nr_mnt, sizeof(*ns->ext));
	ns->points = calloc(ns->nr_mnt, sizeof(*ns->points));
	if (!ns->ext || !ns->points)
		return ferr_sys(err, ENOMEM, "mounts");
	for (size_t i = 0; i < ns->nr_mnt; i++) {
		const Ferry__MountItem *m = ns->mnt[i];

		if (i && !(ns->points[ns->view.nr_points++] = strdup(m->point)))
			return ferr_sys(err, ENOMEM, "mounts");
		if (m->kind == FERRY__MOUNT_KIND__MNT_FRESH && !mnt_fresh_type(m->fstype))
			return ferr_new(err, EBADMSG, "mount %s: ferry does not mount %s anew",
					m->point, m->fstype);
		if (m->kind != FERRY__MOUNT_KIND__MNT_EXTERNAL)
			continue;
		for (size_t k = 0; k < o->nr_ext && !ns->ext[i]; k++)
			if (!strcmp(o->ext[k].key, m->ext_key))
				ns->ext[i] = o->ext[k].path;
		if (!ns->ext[i])
			return ferr_new(err, ENOENT, "the external mount at %s was dumped as `%s`: "
					"name what to bind there (--ext-mount-map %s:PATH, criu's "
					"ext_mnt)", m->point, m->ext_key, m->ext_key);
		if (stat(ns->ext[i], &st) < 0)
			return ferr_sys(err, errno, "external mount `%s` for %s: %s", m->ext_key,
					m->point, ns->ext[i]);
	}
	ns->view.points = (const char *const *)ns->points;
	return 0;
}

/* The caller's fd for the external network namespace's key: it must be
 * one (a path's fd, as runc opens /var/run/netns/NAME), copied to net_fd. */
static int load_ext_net(struct rst_ns *ns, const struct rst_opts *o, struct ferr *err)
{
	const char *key = ns->info->net_ext_key;
	char link[64], what[64];
	ssize_t len;
	int fd = -1, type;

	for (size_t k = 0; k < o->nr_inherit && fd < 0; k++)
		if (!strcmp(o->inherit[k].key, key))
			fd = o->inherit[k].fd;
	if (fd < 0)
		return ferr_new(err, ENOENT, "the tree's network namespace was dumped as external "
				"`%s`: give an fd on the namespace to join for it (--inherit-fd "
				"fd[N]:%s, criu's inherit_fd; runc passes one when config.json names "
				"the namespace by path)", key, key);
	/* NS_GET_NSTYPE where nsfs has it, else the fd's link (net:[INO]). */
	type = ioctl(fd, NS_GET_NSTYPE);
	if (type < 0) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, what, sizeof(what) - 1);
		what[len > 0 ? len : 0] = '\0';
		if (!strncmp(what, "net:[", 5))
			type = CLONE_NEWNET;
	} else {
		snprintf(what, sizeof(what), "a namespace of type %#x", type);
	}
	if (type != CLONE_NEWNET)
		return ferr_new(err, EINVAL, "--inherit-fd fd[%d]:%s: fd %d is %s, not a network "
				"namespace (the tree's was dumped as external `%s`)", fd, key, fd,
				what[0] ? what : "no namespace", key);
	ns->net_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (ns->net_fd < 0)
		return ferr_sys(err, errno, "--inherit-fd fd[%d]:%s", fd, key);
	ns->net_key = key;
	return 0;
}

int rst_ns_load(struct rst_ns *ns, Ferry__TreeItem *const *items, size_t n,
		const struct rst_opts *o, struct ferr *err)
{
	int ret;

	memset(ns, 0, sizeof(*ns));
	ns->view.rootfd = -1;
	ns->net_fd = -1;
	for (size_t i = 0; i < n; i++) {
		if (items[i]->ns) {
			ns->info = items[i]->ns;
		} else if (items[i]->mnt) {
			if (!grow(&ns->mnt, ns->nr_mnt, sizeof(*ns->mnt)))
				return ferr_sys(err, ENOMEM, "mounts");
			ns->mnt[ns->nr_mnt++] = items[i]->mnt;
		} else if (items[i]->tfile) {
			if (!grow(&ns->tf, ns->nr_tf, sizeof(*ns->tf)))
				return ferr_sys(err, ENOMEM, "tmpfs files");
			ns->tf[ns->nr_tf++] = items[i]->tfile;
		}
	}
	/* A lone process (dump --tree=no) is restored without a stub to
	 * join anything. */
	if (o->nr_join && !n)
		return ferr_new(err, EOPNOTSUPP, "--join-ns: %s holds a single process dumped "
				"with --tree=no; ferry joins namespaces for a tree only", o->dir);
	ret = rst_ns_load_joins(ns, o, err);
	if (ret || !ns->info) {
		if (ret)
			rst_ns_free(ns);
		return ret;
	}
	/* An external network namespace alone is joined whatever the PID
	 * namespace (a process under `ip netns exec`). */
	if (o->pid_ns && rst_ns_clone_flags(ns))
		return ferr_new(err, EINVAL, "--pid-ns: the tree has namespaces of its own, which "
				"the restore makes again");
	ret = ns->info->net_ext_key ? load_ext_net(ns, o, err) : 0;
	if (!ret && (ns->info->flags & CLONE_NEWNS))
		ret = load_mounts(ns, o, err);
	if (ret)
		rst_ns_free(ns);
	return ret;
}

uint64_t rst_ns_clone_flags(const struct rst_ns *ns)
{
	uint64_t flags = ns && ns->info ? ns->info->flags & NS_FLAGS : 0;

	if (!ns)
		return 0;
	/* An external one is joined, not made; so are --join-ns's. */
	if (ns->info && ns->info->net_ext_key)
		flags &= ~(uint64_t)CLONE_NEWNET;
	return flags & ~ns->join_flags;
}

/* ---- in the new root process ---- */

/* A failure of the call just made: errno says why. */
#define fail(why, len, ...) err_text(why, len, errno, __VA_ARGS__)

/* The mount point as an O_PATH fd inside the root, made (a directory, or
 * an empty file for a file bound there) if the root lacks it. */
static int point_fd(int rfd, const char *point, bool dir)
{
	const char *rel = point[1] ? point + 1 : ".";
	int fd = openat2_resolve(rfd, rel, O_PATH, RESOLVE_IN_ROOT);
	char parent[PATH_MAX];
	const char *name;
	int pfd;

	if (fd >= 0 || errno != ENOENT)
		return fd;
	name = strrchr(point, '/') + 1;
	snprintf(parent, sizeof(parent), "%.*s", (int)(name - point), point);
	pfd = openat2_resolve(rfd, parent[1] ? parent + 1 : ".", O_PATH | O_DIRECTORY,
			      RESOLVE_IN_ROOT);
	if (pfd < 0)
		return -1;
	if (dir ? mkdirat(pfd, name, 0755) : mknodat(pfd, name, S_IFREG | 0644, 0))
		if (errno != EEXIST) {
			close(pfd);
			return -1;
		}
	close(pfd);
	return openat2_resolve(rfd, rel, O_PATH, RESOLVE_IN_ROOT);
}

/* The directory a tmpfs file's path is in, below the mount and reached
 * through no symlink (mfd itself for a file at the top), and its name. */
static int parent_in(int mfd, const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	char parent[PATH_MAX];

	*name = slash ? slash + 1 : path;
	if (!slash)
		return mfd;
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
	return openat2_resolve(mfd, parent, O_PATH | O_DIRECTORY,
		     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
}

static int put_file(int mfd, const Ferry__TmpfsFile *f)
{
	const char *name;
	char self[40];
	int pfd, fd, ret = 0;
	mode_t type = f->mode & S_IFMT;

	if (!strcmp(f->path, ".")) {
		if (fchownat(mfd, "", f->uid, f->gid, AT_EMPTY_PATH) < 0)
			return -1;
		snprintf(self, sizeof(self), "/proc/self/fd/%d", mfd);
		return chmod(self, f->mode & 07777);
	}
	pfd = parent_in(mfd, f->path, &name);
	if (pfd < 0)
		return -1;
	if (type == S_IFREG) {
		fd = openat(pfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC |
			    (f->offset ? 0 : O_CREAT | O_EXCL), 0600);
		for (size_t off = 0; fd >= 0 && off < f->data.len;) {
			ssize_t w = pwrite(fd, f->data.data + off, f->data.len - off,
					   (off_t)(f->offset + off));

			if (w <= 0) {
				ret = -1;
				break;
			}
			off += (size_t)w;
		}
		if (fd < 0)
			ret = -1;
		else
			close(fd);
	} else if (type == S_IFDIR) {
		ret = mkdirat(pfd, name, 0700);
	} else if (type == S_IFLNK) {
		ret = symlinkat(f->target, pfd, name);
	} else {
		ret = mknodat(pfd, name, type | 0600, (dev_t)f->rdev);
	}
	/* Owner, then mode (a chown clears set-id bits); once per file. */
	if (!ret && !(type == S_IFREG && f->offset))
		ret = fchownat(pfd, name, f->uid, f->gid, AT_SYMLINK_NOFOLLOW);
	if (!ret && !(type == S_IFREG && f->offset) && type != S_IFLNK)
		ret = fchmodat(pfd, name, f->mode & 07777, 0);
	if (pfd != mfd)
		close(pfd);
	return ret;
}

static void put_time(int mfd, const Ferry__TmpfsFile *f)
{
	struct timespec ts[2];
	const char *name;
	int pfd;

	if (!f->has_mtime_ns)
		return;
	ts[0].tv_sec = ts[1].tv_sec = (time_t)(f->mtime_ns / 1000000000u);
	ts[0].tv_nsec = ts[1].tv_nsec = (long)(f->mtime_ns % 1000000000u);
	if (!strcmp(f->path, ".")) {
		utimensat(mfd, "", ts, AT_EMPTY_PATH);
		return;
	}
	pfd = parent_in(mfd, f->path, &name);
	if (pfd < 0)
		return;
	utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
	if (pfd != mfd)
		close(pfd);
}

static int fill_tmpfs(const struct rst_ns *ns, int rfd, const Ferry__MountItem *m, char *why,
		      size_t len)
{
	const char *rel = m->point[1] ? m->point + 1 : ".";
	int mfd = openat2_resolve(rfd, rel, O_RDONLY | O_DIRECTORY, RESOLVE_IN_ROOT);

	if (mfd < 0)
		return fail(why, len, "tmpfs at %s", m->point);
	for (size_t i = 0; i < ns->nr_tf; i++)
		if (ns->tf[i]->mnt == m->id && put_file(mfd, ns->tf[i]) < 0) {
			close(mfd);
			return fail(why, len, "tmpfs at %s: file %s", m->point, ns->tf[i]->path);
		}
	/* Times last, deepest first: making a file changes its directory's. */
	for (size_t i = ns->nr_tf; i-- > 0;)
		if (ns->tf[i]->mnt == m->id)
			put_time(mfd, ns->tf[i]);
	close(mfd);
	return 0;
}

#define REMOUNT_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | \
		       MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

static const Ferry__MountItem *by_id(const struct rst_ns *ns, uint32_t id)
{
	for (size_t i = 0; i < ns->nr_mnt; i++)
		if (ns->mnt[i]->id == id)
			return ns->mnt[i];
	return NULL;
}

/* The tree's terminal, made in the devpts just mounted at m if it is its
 * own: a bind of its slave (runc's /dev/console) may follow. */
static int pty_in(const Ferry__MountItem *m, const struct rst_pty *pty, int rfd, char *why,
		  size_t len)
{
	int mfd, ret;

	if (!pty || !pty->img || !pty->img->has_mnt || pty->img->mnt != m->id)
		return 0;
	mfd = openat2_resolve(rfd, m->point[1] ? m->point + 1 : ".", O_PATH | O_DIRECTORY,
			      RESOLVE_IN_ROOT);
	if (mfd < 0)
		return fail(why, len, "devpts at %s", m->point);
	ret = rst_pty_make(pty, mfd, "ptmx", true, why, len);
	close(mfd);
	return ret;
}

static int one_mount(const struct rst_ns *ns, const struct rst_pty *pty, size_t i, int rfd,
		     char *why, size_t len)
{
	const Ferry__MountItem *m = ns->mnt[i];
	char tgt[40], src[PATH_MAX];
	unsigned long flags = m->flags & REMOUNT_FLAGS;
	bool dir = true, tmpfs;
	struct stat st;
	int fd, sfd = -1, ret;

	if (m->kind == FERRY__MOUNT_KIND__MNT_BIND) {
		const Ferry__MountItem *b = by_id(ns, m->bind_of);
		int n = snprintf(src, sizeof(src), "%s%s", strcmp(b->point, "/") ? b->point : "",
				 m->bind_root);

		if (n >= (int)sizeof(src))
			return fail(why, len, "mount %s: path too long", m->point);
		sfd = openat2_resolve(rfd, src[1] ? src + 1 : ".", O_PATH, RESOLVE_IN_ROOT);
		if (sfd < 0 || fstat(sfd, &st) < 0)
			return fail(why, len, "mount %s: its source %s", m->point, src);
		dir = S_ISDIR(st.st_mode);
		snprintf(src, sizeof(src), "/proc/self/fd/%d", sfd);
	} else if (m->kind == FERRY__MOUNT_KIND__MNT_EXTERNAL) {
		if (stat(ns->ext[i], &st) < 0)
			return fail(why, len, "external mount %s: %s", m->point, ns->ext[i]);
		dir = S_ISDIR(st.st_mode);
		snprintf(src, sizeof(src), "%s", ns->ext[i]);
	}
	fd = point_fd(rfd, m->point, dir);
	if (fd < 0) {
		if (sfd >= 0)
			close(sfd);
		return fail(why, len, "mount point %s", m->point);
	}
	snprintf(tgt, sizeof(tgt), "/proc/self/fd/%d", fd);
	tmpfs = m->kind == FERRY__MOUNT_KIND__MNT_FRESH && !strcmp(m->fstype, "tmpfs");
	if (m->kind == FERRY__MOUNT_KIND__MNT_FRESH) {
		/* A read-only tmpfs is filled first. */
		ret = mount(m->source, tgt, m->fstype, tmpfs ? flags & ~MS_RDONLY : flags,
			    m->data && *m->data ? m->data : NULL);
		if (!ret && tmpfs) {
			ret = fill_tmpfs(ns, rfd, m, why, len);
			if (ret) {
				close(fd);
				return ret;
			}
		}
		if (!ret && !strcmp(m->fstype, "devpts") && pty_in(m, pty, rfd, why, len) < 0) {
			close(fd);
			return -1;
		}
	}
	if (m->kind != FERRY__MOUNT_KIND__MNT_FRESH || (tmpfs && (flags & MS_RDONLY))) {
		if (m->kind != FERRY__MOUNT_KIND__MNT_FRESH)
			ret = mount(src, tgt, NULL, MS_BIND, NULL);
		/* The flags are the new mount's: its root is what the point
		 * names now, not the directory fd was opened on. */
		if (!ret && flags) {
			close(fd);
			fd = openat2_resolve(rfd, m->point[1] ? m->point + 1 : ".", O_PATH,
					     RESOLVE_IN_ROOT);
			snprintf(tgt, sizeof(tgt), "/proc/self/fd/%d", fd);
			ret = fd < 0 ? -1 :
			      mount(NULL, tgt, NULL, MS_REMOUNT | MS_BIND | flags, NULL);
		}
	}
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
	if (ret)
		return fail(why, len, "mount %s (%s)", m->point,
			    m->kind == FERRY__MOUNT_KIND__MNT_FRESH ? m->fstype : src);
	return 0;
}

static int build_mounts(const struct rst_ns *ns, const struct rst_pty *pty, char *why,
			size_t len)
{
	unsigned long rflags = ns->mnt[0]->flags & REMOUNT_FLAGS;
	int rfd;

	errno = 0;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(why, len, "make the new mount namespace private");
	if (mount(ns->root, ns->root, NULL, MS_BIND, NULL) < 0)
		return fail(why, len, "bind the root %s", ns->root);
	rfd = open(ns->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0)
		return fail(why, len, "the root %s", ns->root);
	for (size_t i = 1; i < ns->nr_mnt; i++)
		if (one_mount(ns, pty, i, rfd, why, len) < 0) {
			close(rfd);
			return -1;
		}
	if (rflags && mount(NULL, ns->root, NULL, MS_REMOUNT | MS_BIND | rflags, NULL) < 0) {
		close(rfd);
		return fail(why, len, "remount the root with its flags");
	}
	/* The root becomes /, and ferry's mounts go: pivot_root(".", ".")
	 * stacks the old root on the new, and the detach takes it away. */
	if (fchdir(rfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		close(rfd);
		return fail(why, len, "pivot_root into %s", ns->root);
	}
	close(rfd);
	return 0;
}

static int loopback_up(char *why, size_t len)
{
	struct ifreq ifr;
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret;

	if (sk < 0)
		return fail(why, len, "a socket in the new network namespace");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	ret = ioctl(sk, SIOCGIFFLAGS, &ifr);
	if (!ret) {
		ifr.ifr_flags |= IFF_UP;
		ret = ioctl(sk, SIOCSIFFLAGS, &ifr);
	}
	close(sk);
	return ret < 0 ? fail(why, len, "bring loopback up") : 0;
}

bool rst_ns_makes_pty(const struct rst_ns *ns, const struct rst_pty *pty)
{
	if (!ns || !ns->info || !(ns->info->flags & CLONE_NEWNS) || !pty->img || !pty->img->has_mnt)
		return false;
	for (size_t i = 0; i < ns->nr_mnt; i++)
		if (ns->mnt[i]->id == pty->img->mnt)
			return true;
	return false;
}

int rst_ns_build(const struct rst_ns *ns, const struct rst_pty *pty, char *why, size_t len)
{
	const Ferry__NsInfo *in = ns ? ns->info : NULL;
	uint32_t own;

	errno = 0;
	/* --join-ns first: an mqueue or sysfs mounted below is the joined
	 * namespace's, and so is what the tree is given. */
	if (rst_ns_join(ns, why, len) < 0)
		return -1;
	if (!in)
		return 0;
	/* What was dumped of a joined namespace is its owner's business. */
	own = in->flags & ~(uint32_t)ns->join_flags;
	if ((own & CLONE_NEWUTS) &&
	    ((in->hostname && sethostname(in->hostname, strlen(in->hostname)) < 0) ||
	     (in->domainname && setdomainname(in->domainname, strlen(in->domainname)) < 0)))
		return fail(why, len, "set the hostname");
	/* Joined before the mounts: a sysfs mounted anew shows the network
	 * namespace of its mounter. */
	if ((own & CLONE_NEWNET) && in->net_ext_key) {
		if (setns(ns->net_fd, CLONE_NEWNET) < 0)
			return fail(why, len, "join the network namespace given for `%s`",
				    in->net_ext_key);
		close(ns->net_fd);
	} else if ((own & CLONE_NEWNET) && loopback_up(why, len) < 0) {
		return -1;
	}
	if ((in->flags & CLONE_NEWNS) && build_mounts(ns, pty, why, len) < 0)
		return -1;
	return 0;
}
