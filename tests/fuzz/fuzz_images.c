/* libFuzzer target for the image reader. An input packs a dump directory
 * tree (tests/fuzz/unpack.h: the dump, its parent at p/, a tree's other
 * processes at pid-PID/); tests/fuzz/pack.py builds such inputs from real
 * directories. Everything a restore reads is read: inventory, process,
 * threads, fds, pages (and their checksums), tree.img and, through it, each
 * other process's dump, and fdata.img with every file's contents in it.
 * The reader must answer every input with success or a clean error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images/img.h"
#include "tests/fuzz/unpack.h"

static char root[64];
static bool verbose;   /* FERRY_FUZZ_VERBOSE=1: say what each input reached */

static void note(const char *dir, const char *what, const struct ferr *err)
{
	if (verbose)
		fprintf(stderr, "fuzz_images: %s: %s%s%s\n", dir, what, err ? ": " : "",
			err ? err->msg : "");
}

/* Every byte of every file's contents the fds point into fdata.img. */
static void read_fdata(struct img_image *img, Ferry__Fd **fds, size_t n)
{
	struct img_fdata d = { 0 };
	volatile uint8_t sink = 0;
	struct ferr err;
	int ret = img_fdata_map(img, &d, &err);

	if (ret) {
		if (ret != -ENOENT) /* -ENOENT: no fdata.img, and no message */
			note(img->path, "fdata.img", &err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const Ferry__FileData *fd = fds[i]->data;

		if (!fd)
			continue;
		/* img_read_fds checked each to lie inside the file. */
		if (fd->offset > d.size || fd->size > d.size - fd->offset)
			abort();
		for (uint64_t k = 0; k < fd->size; k++)
			sink ^= d.map[fd->offset + k];
	}
	(void)sink;
	img_fdata_unmap(&d);
}

static void read_dump(const char *dir, bool tree_member);

/* tree.img, and the dump of each process it names. */
static void read_tree(struct img_image *img, const char *dir)
{
	Ferry__TreeItem **items = NULL;
	size_t n = 0;
	struct ferr err;

	if (img_read_tree(img, &items, &n, &err) != 0) {
		note(dir, "tree.img", &err);
		return;
	}
	note(dir, n ? "a tree" : "no tree", NULL);
	for (size_t i = 1; i < n; i++) {
		const Ferry__TreeProc *p = items[i]->proc;
		char sub[256];

		if (!p || p->zombie)
			continue;
		/* img_check_tree allows nothing but pid-PID. */
		if (!p->dir || strncmp(p->dir, "pid-", 4) || strchr(p->dir, '/'))
			abort();
		snprintf(sub, sizeof(sub), "%s/%s", dir, p->dir);
		read_dump(sub, true);
	}
	img_free_entries(items, n);
}

static void read_dump(const char *dir, bool tree_member)
{
	struct img_image *img = NULL;
	struct img_verify_report rep;
	Ferry__Process *proc = NULL;
	Ferry__Thread **th = NULL;
	Ferry__Fd **fds = NULL;
	size_t nth = 0, nfds = 0;
	struct ferr err;
	uint8_t *buf;

	if (img_open(&img, dir, &err) != 0) {
		note(dir, "open", &err);
		return;
	}
	buf = malloc(16 * (size_t)img->page_size);
	if (img_read_process(img, &proc, &err) == 0)
		ferry__process__free_unpacked(proc, NULL);
	if (img_read_threads(img, &th, &nth, &err) == 0)
		img_free_entries(th, nth);
	if (img_read_fds(img, &fds, &nfds, &err) != 0) {
		note(dir, "fds", &err);
	} else {
		read_fdata(img, fds, nfds);
		img_free_entries(fds, nfds);
	}
	for (size_t i = 0; buf && i < img->nr_runs && i < 16; i++) {
		uint64_t n = img->runs[i].nr_pages < 16 ? img->runs[i].nr_pages : 16;
		if (img_read_pages(img, img->runs[i].vaddr, n, buf, &err) == 0)
			continue;
	}
	free(buf);
	if (img_verify(img, &rep, &err) == 0 && rep.bad_runs)
		abort(); /* success must mean no bad run */
	if (!tree_member) /* a member's own tree.img is not read by a restore */
		read_tree(img, dir);
	img_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!root[0]) {
		verbose = getenv("FERRY_FUZZ_VERBOSE") && atoi(getenv("FERRY_FUZZ_VERBOSE"));
		snprintf(root, sizeof(root), "%s/ferry-fuzz-XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(root))
			abort();
	}
	fuzz_unpack(root, data, size);
	read_dump(root, false);
	return 0;
}
