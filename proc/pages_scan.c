/* Populated pages by the PAGEMAP_SCAN ioctl (Linux 6.7): the kernel walks
 * the page tables and returns ranges by category, so untouched memory costs
 * nothing to skip. */
#include <string.h>

#include "common/compat.h"
#include "common/util.h"
#include "proc/pages.h"

static int scan_next(struct pages_ctx *pc, const struct vma *v, enum pages_policy pol,
		     uint64_t *pos, struct page_run *out, size_t *n, struct ferr *err)
{
	struct page_region *vec;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = *pos,
		.end = v->end,
		.vec_len = PAGES_BATCH,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PFNZERO,
	};
	int ret;

	*n = 0;
	if (pol == PAGES_NONE) {
		*pos = v->end;
		return 0;
	}
	if (!pc->buf) {
		pc->buf = malloc(PAGES_BATCH * sizeof(*vec));
		if (!pc->buf)
			return ferr_sys(err, ENOMEM, "PAGEMAP_SCAN buffer");
	}
	vec = pc->buf;
	arg.vec = (uintptr_t)vec;
	if (pol == PAGES_ANON_ONLY) {
		/* Page-cache pages of a private file mapping are the file's; only
		 * anonymous (written, copied) pages are the process's own. */
		arg.category_inverted = PAGE_IS_FILE;
		arg.category_mask = PAGE_IS_FILE;
	}
	ret = ioctl(pc->pagemap_fd, PAGEMAP_SCAN, &arg);
	if (ret < 0) {
		if (errno == ESRCH)
			return ferr_new(err, ESRCH, "the process exited while its pages were scanned");
		return ferr_sys(err, errno, "PAGEMAP_SCAN 0x%llx-0x%llx", (unsigned long long)*pos,
				(unsigned long long)v->end);
	}
	/* When the vector fills, Linux 6.18 was seen to return regions beyond
	 * the walk_end it reports (index 1024 on, of 1066). Keep only what lies
	 * below walk_end, clipping a region that straddles it, and scan on from
	 * there: correct whatever the kernel meant by it. */
	uint64_t stop = arg.walk_end > arg.start ? arg.walk_end : v->end;
	size_t nr = 0;

	for (int i = 0; i < ret && vec[i].start < stop; i++)
		out[nr++] = (struct page_run){ .start = vec[i].start,
					       .end = vec[i].end < stop ? vec[i].end : stop,
					       .zero = (vec[i].categories & PAGE_IS_PFNZERO) != 0 };
	*n = nr;
	*pos = stop;
	return 0;
}

const struct pages_ops pages_scan_ops = { "pagemap-scan", scan_next };
