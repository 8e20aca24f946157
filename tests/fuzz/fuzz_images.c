/* libFuzzer target for the image reader. An input packs the files of a dump
 * directory and of its parent: records of <u8 slot><u32 LE length><bytes>,
 * slots 1..7 for dir/<type file> and 9..15 for dir/p/<type file> (slot - 8).
 * tests/fuzz/pack.py builds such inputs from real directories. The reader
 * must answer every input with success or a clean error. */
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images/img.h"

static char root[64];

static void write_file(const char *dir, int type, const uint8_t *data, size_t len)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, img_type_file((enum img_type)type));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return;
	if (write(fd, data, len) < 0) {
		/* nothing to do: a missing file is one more input to handle */
	}
	close(fd);
}

static void clear_dir(const char *dir)
{
	char path[160];

	for (int t = 1; t < IMG_NR_TYPES; t++) {
		snprintf(path, sizeof(path), "%s/%s", dir, img_type_file((enum img_type)t));
		unlink(path);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char child[96], parent[96];
	struct img_image *img = NULL;
	struct img_verify_report rep;
	struct ferr err;

	if (!root[0]) {
		snprintf(root, sizeof(root), "%s/ferry-fuzz-XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(root))
			abort();
	}
	snprintf(child, sizeof(child), "%s/c", root);
	snprintf(parent, sizeof(parent), "%s/c/p", root);
	mkdir(child, 0700);
	mkdir(parent, 0700);
	clear_dir(child);
	clear_dir(parent);

	while (size >= 5) {
		uint8_t slot = data[0];
		uint32_t len;

		memcpy(&len, data + 1, 4);
		len = le32toh(len);
		data += 5;
		size -= 5;
		if (len > size)
			len = (uint32_t)size;
		/* 1..8: the first eight files, 9..16 the parent's; 17: fdata.img */
		if (slot >= 1 && slot <= 8)
			write_file(child, slot, data, len);
		else if (slot >= 9 && slot <= 16)
			write_file(parent, slot - 8, data, len);
		else if (slot == 17)
			write_file(child, IMG_FDATA, data, len);
		data += len;
		size -= len;
	}

	if (img_open(&img, child, &err) == 0) {
		Ferry__Process *proc = NULL;
		Ferry__Thread **th = NULL;
		Ferry__Fd **fds = NULL;
		size_t nth = 0, nfds = 0;
		uint8_t *buf = malloc(16 * (size_t)img->page_size);

		if (img_read_process(img, &proc, &err) == 0)
			ferry__process__free_unpacked(proc, NULL);
		if (img_read_threads(img, &th, &nth, &err) == 0)
			img_free_entries(th, nth);
		if (img_read_fds(img, &fds, &nfds, &err) == 0)
			img_free_entries(fds, nfds);
		for (size_t i = 0; buf && i < img->nr_runs && i < 16; i++) {
			uint64_t n = img->runs[i].nr_pages < 16 ? img->runs[i].nr_pages : 16;
			if (img_read_pages(img, img->runs[i].vaddr, n, buf, &err) == 0)
				continue;
		}
		free(buf);
		if (img_verify(img, &rep, &err) == 0 && rep.bad_runs)
			abort(); /* success must mean no bad run */
		img_close(img);
	}
	return 0;
}
