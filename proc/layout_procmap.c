/* Layout by the PROCMAP_QUERY ioctl (Linux 6.11): walk with
 * COVERING_OR_NEXT_VMA from address 0, one binary query per VMA. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>

#include "common/compat.h"
#include "common/util.h"
#include "proc/layout.h"

static int procmap_read(int procfd, struct vma_list *out, struct ferr *err)
{
	cleanup_close int fd = openat(procfd, "maps", O_RDONLY | O_CLOEXEC);
	char name[PATH_MAX + 32];
	uint64_t addr = 0;

	if (fd < 0)
		return ferr_sys(err, errno, "open maps");
	for (;;) {
		struct procmap_query q = {
			.size = sizeof(q),
			.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
			.query_addr = addr,
			.vma_name_addr = (uintptr_t)name,
			.vma_name_size = sizeof(name),
		};
		struct vma v = { 0 };
		int ret;

		name[0] = '\0';
		if (ioctl(fd, PROCMAP_QUERY, &q) < 0) {
			if (errno == ENOENT)
				return 0; /* no VMA at or above addr: done */
			if (errno == ESRCH)
				return ferr_new(err, ESRCH, "the process exited while its layout was read");
			return ferr_sys(err, errno, "PROCMAP_QUERY at 0x%llx", (unsigned long long)addr);
		}
		v.start = q.vma_start;
		v.end = q.vma_end;
		v.pgoff = q.vma_offset;
		v.prot = (q.vma_flags & PROCMAP_QUERY_VMA_READABLE ? PROT_READ : 0) |
			 (q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? PROT_WRITE : 0) |
			 (q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE ? PROT_EXEC : 0);
		v.flags = q.vma_flags & PROCMAP_QUERY_VMA_SHARED ? MAP_SHARED : MAP_PRIVATE;
		v.dev_major = q.dev_major;
		v.dev_minor = q.dev_minor;
		v.inode = q.inode;
		ret = vma_list_add(out, &v, q.vma_name_size ? name : NULL, err);
		if (ret)
			return ret;
		if (q.vma_end <= addr)
			return ferr_new(err, EIO, "PROCMAP_QUERY went backwards at 0x%llx",
					(unsigned long long)addr);
		addr = q.vma_end;
	}
}

const struct layout_ops layout_procmap_ops = { "procmap", procmap_read };
