/* Namespaces ferry does not dump yet: a container's processes live in
 * their own PID, mount, UTS, IPC and network namespaces. Until ferry dumps
 * them, a request for such a process is refused here, before the dump
 * engine opens or freezes anything, so the container runs on untouched. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "criu/ns.h"

static const char *const ns_names[] = { "pid", "mnt", "uts", "ipc", "net", "cgroup", "user",
					"time" };
#define NR_NS (sizeof(ns_names) / sizeof(ns_names[0]))

static pid_t ppid_of(const char *pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	int ppid = -1;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	/* comm may hold spaces and parentheses: the fields start after the last ')'. */
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL)
		if (sscanf(p + 1, " %*c %d", &ppid) != 1)
			ppid = -1;
	fclose(f);
	return ppid;
}

int swrk_descendants(pid_t pid, pid_t **out, size_t *n, struct ferr *err)
{
	cleanup_free pid_t *all = NULL, *par = NULL, *tree = NULL;
	size_t nall = 0, cap = 0, nt = 1;
	cleanup_dir DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return ferr_sys(err, errno, "open /proc");
	while ((e = readdir(d)) != NULL) {
		pid_t pp;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pp = ppid_of(e->d_name);
		if (pp < 0)
			continue; /* gone meanwhile */
		if (nall == cap) {
			size_t nc = cap ? cap * 2 : 256;
			pid_t *a = realloc(all, nc * sizeof(*a)), *b;

			if (!a)
				return ferr_sys(err, ENOMEM, "list processes");
			all = a;
			b = realloc(par, nc * sizeof(*b));
			if (!b)
				return ferr_sys(err, ENOMEM, "list processes");
			par = b;
			cap = nc;
		}
		all[nall] = (pid_t)atoi(e->d_name);
		par[nall++] = pp;
	}
	tree = malloc((nall + 1) * sizeof(*tree));
	if (!tree)
		return ferr_sys(err, ENOMEM, "list processes");
	tree[0] = pid;
	/* Breadth first: each one found adds its children once. */
	for (size_t i = 0; i < nt; i++)
		for (size_t k = 0; k < nall; k++)
			if (par[k] == tree[i] && all[k] != pid && nt <= nall)
				tree[nt++] = all[k];
	*out = steal_ptr(tree);
	*n = nt;
	return 0;
}

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
	int ret = swrk_descendants(pid, &tree, &n, err);

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
