/* Populated pages from /proc/PID/pagemap entries: 8 bytes per page, read in
 * chunks and merged into runs. The fallback for kernels before 6.7. */
#include <string.h>

#include "common/compat.h"
#include "common/util.h"
#include "proc/pages.h"

#define PM_CHUNK 65536  /* entries per read: 512 KiB */

static int pagemap_next(struct pages_ctx *pc, const struct vma *v, enum pages_policy pol,
			uint64_t *pos, struct page_run *out, size_t *n, struct ferr *err)
{
	uint64_t ps = (uint64_t)pc->page_size, *pme;
	uint64_t npages = (v->end - *pos) / ps;
	size_t nr = 0;
	int ret;

	*n = 0;
	if (pol == PAGES_NONE) {
		*pos = v->end;
		return 0;
	}
	if (!pc->buf) {
		pc->buf = malloc(PM_CHUNK * sizeof(*pme));
		if (!pc->buf)
			return ferr_sys(err, ENOMEM, "pagemap buffer");
	}
	pme = pc->buf;
	if (npages > PM_CHUNK)
		npages = PM_CHUNK;
	ret = pread_all(pc->pagemap_fd, pme, npages * sizeof(*pme), *pos / ps * sizeof(*pme));
	if (ret)
		return ferr_sys(err, ret == -ENODATA ? ESRCH : -ret, "read pagemap at 0x%llx",
				(unsigned long long)*pos);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t e = pme[i], addr = *pos + i * ps;
		bool zero;

		if (!(e & (PME_PRESENT | PME_SWAP)))
			continue;
		/* Bit 61: page cache or shared memory; in a private file
		 * mapping that is the file's page, not the process's. */
		if (pol == PAGES_ANON_ONLY && (e & PME_FILE_SHARED))
			continue;
		zero = (e & PME_PRESENT) && pc->zero_pfn && (e & PME_PFN_MASK) == pc->zero_pfn;
		if (nr && out[nr - 1].end == addr && out[nr - 1].zero == zero) {
			out[nr - 1].end += ps;
			continue;
		}
		if (nr == PAGES_BATCH) {
			*pos = addr;
			*n = nr;
			return 0;
		}
		out[nr++] = (struct page_run){ .start = addr, .end = addr + ps, .zero = zero };
	}
	*pos += npages * ps;
	*n = nr;
	return 0;
}

const struct pages_ops pages_pagemap_ops = { "pagemap", pagemap_next };
