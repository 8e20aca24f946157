/* Compare an image directory with a workload's description of its memory:
 * every "data" page must be in the dump with its pattern, every "zero" page
 * must read as zeroes, every "absent" page must not be in the dump at all.
 * usage: checkdump DIR DESC */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "images/img.h"
#include "tests/workloads/pattern.h"

int main(int argc, char **argv)
{
	struct img_image *img;
	struct ferr err;
	char kind[16], name[64];
	uint64_t addr, npages, seed, checked = 0, bad = 0;
	size_t ps;
	uint8_t *page;
	FILE *f;

	if (argc != 3) {
		fprintf(stderr, "usage: checkdump DIR DESC\n");
		return 2;
	}
	if (img_open(&img, argv[1], &err)) {
		fprintf(stderr, "checkdump: %s\n", err.msg);
		return 1;
	}
	ps = img->page_size;
	page = malloc(ps);
	f = fopen(argv[2], "r");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	while (fscanf(f, "%15s %" SCNx64 " %" SCNu64 " %" SCNu64 " %63s", kind, &addr, &npages,
		      &seed, name) == 5) {
		for (uint64_t i = 0; i < npages; i++) {
			uint64_t a = addr + i * ps;
			struct img_page_loc loc;
			const char *why = NULL;

			checked++;
			if (!strcmp(kind, "absent")) {
				if (img_resolve(img, a, &loc) == 0)
					why = "in the dump but never written";
			} else if (img_read_pages(img, a, 1, page, &err)) {
				why = "missing from the dump";
			} else if (!strcmp(kind, "data")) {
				if (patt_check(page, a, ps, seed))
					why = "wrong contents";
			} else {
				for (size_t k = 0; k < ps && !why; k++)
					if (page[k])
						why = "not zero";
			}
			if (why && bad++ < 10)
				fprintf(stderr, "checkdump: %s page %" PRIu64 " at 0x%" PRIx64 ": %s\n", name,
					i, a, why);
		}
	}
	fclose(f);
	free(page);
	img_close(img);
	printf("checkdump: %" PRIu64 " pages checked, %" PRIu64 " bad\n", checked, bad);
	return bad || !checked ? 1 : 0;
}
