/* Test tool: run restore's validation (restore/validate.c) on an image
 * directory and print its verdict. usage: rstcheck DIR */
#include <stdio.h>

#include "restore/validate.h"

int main(int argc, char **argv)
{
	struct img_image *img;
	struct rst_check_report rep;
	struct ferr err;
	int ret;

	if (argc != 2)
		return 2;
	if (img_open(&img, argv[1], &err)) {
		fprintf(stderr, "rstcheck: %s\n", err.msg);
		return 1;
	}
	ret = rst_validate(img, &rep, true, &err);
	img_close(img);
	if (ret) {
		fprintf(stderr, "rstcheck: %s\n", err.msg);
		return 1;
	}
	printf("rstcheck: restorable: %llu runs checked, %zu files unchanged\n",
	       (unsigned long long)rep.verify.runs_checked, rep.files_checked);
	return 0;
}
