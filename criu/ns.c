/* Namespaces ferry does not dump yet (cgroup, user, time), and namespaces
 * nested inside the tree's, are refused here, before the dump engine opens
 * or freezes anything, so the container runs on untouched. A container's
 * own PID, mount, UTS, IPC and network namespaces are dumped (dump/ns.c). */
#include <stdio.h>
#include <sys/stat.h>

#include "criu/ns.h"
#include "proc/tree.h"

static const char *const ns_names[] = { "pid", "mnt", "uts", "ipc", "net", "cgroup", "user",
					"time" };
#define NR_NS (sizeof(ns_names) / sizeof(ns_names[0]))
#define DUMPED 0x1fu    /* pid (its init's tree), mnt, uts, ipc, net: dump/ns.c */

/* Which of the namespaces differ between pid and ref (0: ferry): a bit per
 * ns_names entry. A namespace the kernel does not have is never refused. */
static int ns_diff(pid_t pid, pid_t ref, unsigned *mask, struct ferr *err)
{
	*mask = 0;
	for (size_t i = 0; i < NR_NS; i++) {
		char path[64];
		struct stat self, st;

		if (ref)
			snprintf(path, sizeof(path), "/proc/%d/ns/%s", ref, ns_names[i]);
		else
			snprintf(path, sizeof(path), "/proc/self/ns/%s", ns_names[i]);
		if (stat(path, &self) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns_names[i]);
		if (stat(path, &st) < 0) {
			if (errno == ENOENT || errno == ESRCH)
				return ferr_sys(err, ESRCH, "process %d", pid);
			return ferr_sys(err, errno, "%s", path);
		}
		if (st.st_dev != self.st_dev || st.st_ino != self.st_ino)
			*mask |= 1u << i;
	}
	return 0;
}

static void names_of(unsigned mask, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t k = 0; k < NR_NS; k++)
		if (mask & (1u << k))
			used += (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "",
						 ns_names[k]);
}

int swrk_ns_refuse(pid_t pid, struct ferr *err)
{
	cleanup_free pid_t *tree = NULL;
	char names[128];
	unsigned mask, root_mask = 0;
	size_t n;
	int ret = ptree_scan(pid, &tree, &n, err);

	if (!ret)
		ret = ns_diff(pid, 0, &root_mask, err);
	mask = root_mask;
	if (ret)
		return ret;
	if (mask & ~DUMPED) {
		names_of(mask & ~DUMPED, names, sizeof(names));
		return ferr_new(err, EOPNOTSUPP, "process %d is in namespaces of its own that ferry "
				"does not dump yet (%s); nothing was frozen and it runs on", pid,
				names);
	}
	for (size_t i = 1; i < n; i++) {
		ret = ns_diff(tree[i], pid, &mask, err);
		if (ret == -ESRCH)
			continue; /* a descendant that exited meanwhile */
		if (ret)
			return ret;
		if (!mask)
			continue;
		names_of(mask, names, sizeof(names));
		return ferr_new(err, EOPNOTSUPP, "process %d, a descendant of %d, is in namespaces "
				"of its own (%s): nested namespaces are not dumped; nothing was "
				"frozen and the tree runs on", tree[i], pid, names);
	}
	/* Namespaces are a container's, dumped from its init: CRIU would dump
	 * them for any process, and ferry would restore them in its own. */
	if (root_mask && !(root_mask & 1u)) {
		names_of(root_mask, names, sizeof(names));
		return ferr_new(err, EOPNOTSUPP, "process %d is in namespaces of its own (%s) but "
				"not in a PID namespace of its own: ferry dumps a container's "
				"namespaces from the init of its PID namespace; nothing was frozen "
				"and it runs on", pid, names);
	}
	return 0;
}
