/* Test tool: run restore's validation (restore/validate.c) on an image
 * directory and print its verdict. usage: rstcheck DIR [content|size|none] */
#include <stdio.h>

#include "restore/validate.h"

int main(int argc, char **argv)
{
	struct img_image *img;
	struct rst_check_report rep;
	struct rst_files files = { 0 };
	struct ferr err;
	int ret;

	if (argc < 2 || argc > 3 || (argc == 3 && rst_file_validation_parse(argv[2], &files.mode)))
		return 2;
	if (img_open(&img, argv[1], &err)) {
		fprintf(stderr, "rstcheck: %s\n", err.msg);
		return 1;
	}
	ret = rst_validate(img, &rep, true, &files, &err);
	img_close(img);
	rst_files_free(&files);
	if (ret) {
		fprintf(stderr, "rstcheck: %s\n", err.msg);
		return 1;
	}
	printf("rstcheck: restorable: %llu runs checked, %zu files unchanged\n",
	       (unsigned long long)rep.verify.runs_checked, rep.files_checked);
	return 0;
}
