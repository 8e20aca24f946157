/* Layout by parsing /proc/PID/maps: the fallback for kernels before 6.11. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/util.h"
#include "proc/layout.h"

/* "start-end perms offset major:minor inode   name" */
static int parse_line(char *line, struct vma *v, char **name)
{
	char perms[5];
	int n = 0;

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n", &v->start,
		   &v->end, perms, &v->pgoff, &v->dev_major, &v->dev_minor, &v->inode, &n) < 7)
		return -1;
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->flags = perms[3] == 's' ? MAP_SHARED : MAP_PRIVATE;
	*name = line + n;
	(*name)[strcspn(*name, "\n")] = '\0';
	return 0;
}

static int maps_read(int procfd, struct vma_list *out, struct ferr *err)
{
	cleanup_fclose FILE *f = fopen_at(procfd, "maps");
	cleanup_free char *line = NULL;
	size_t cap = 0;
	int lineno = 0;

	if (!f)
		return ferr_sys(err, errno, "open maps");
	while (getline(&line, &cap, f) > 0) {
		struct vma v = { 0 };
		char *name;
		int ret;

		lineno++;
		if (parse_line(line, &v, &name))
			return ferr_new(err, EIO, "maps line %d does not parse: %s", lineno, line);
		/* The vsyscall page is the kernel's gate area, not a VMA of the
		 * process: PROCMAP_QUERY does not return it, nor does restore map it. */
		if (strcmp(name, "[vsyscall]") == 0)
			continue;
		ret = vma_list_add(out, &v, name, err);
		if (ret)
			return ret;
	}
	if (ferror(f))
		return ferr_sys(err, errno, "read maps");
	return 0;
}

const struct layout_ops layout_maps_ops = { "maps", maps_read };
