/* Check which pages of a region a dump copied: exactly the pages i (from 0)
 * with i % MOD == REM must be data runs of DIR's own pagemap, every other
 * page of the region an in-parent run. This is how the trackers are held to
 * a known write pattern: no page more, no page less.
 * usage: runcheck DIR START NPAGES MOD REM   (START in hex, as 0x...) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "images/img.h"

/* The flags of the run holding addr in img's own pagemap, or -1 if none. */
static int flags_at(const struct img_image *img, uint64_t addr)
{
	size_t lo = 0, hi = img->nr_runs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct img_run *r = &img->runs[mid];

		if (addr < r->vaddr)
			hi = mid;
		else if (addr >= r->vaddr + r->nr_pages * img->page_size)
			lo = mid + 1;
		else
			return (int)r->flags;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct img_image *img;
	struct ferr err;
	uint64_t start, n, mod, rem, data = 0, parent = 0, bad = 0;

	if (argc != 6) {
		fprintf(stderr, "usage: runcheck DIR START NPAGES MOD REM\n");
		return 2;
	}
	start = strtoull(argv[2], NULL, 16);
	n = strtoull(argv[3], NULL, 0);
	mod = strtoull(argv[4], NULL, 0);
	rem = strtoull(argv[5], NULL, 0);
	if (!mod || img_open(&img, argv[1], &err)) {
		fprintf(stderr, "runcheck: %s\n", mod ? err.msg : "MOD must not be 0");
		return 2;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t a = start + i * img->page_size;
		int f = flags_at(img, a);
		bool want_data = i % mod == rem;

		if (f == 0)
			data++;
		else if (f == IMG_RUN_IN_PARENT)
			parent++;
		if ((want_data && f != 0) || (!want_data && f != IMG_RUN_IN_PARENT)) {
			if (bad++ < 5)
				printf("page %" PRIu64 " (0x%" PRIx64 "): %s, expected %s\n", i, a,
				       f < 0 ? "no run" : f == 0 ? "data" : f == IMG_RUN_ZERO ? "zero" : "parent",
				       want_data ? "data" : "parent");
		}
	}
	printf("%s: %" PRIu64 " data, %" PRIu64 " in parent, %" PRIu64 " wrong\n",
	       bad ? "wrong" : "exact", data, parent, bad);
	img_close(img);
	return bad ? 1 : 0;
}
