/* Namespaces ferry does not dump yet: a container's processes live in
 * their own PID, mount, UTS, IPC and network namespaces. Until ferry dumps
 * them, a request for such a process is refused here, before the dump
 * engine opens or freezes anything, so the container runs on untouched. */
#include <stdio.h>
#include <sys/stat.h>

#include "criu/ns.h"
#include "proc/tree.h"

static const char *const ns_names[] = { "pid", "mnt", "uts", "ipc", "net", "cgroup", "user",
					"time" };
#define NR_NS (sizeof(ns_names) / sizeof(ns_names[0]))

/* Which of the namespaces differ between pid and ferry: a bit per ns_names
 * entry. A namespace the kernel does not have (no link) is never refused. */
static int ns_diff(pid_t pid, unsigned *mask, struct ferr *err)
{
	*mask = 0;
	for (size_t i = 0; i < NR_NS; i++) {
		char path[64];
		struct stat self, st;

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

int swrk_ns_refuse(pid_t pid, struct ferr *err)
{
	cleanup_free pid_t *tree = NULL;
	size_t n;
	int ret = ptree_scan(pid, &tree, &n, err);

	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		char names[128] = "";
		size_t used = 0;
		unsigned mask;

		ret = ns_diff(tree[i], &mask, err);
		if (ret == -ESRCH && i > 0)
			continue; /* a descendant that exited meanwhile */
		if (ret)
			return ret;
		if (!mask)
			continue;
		for (size_t k = 0; k < NR_NS; k++)
			if (mask & (1u << k))
				used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
							 used ? ", " : "", ns_names[k]);
		if (i == 0)
			return ferr_new(err, EOPNOTSUPP, "process %d is in namespaces of its own "
					"(%s): ferry cannot dump namespaces yet (a container); "
					"nothing was frozen and it runs on", pid, names);
		return ferr_new(err, EOPNOTSUPP, "process %d, a descendant of %d, is in namespaces "
				"of its own (%s): ferry cannot dump namespaces yet; nothing was "
				"frozen and the tree runs on", tree[i], pid, names);
	}
	return 0;
}
