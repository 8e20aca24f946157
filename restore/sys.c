/* What every restore step uses to act inside the child: one injected
 * syscall with its error named, and ferry's scratch pages there (placed
 * clear of the dumped layout) to pass it arguments. Calls nothing else of
 * restore/: the steps and the runner sit on top of it. */
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "restore/rst.h"

#define HOLE_LOW (1ULL << 32)          /* search for free space above 4 GiB */
#define HOLE_HIGH 0x7ff000000000ULL    /* and below the usual stack area */
#define HOLE_MARGIN (2ULL << 20)       /* keep clear of neighbours, stacks' guard gap */

int rst_sys(struct rst_thread *t, const char *what, long *ret, struct ferr *err, long nr,
	    uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
	long rv;
	int rc = inj_syscall(&t->inj, nr, a1, a2, a3, a4, a5, a6, &rv, err);

	if (rc)
		return ferr_wrap(err, "%s", what);
	if (rv < 0 && rv > -4096)
		return ferr_sys(err, (int)-rv, "%s in the new process", what);
	*ret = rv;
	return 0;
}

uint64_t rst_hole(const struct img_image *img, uint64_t len, unsigned n)
{
	uint64_t hi = HOLE_HIGH;

	for (size_t i = img->nr_vmas + 1; i-- > 0;) {
		uint64_t lo = i ? img->vmas[i - 1]->end : HOLE_LOW;

		if (i && img->vmas[i - 1]->start >= HOLE_HIGH)
			continue;
		if (lo < HOLE_LOW)
			lo = HOLE_LOW;
		/* Up to four places in each free region, from its top down: a
		 * layout with one region free (a static program on a kernel
		 * that puts the vdso above the stack) still has room for the
		 * scratch pages and, below them, the vdso on its way. */
		for (uint64_t k = 1; k <= 4 && hi > lo && hi - lo >= k * (len + HOLE_MARGIN) + HOLE_MARGIN;
		     k++)
			if (n-- == 0)
				return (hi - k * (len + HOLE_MARGIN)) & ~((uint64_t)ferry_page_size() - 1);
		if (i && img->vmas[i - 1]->start < hi)
			hi = img->vmas[i - 1]->start;
		if (hi <= HOLE_LOW)
			break;
	}
	return 0;
}

int rst_scratch_map(struct rst *r, struct ferr *err)
{
	size_t len = (size_t)RST_SCRATCH_PAGES * (size_t)ferry_page_size();

	for (unsigned n = 0;; n++) {
		uint64_t at = rst_hole(r->img, len, n);
		long ret;
		int rc;

		if (!at)
			return ferr_new(err, ENOMEM, "no room for ferry's scratch pages next to the "
					"dumped layout");
		rc = inj_syscall(&r->th[0].inj, __NR_mmap, at, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, (uint64_t)-1, 0,
				 &ret, err);
		if (rc)
			return rc;
		if (ret == (long)at) {
			r->scratch = at;
			r->scratch_size = len;
			r->th[0].inj.scratch = at;
			r->th[0].inj.scratch_size = len;
			return 0;
		}
		if (ret != -EEXIST)
			return ferr_sys(err, ret < 0 ? (int)-ret : EFAULT, "map scratch pages at 0x%"
					PRIx64 " in the new process", at);
	}
}

int rst_scratch_put(struct rst *r, size_t off, const void *buf, size_t len, uint64_t *addr,
		    struct ferr *err)
{
	if (off + len > r->scratch_size)
		return ferr_new(err, E2BIG, "%zu bytes do not fit the scratch pages", len);
	*addr = r->scratch + off;
	return inj_write(&r->th[0].inj, *addr, buf, len, err);
}
