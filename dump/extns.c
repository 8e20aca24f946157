/* criu's --external net[INO]:KEY (runc sends it for a container whose
 * network namespace was made before it, by path in config.json): the
 * tree's network namespace is the caller's, checked to be inode INO, never
 * dumped, and recorded in tree.img's NsInfo as KEY, which the restore joins
 * through the fd its caller gives for KEY (restore/ns.c). Other external
 * kinds are refused by name. */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "dump/ns.h"

#define NET_KEY_MAX 255

int dump_ns_external(struct dump_ns_opts *o, const char *spec, struct ferr *err)
{
	const char *colon = strchr(spec, ':');
	unsigned long long ino;
	char *end;

	if (strncmp(spec, "net[", 4))
		return ferr_new(err, EOPNOTSUPP, "external `%s` is refused: ferry takes only an "
				"external network namespace (net[INODE]:KEY); external PID, mount "
				"and other namespaces, devices and files are not supported", spec);
	errno = 0;
	ino = strtoull(spec + 4, &end, 10);
	if (errno || spec[4] < '0' || spec[4] > '9' || end[0] != ']' || end[1] != ':' || end + 1 != colon ||
	    !ino || !colon[1] || strlen(colon + 1) > NET_KEY_MAX)
		return ferr_new(err, EINVAL, "external `%s`: a network namespace is named "
				"net[INODE]:KEY (KEY under %d bytes)", spec, NET_KEY_MAX + 1);
	if (o->net_key && (o->net_ino != ino || strcmp(o->net_key, colon + 1)))
		return ferr_new(err, EINVAL, "external `%s`: the network namespace was named "
				"external already (net[%" PRIu64 "]:%s); a tree has one", spec,
				o->net_ino, o->net_key);
	o->net_ino = ino;
	o->net_key = colon + 1;
	return 0;
}

/* The network namespace of the process whose /proc directory is procfd
 * (or of pid when procfd < 0) is the external one. */
static int net_is(const struct dump_ns_opts *o, pid_t pid, int procfd, const char *when,
		  struct ferr *err)
{
	char path[48];
	struct stat st;
	int ret;

	if (procfd >= 0) {
		ret = fstatat(procfd, "ns/net", &st, 0);
		snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	} else {
		snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
		ret = stat(path, &st);
	}
	if (ret < 0)
		return ferr_sys(err, errno == ENOENT ? ESRCH : errno, "%s", path);
	if ((uint64_t)st.st_ino == o->net_ino)
		return 0;
	return ferr_new(err, EOPNOTSUPP, "process %d is in network namespace net:[%" PRIu64 "], "
			"not net:[%" PRIu64 "], the one named external (net[%" PRIu64 "]:%s); %s",
			pid, (uint64_t)st.st_ino, o->net_ino, o->net_ino, o->net_key, when);
}

int dump_ns_ext_net_pid(pid_t pid, const struct dump_ns_opts *o, struct ferr *err)
{
	if (!o->net_key)
		return 0;
	return net_is(o, pid, -1, "nothing was frozen and it runs on", err);
}

int dump_ns_ext_net_check(const struct ptree *pt, const struct dump_ns_opts *o,
			  struct ferr *err)
{
	for (size_t i = 0; o->net_key && i < pt->n; i++) {
		int ret;

		if (pt->p[i].zombie)
			continue; /* none any more */
		ret = net_is(o, pt->p[i].pid, pt->p[i].t.procfd, "nothing was changed and the "
			     "tree runs on", err);
		if (ret)
			return ret;
	}
	return 0;
}

int dump_ns_ext_net_item(const struct dump_ns_opts *o, struct dump_ns *ns, struct ferr *err)
{
	Ferry__TreeItem *it;
	Ferry__NsInfo *info;

	if (!o->net_key)
		return 0;
	/* A container's NsInfo, made by dump_ns_collect: the key goes in it. */
	for (size_t i = 0; i < ns->n; i++) {
		if (!ns->items[i]->ns)
			continue;
		info = ns->items[i]->ns;
		info->flags |= CLONE_NEWNET;
		info->has_net_empty = info->net_empty = false;
		free(info->net_ext_key);
		info->net_ext_key = strdup(o->net_key);
		return info->net_ext_key ? 0 : ferr_sys(err, ENOMEM, "namespaces");
	}
	/* A tree without namespaces of its own beside it (a process under
	 * `ip netns exec`): the network namespace alone. */
	it = malloc(sizeof(*it));
	info = malloc(sizeof(*info));
	if (it)
		ferry__tree_item__init(it);
	if (info) {
		ferry__ns_info__init(info);
		info->flags = CLONE_NEWNET;
		info->net_ext_key = strdup(o->net_key);
	}
	if (!it || !info || !info->net_ext_key) {
		free(it);
		if (info)
			free(info->net_ext_key);
		free(info);
		return ferr_sys(err, ENOMEM, "namespaces");
	}
	it->ns = info;
	{
		Ferry__TreeItem **v = realloc(ns->items, (ns->n + 1) * sizeof(*v));

		if (!v) {
			ferry__tree_item__free_unpacked(it, NULL);
			return ferr_sys(err, ENOMEM, "namespaces");
		}
		ns->items = v;
		ns->items[ns->n++] = it;
	}
	return 0;
}
