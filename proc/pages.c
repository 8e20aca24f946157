/* What to dump of each kind of VMA, and the state both page backends share. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include "common/compat.h"
#include "common/util.h"
#include "proc/pages.h"

enum pages_policy pages_policy_of(const struct vma *v)
{
	switch (v->kind) {
	case FERRY__VMA_KIND__VMA_VDSO:
	case FERRY__VMA_KIND__VMA_VVAR:
	case FERRY__VMA_KIND__VMA_VSYSCALL:
	case FERRY__VMA_KIND__VMA_SPECIAL:
		return PAGES_NONE; /* the kernel provides these again */
	case FERRY__VMA_KIND__VMA_FILE:
		/* A shared file mapping's data is the file's; a private one's
		 * own data is only what was written (copy-on-write). */
		return v->flags & MAP_SHARED ? PAGES_NONE : PAGES_ANON_ONLY;
	default:
		return PAGES_PRESENT;
	}
}

/* The zero page's PFN, learnt from a page of our own that maps it. */
static uint64_t learn_zero_pfn(void)
{
	size_t ps = (size_t)ferry_page_size();
	volatile char *p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cleanup_close int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t pme = 0;

	if (p == MAP_FAILED)
		return 0;
	(void)p[0]; /* a read fault maps the shared zero page */
	if (fd >= 0)
		pread_all(fd, &pme, sizeof(pme), (uintptr_t)p / ps * sizeof(pme));
	munmap((void *)p, ps);
	return (pme & PME_PRESENT) ? (pme & PME_PFN_MASK) : 0;
}

int pages_ctx_open(struct pages_ctx *pc, int procfd, struct ferr *err)
{
	memset(pc, 0, sizeof(*pc));
	pc->page_size = ferry_page_size();
	pc->pagemap_fd = openat(procfd, "pagemap", O_RDONLY | O_CLOEXEC);
	if (pc->pagemap_fd < 0)
		return ferr_sys(err, errno, "open pagemap");
	pc->zero_pfn = learn_zero_pfn();
	return 0;
}

void pages_ctx_close(struct pages_ctx *pc)
{
	/* A zeroed context has fd 0, which is not ours: page_size tells an
	 * opened context (set before the fd is opened). */
	if (!pc->page_size)
		return;
	if (pc->pagemap_fd >= 0)
		close(pc->pagemap_fd);
	free(pc->buf);
	pc->buf = NULL;
	pc->pagemap_fd = -1;
	pc->page_size = 0;
}

const struct pages_ops *pages_ops_by_name(const char *name)
{
	if (strcmp(name, pages_scan_ops.name) == 0)
		return &pages_scan_ops;
	if (strcmp(name, pages_pagemap_ops.name) == 0)
		return &pages_pagemap_ops;
	return NULL;
}

