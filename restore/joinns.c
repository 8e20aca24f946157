/* --join-ns TYPE:PATH (criu's join_ns): namespaces the restored tree joins
 * instead of making them again, as a Kubernetes pod's containers share the
 * IPC and UTS namespaces of its pause container (runc sends one entry per
 * namespace config.json names by path). Each is opened and checked here,
 * before any process exists; the root's stub joins them first of all, so
 * its children and an mqueue or sysfs mounted anew are of the joined ones.
 * What the images hold of such a namespace (the hostname) is the pod's
 * business, not the tree's: it is not applied, and the log says so. */
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "restore/ns.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const struct {
	const char *name, *what;
	int flag;
	const char *refused;        /* NULL: joined */
} kinds[] = {
	{ "ipc", "an IPC", CLONE_NEWIPC, NULL },
	{ "uts", "a UTS", CLONE_NEWUTS, NULL },
	{ "net", "a network", CLONE_NEWNET, NULL },
	{ "mnt", "a mount", CLONE_NEWNS, "the tree's mount namespace is built again on --root "
	  "(criu's root) from its images; ferry does not restore into an existing one" },
	{ "pid", "a PID", CLONE_NEWPID, "a PID namespace cannot be joined by a restore (criu "
	  "refuses it too); the tree gets its own again, or --pid-ns" },
	{ "user", "a user", CLONE_NEWUSER, "ferry does not dump or restore user namespaces" },
	{ "cgroup", "a cgroup", CLONE_NEWCGROUP, "ferry does not dump or restore cgroup "
	  "namespaces" },
	{ "time", "a time", CLONE_NEWTIME, "ferry does not dump or restore time namespaces" },
};

static size_t kind_of(int flag)
{
	size_t k = 0;

	while (k < ARRAY_SIZE(kinds) - 1 && kinds[k].flag != flag)
		k++;
	return k;
}

int rst_join_flag(const char *name, int *flag, struct ferr *err)
{
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		if (strcmp(name, kinds[k].name))
			continue;
		if (kinds[k].refused)
			return ferr_new(err, EOPNOTSUPP, "join_ns %s is refused: %s", name,
					kinds[k].refused);
		*flag = kinds[k].flag;
		return 0;
	}
	return ferr_new(err, EINVAL, "join_ns `%s`: no such namespace type (ferry joins ipc, uts "
			"and net)", name);
}

/* PATH, or /proc/PID/ns/TYPE for a PID (criu's form), opened and checked
 * to be a namespace of the type: NS_GET_NSTYPE where nsfs has it, else the
 * fd's link (uts:[INO]). */
static int open_ns(const struct rst_join *j, int flag, struct ferr *err)
{
	const char *name = kinds[kind_of(flag)].name, *what = kinds[kind_of(flag)].what;
	char path[PATH_MAX], link[64], is[PATH_MAX];
	cleanup_close int fd = -1;
	ssize_t len;
	int type;

	if (j->path[0] && strspn(j->path, "0123456789") == strlen(j->path))
		snprintf(path, sizeof(path), "/proc/%s/ns/%s", j->path, name);
	else
		snprintf(path, sizeof(path), "%s", j->path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ferr_sys(err, errno, "join_ns %s:%s: open %s", name, j->path, path);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	len = readlink(link, is, sizeof(is) - 1);
	is[len > 0 ? len : 0] = '\0';
	type = ioctl(fd, NS_GET_NSTYPE);
	if (type < 0 && !strncmp(is, name, strlen(name)) && !strncmp(is + strlen(name), ":[", 2))
		type = flag;
	if (type != flag)
		return ferr_new(err, EINVAL, "join_ns %s:%s: %s is %s, not %s namespace", name,
				j->path, path, is[0] ? is : "no namespace", what);
	return steal_fd(fd);
}

/* What the images hold of a namespace joined instead, said in the log. */
static void log_join(const struct rst_ns *ns, const struct rst_ns_join *j, const char *ino)
{
	const Ferry__NsInfo *in = ns->info;
	const char *name = kinds[kind_of(j->flag)].name;

	if (!in || !(in->flags & (uint32_t)j->flag)) {
		pr_info("join_ns %s: the tree joins %s (%s), though it was in no %s namespace of "
			"its own at dump time (it shared the dumping ferry's), as criu does", name,
			j->path, ino, name);
		return;
	}
	if (j->flag == CLONE_NEWUTS)
		pr_info("join_ns uts: the tree joins %s (%s); its dumped hostname `%s` is not set "
			"there: the namespace is its owner's", j->path, ino,
			in->hostname ? in->hostname : "");
	else if (j->flag == CLONE_NEWIPC)
		pr_info("join_ns ipc: the tree joins %s (%s) instead of a new IPC namespace (the "
			"dumped one was empty)", j->path, ino);
	else
		pr_info("join_ns net: the tree joins %s (%s) instead of a new network namespace "
			"with loopback up", j->path, ino);
}

int rst_ns_load_joins(struct rst_ns *ns, const struct rst_opts *o, struct ferr *err)
{
	for (size_t i = 0; i < o->nr_join; i++) {
		struct rst_ns_join *j = &ns->join[ns->nr_join];
		char link[64], ino[64];
		ssize_t len;
		int flag, ret = rst_join_flag(o->join[i].ns, &flag, err);

		if (ret)
			return ret;
		if (ns->join_flags & (uint64_t)flag)
			return ferr_new(err, EINVAL, "join_ns names the %s namespace twice",
					o->join[i].ns);
		if (flag == CLONE_NEWNET && ns->info && ns->info->net_ext_key)
			return ferr_new(err, EINVAL, "join_ns net:%s: the tree's network namespace was "
					"dumped as external `%s`, joined through the fd given for that "
					"key (inherit_fd); not both", o->join[i].path,
					ns->info->net_ext_key);
		ret = open_ns(&o->join[i], flag, err);
		if (ret < 0)
			return ret;
		*j = (struct rst_ns_join){ .flag = flag, .fd = ret, .path = o->join[i].path };
		ns->nr_join++;
		ns->join_flags |= (uint64_t)flag;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", j->fd);
		len = readlink(link, ino, sizeof(ino) - 1);
		ino[len > 0 ? len : 0] = '\0';
		log_join(ns, j, ino);
	}
	return 0;
}

int rst_ns_join(const struct rst_ns *ns, char *why, size_t len)
{
	for (size_t i = 0; ns && i < ns->nr_join; i++) {
		const struct rst_ns_join *j = &ns->join[i];

		if (setns(j->fd, j->flag) < 0)
			return err_text(why, len, errno, "join_ns %s:%s: setns",
				       kinds[kind_of(j->flag)].name, j->path);
		close(j->fd);
	}
	return 0;
}
