/* Unit tests of the image library: round trips, parent chains, and every
 * validation error a reader must raise on bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <ftw.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "images/format.h"
#include "images/load.h"

#define PS 4096u

struct fixture {
	char root[64];
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->root, "/tmp/ferry-test-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static char *path_in(struct fixture *f, const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", f->root, name);
	return buf[i];
}

/* Page contents that encode their own address and a generation. */
static void fill_page(uint8_t *p, uint64_t vaddr, uint32_t gen)
{
	for (size_t i = 0; i < PS; i += 16) {
		uint64_t a = vaddr + i;
		memcpy(p + i, &a, 8);
		memcpy(p + i + 8, &gen, 4);
		memset(p + i + 12, (int)(gen & 0xff), 4);
	}
}

static void check_page(const uint8_t *p, uint64_t vaddr, uint32_t gen)
{
	uint8_t want[PS];

	fill_page(want, vaddr, gen);
	assert_memory_equal(p, want, PS);
}

#define VA 0x10000000ull

static void add_vma(struct img_writer *w, uint64_t start, uint64_t end, uint32_t prot)
{
	Ferry__Vma v = FERRY__VMA__INIT;
	struct ferr err;

	v.start = start;
	v.end = end;
	v.prot = prot;
	v.flags = MAP_PRIVATE;
	v.kind = FERRY__VMA_KIND__VMA_ANON;
	assert_int_equal(img_write_vma(w, &v, &err), 0);
}

static void add_proc(struct img_writer *w, uint32_t pid)
{
	Ferry__Process p = FERRY__PROCESS__INIT;
	Ferry__Thread t = FERRY__THREAD__INIT;
	uint8_t regs[27 * 8] = { 1, 2, 3 };
	struct ferr err;

	p.pid = pid;
	p.comm = "unit";
	assert_int_equal(img_write_process(w, &p, &err), 0);
	t.tid = pid;
	t.gpregs.data = regs;
	t.gpregs.len = sizeof(regs);
	assert_int_equal(img_write_thread(w, &t, &err), 0);
	t.tid = pid + 1;
	assert_int_equal(img_write_thread(w, &t, &err), 0);
}

static void add_data(struct img_writer *w, uint64_t vaddr, uint64_t n, uint32_t gen)
{
	uint8_t *buf = malloc(n * PS);
	struct ferr err;

	for (uint64_t i = 0; i < n; i++)
		fill_page(buf + i * PS, vaddr + i * PS, gen);
	assert_int_equal(img_pages_data(w, vaddr, buf, n, &err), 0);
	free(buf);
}

/* A full dump: VMA [VA, VA+1024p), data 0..599 (gen), zero 600..609, data 700..709. */
static void make_base(const char *dir, uint32_t gen)
{
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_FULL, .root_pid = 100 };
	struct img_writer *w;
	struct ferr err;

	assert_int_equal(img_writer_create(&w, dir, &o, &err), 0);
	add_proc(w, 100);
	add_vma(w, VA, VA + 1024 * PS, PROT_READ | PROT_WRITE);
	add_data(w, VA, 300, gen);
	add_data(w, VA + 300 * PS, 300, gen);
	assert_int_equal(img_pages_zero(w, VA + 600 * PS, 10, &err), 0);
	add_data(w, VA + 700 * PS, 10, gen);
	assert_int_equal(img_writer_commit(w, 1234, &err), 0);
	img_writer_free(w);
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	struct img_image *img;
	struct img_verify_report rep;
	Ferry__Process *proc;
	Ferry__Thread **th;
	size_t nth;
	uint8_t *buf = malloc(1024 * PS);
	struct ferr err;

	make_base(dir, 7);
	assert_int_equal(img_open(&img, dir, &err), 0);
	assert_int_equal(img->inv->kind, FERRY__DUMP_KIND__DUMP_FULL);
	assert_true(img->inv->has_freeze_ns);
	assert_int_equal(img->inv->freeze_ns, 1234);
	assert_int_equal(img->nr_vmas, 1);
	/* 600 contiguous data pages split at the 512-page run limit, then zero, then data. */
	assert_int_equal(img->nr_runs, 4);
	assert_int_equal(img->runs[0].nr_pages, IMG_RUN_DATA_MAX_PAGES);
	assert_int_equal(img->runs[1].nr_pages, 600 - IMG_RUN_DATA_MAX_PAGES);
	assert_int_equal(img->runs[2].flags, IMG_RUN_ZERO);
	assert_int_equal(img->inv->stats->data_pages, 610);
	assert_int_equal(img->inv->stats->zero_pages, 10);

	assert_int_equal(img_read_process(img, &proc, &err), 0);
	assert_int_equal(proc->pid, 100);
	assert_string_equal(proc->comm, "unit");
	ferry__process__free_unpacked(proc, NULL);
	assert_int_equal(img_read_threads(img, &th, &nth, &err), 0);
	assert_int_equal(nth, 2);
	assert_int_equal(th[1]->tid, 101);
	assert_int_equal(th[0]->gpregs.len, 27 * 8);
	img_free_entries(th, nth);

	assert_int_equal(img_read_pages(img, VA, 610, buf, &err), 0);
	for (int i = 0; i < 600; i++)
		check_page(buf + i * PS, VA + i * PS, 7);
	for (int i = 600; i < 610; i++)
		for (unsigned k = 0; k < PS; k++)
			assert_int_equal(buf[i * PS + k], 0);
	/* A page the dump never had. */
	assert_int_not_equal(img_read_pages(img, VA + 650 * PS, 1, buf, &err), 0);
	assert_int_equal(err.code, ENOENT);

	assert_int_equal(img_verify(img, &rep, &err), 0);
	assert_int_equal(rep.runs_checked, 3);
	assert_int_equal(rep.bad_runs, 0);
	img_close(img);
	free(buf);
}

static void test_missing_inventory_is_incomplete(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_FULL, .root_pid = 1 };
	struct img_writer *w;
	struct img_image *img;
	struct ferr err;

	/* A dump that never commits, as when the target dies mid-dump. */
	assert_int_equal(img_writer_create(&w, dir, &o, &err), 0);
	add_proc(w, 1);
	add_vma(w, VA, VA + 4 * PS, PROT_READ);
	add_data(w, VA, 2, 1);
	img_writer_free(w);
	assert_int_equal(img_open(&img, dir, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "incomplete"));

	/* Re-dumping into a complete directory makes it incomplete at once. */
	make_base(dir, 1);
	assert_int_equal(img_open(&img, dir, &err), 0);
	img_close(img);
	assert_int_equal(img_writer_create(&w, dir, &o, &err), 0);
	assert_int_equal(img_open(&img, dir, &err), -ENOENT);
	img_writer_free(w);
}

/* Decode DIR's inventory for a test to edit; store_inventory writes it back. */
static Ferry__Inventory *load_inventory(const char *dir, ProtobufCMessage ***msgs, size_t *n)
{
	char p[512];
	struct stat st;
	uint8_t *buf;
	struct ferr err;
	FILE *fp;

	snprintf(p, sizeof(p), "%s/inventory.img", dir);
	assert_int_equal(stat(p, &st), 0);
	buf = malloc(st.st_size);
	fp = fopen(p, "r");
	assert_int_equal(fread(buf, 1, st.st_size, fp), (size_t)st.st_size);
	fclose(fp);
	assert_int_equal(img_decode_entries(buf, st.st_size, IMG_INVENTORY,
					    &ferry__inventory__descriptor, p, msgs, n, &err), 0);
	free(buf);
	return (Ferry__Inventory *)(*msgs)[0];
}

static void store_inventory(const char *dir, const Ferry__Inventory *inv)
{
	struct img_file_writer fw;
	struct ferr err;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	assert_int_equal(img_fw_open(&fw, dfd, dir, IMG_INVENTORY, NULL, &err), 0);
	assert_int_equal(img_fw_entry(&fw, &inv->base, &err), 0);
	assert_int_equal(img_fw_close(&fw, &err), 0);
	img_fw_release(&fw);
	close(dfd);
}

/* Rewrite the inventory so that every file's size and checksum match the
 * files as they are now: lets a test reach the checks behind those. */
static void reseal(const char *dir)
{
	ProtobufCMessage **msgs;
	size_t n;
	Ferry__Inventory *inv = load_inventory(dir, &msgs, &n);

	/* Stats would no longer match crafted runs: drop them. */
	if (inv->stats)
		ferry__pagemap_stats__free_unpacked(inv->stats, NULL);
	inv->stats = NULL;
	for (size_t i = 0; i < inv->n_files; i++) {
		Ferry__ImageFile *fl = inv->files[i];
		char p[512];
		struct stat fst;
		uint8_t *data;
		FILE *ff;

		snprintf(p, sizeof(p), "%s/%s", dir, fl->name);
		assert_int_equal(stat(p, &fst), 0);
		fl->size = fst.st_size;
		if (!fl->has_xxh3)
			continue;
		data = malloc(fst.st_size + 1);
		ff = fopen(p, "r");
		assert_int_equal(fread(data, 1, fst.st_size, ff), (size_t)fst.st_size);
		fclose(ff);
		fl->xxh3 = XXH3_64bits(data, fst.st_size);
		free(data);
	}
	store_inventory(dir, inv);
	img_free_entries(msgs, n);
}

/* Replace one image file by the given messages (the pagemap head first). */
static void craft(const char *dir, enum img_type t, ProtobufCMessage **msgs, size_t n)
{
	struct img_file_writer fw;
	struct ferr err;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	assert_int_equal(img_fw_open(&fw, dfd, dir, t, NULL, &err), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(img_fw_entry(&fw, msgs[i], &err), 0);
	assert_int_equal(img_fw_close(&fw, &err), 0);
	img_fw_release(&fw);
	close(dfd);
}

static void craft_pagemap(const char *dir, const Ferry__PagemapRun *runs, size_t n)
{
	Ferry__PagemapHead head = FERRY__PAGEMAP_HEAD__INIT;
	ProtobufCMessage *msgs[8];

	head.page_size = PS;
	head.pages_file = "pages.img";
	msgs[0] = &head.base;
	for (size_t i = 0; i < n; i++)
		msgs[i + 1] = (ProtobufCMessage *)&runs[i];
	craft(dir, IMG_PAGEMAP, msgs, n + 1);
	reseal(dir);
}

static void expect_open_error(const char *dir, int code, const char *needle)
{
	struct img_image *img = NULL;
	struct ferr err;
	int ret;

	ferr_clear(&err);
	ret = img_open(&img, dir, &err);
	if (ret == 0)
		img_close(img);
	if (ret != -code || !strstr(err.msg, needle))
		fail_msg("expected -%d with \"%s\", got %d: %s", code, needle, ret, err.msg);
}

static Ferry__PagemapRun data_run(uint64_t vaddr, uint64_t n, uint64_t off)
{
	Ferry__PagemapRun r = FERRY__PAGEMAP_RUN__INIT;

	r.vaddr = vaddr;
	r.nr_pages = n;
	r.has_offset = r.has_xxh3 = true;
	r.offset = off;
	r.xxh3 = 1;
	return r;
}

static void test_overlapping_runs(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	Ferry__PagemapRun r[2] = { data_run(VA, 4, PS), data_run(VA + 2 * PS, 4, 5 * PS) };

	make_base(dir, 1);
	craft_pagemap(dir, r, 2);
	expect_open_error(dir, EBADMSG, "overlaps or is out of order with the previous run");
}

static void test_offset_past_end(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	Ferry__PagemapRun r[1] = { data_run(VA, 4, 100000 * (uint64_t)PS) };

	make_base(dir, 1);
	craft_pagemap(dir, r, 1);
	expect_open_error(dir, EBADMSG, "past the end of pages.img");
}

static void test_run_outside_vmas(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	Ferry__PagemapRun r[1] = { data_run(VA + 1020 * PS, 8, PS) };

	make_base(dir, 1);
	craft_pagemap(dir, r, 1);
	expect_open_error(dir, EBADMSG, "not inside the dump's VMAs");
}

static void test_shared_data_offsets(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	Ferry__PagemapRun r[2] = { data_run(VA, 4, PS), data_run(VA + 8 * PS, 4, 3 * PS) };

	make_base(dir, 1);
	craft_pagemap(dir, r, 2);
	expect_open_error(dir, EBADMSG, "data overlaps");
}

static void test_bad_run_flags(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	Ferry__PagemapRun r[1] = { FERRY__PAGEMAP_RUN__INIT };

	r[0].vaddr = VA;
	r[0].nr_pages = 1;
	r[0].flags = IMG_RUN_ZERO | IMG_RUN_IN_PARENT;
	make_base(dir, 1);
	craft_pagemap(dir, r, 1);
	expect_open_error(dir, EBADMSG, "both in-parent and zero");
}

static void corrupt_bytes(const char *path, off_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, n, off), (ssize_t)n);
	close(fd);
}

static void test_truncated_file(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");

	make_base(dir, 1);
	assert_int_equal(truncate(path_in(f, "d/vmas.img"), 20), 0);
	expect_open_error(dir, EBADMSG, "truncated");
	make_base(dir, 1);
	assert_int_equal(truncate(path_in(f, "d/pages.img"), 3 * PS), 0);
	expect_open_error(dir, EBADMSG, "pages.img: size");
	/* Truncated inside an entry, sealed so that only the framing is wrong. */
	make_base(dir, 1);
	assert_int_equal(truncate(path_in(f, "d/vmas.img"), IMG_HEADER_SIZE + 6), 0);
	reseal(dir);
	expect_open_error(dir, EBADMSG, "entry 0: truncated");
}

static void test_metadata_checksum(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	uint8_t x = 0x5a;

	make_base(dir, 1);
	corrupt_bytes(path_in(f, "d/vmas.img"), IMG_HEADER_SIZE + 6, &x, 1);
	expect_open_error(dir, EBADMSG, "checksum does not match the inventory");
}

static void test_wrong_magic_and_version(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	uint16_t v2 = htole16(2);

	make_base(dir, 1);
	corrupt_bytes(path_in(f, "d/inventory.img"), 0, "XXXX", 4);
	expect_open_error(dir, EBADMSG, "wrong magic");

	make_base(dir, 1);
	corrupt_bytes(path_in(f, "d/inventory.img"), 8, &v2, 2);
	expect_open_error(dir, EPROTONOSUPPORT, "format version 2.0 is not supported");

	/* A metadata file of the wrong type under the right name. */
	make_base(dir, 1);
	{
		char a[256], b[256];
		snprintf(a, sizeof(a), "%s/fds.img", dir);
		snprintf(b, sizeof(b), "%s/vmas.img", dir);
		assert_int_equal(rename(a, b), 0);
		craft(dir, IMG_FDS, NULL, 0);
	}
	reseal(dir);
	expect_open_error(dir, EBADMSG, "file type 5, expected 4");
}

static void test_oversized_entry(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	uint32_t huge = htole32(0xfffffff0u);

	make_base(dir, 1);
	corrupt_bytes(path_in(f, "d/vmas.img"), IMG_HEADER_SIZE, &huge, 4);
	reseal(dir);
	expect_open_error(dir, EBADMSG, "exceeds the");
}

static void test_page_checksum(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "d");
	struct img_image *img;
	struct img_verify_report rep;
	struct ferr err;
	uint8_t x = 0xff;

	make_base(dir, 1);
	/* Flip one byte in the second data run and one in the third. */
	corrupt_bytes(path_in(f, "d/pages.img"), PS + 520 * (off_t)PS + 17, &x, 1);
	corrupt_bytes(path_in(f, "d/pages.img"), PS + 605 * (off_t)PS, &x, 1);
	assert_int_equal(img_open(&img, dir, &err), 0);
	assert_int_equal(img_verify(img, &rep, &err), -EBADMSG);
	assert_int_equal(rep.bad_runs, 2);
	assert_int_equal(rep.runs_checked, 3);
	assert_non_null(strstr(err.msg, "checksum mismatch"));
	assert_non_null(strstr(err.msg, "0x10200000"));
	img_close(img);
}

/* Which address ranges the pagemap says something about (restore maps a
 * VMA writable only where it has runs). */
static void test_has_runs(void **state)
{
	struct fixture *f = *state;
	struct img_image *img;
	struct ferr err;

	make_base(path_in(f, "d"), 1);
	assert_int_equal(img_open(&img, path_in(f, "d"), &err), 0);
	assert_false(img_has_runs(img, VA - PS, VA));
	assert_true(img_has_runs(img, VA - PS, VA + 1));
	assert_true(img_has_runs(img, VA + 599 * PS, VA + 600 * PS));
	assert_true(img_has_runs(img, VA + 609 * PS, VA + 610 * PS)); /* a zero run counts */
	assert_false(img_has_runs(img, VA + 610 * PS, VA + 700 * PS));
	assert_true(img_has_runs(img, VA + 650 * PS, VA + 701 * PS));
	assert_false(img_has_runs(img, VA + 710 * PS, VA + 1024 * PS));
	img_close(img);
}

/* The binary searches at their edges: first and last byte of each VMA and
 * run, the byte past them, gaps, before the first and after the last, and
 * an image with nothing in it. */
static void test_lookup_edges(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 100,
				     .page_hashes = true };
	const uint64_t A = VA, B = VA + 16 * PS, C = VA + 64 * PS;
	struct img_page_loc loc;
	struct img_hashes h;
	struct img_image *img;
	struct img_writer *w;
	uint64_t avail;
	struct ferr err;

	/* VMAs A and B touch, C lies after a gap; runs: data 0-3, zero 8-9,
	 * data 14-17 across A/B, data 64 and 79 (C's first and last page). */
	assert_int_equal(img_writer_create(&w, path_in(f, "e"), &o, &err), 0);
	add_vma(w, A, B, PROT_READ | PROT_WRITE);
	add_vma(w, B, VA + 32 * PS, PROT_READ);
	add_vma(w, C, C + 16 * PS, PROT_READ | PROT_WRITE);
	add_data(w, VA, 4, 1);
	assert_int_equal(img_pages_zero(w, VA + 8 * PS, 2, &err), 0);
	add_data(w, VA + 14 * PS, 4, 1);
	add_data(w, C, 1, 1);
	add_data(w, C + 15 * PS, 1, 1);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	assert_int_equal(img_open(&img, path_in(f, "e"), &err), 0);

	assert_null(img_vma_at(img, 0));
	assert_null(img_vma_at(img, A - 1));
	assert_ptr_equal(img_vma_at(img, A), img->vmas[0]);
	assert_ptr_equal(img_vma_at(img, B - 1), img->vmas[0]);
	assert_ptr_equal(img_vma_at(img, B), img->vmas[1]);
	assert_ptr_equal(img_vma_at(img, VA + 32 * PS - 1), img->vmas[1]);
	assert_null(img_vma_at(img, VA + 32 * PS));
	assert_null(img_vma_at(img, C - 1));
	assert_ptr_equal(img_vma_at(img, C), img->vmas[2]);
	assert_ptr_equal(img_vma_at(img, C + 16 * PS - 1), img->vmas[2]);
	assert_null(img_vma_at(img, C + 16 * PS));
	assert_null(img_vma_at(img, UINT64_MAX));

	assert_int_equal(img_resolve(img, A - PS, &loc), -ENOENT);
	assert_int_equal(img_resolve(img, A, &loc), 0);
	assert_int_equal(loc.run->vaddr, A);
	assert_int_equal(img_resolve(img, A + 3 * PS, &loc), 0);
	assert_int_equal(loc.run->vaddr, A);
	assert_int_equal(img_resolve(img, A + 4 * PS, &loc), -ENOENT);
	assert_int_equal(img_resolve(img, A + 9 * PS, &loc), 0);
	assert_int_equal(loc.run->flags, IMG_RUN_ZERO);
	assert_int_equal(img_resolve(img, A + 10 * PS, &loc), -ENOENT);
	assert_int_equal(img_resolve(img, B + PS, &loc), 0);
	assert_int_equal(loc.run->vaddr, A + 14 * PS);
	assert_int_equal(img_resolve(img, A + 18 * PS, &loc), -ENOENT);
	assert_int_equal(img_resolve(img, C, &loc), 0);
	assert_int_equal(loc.run->vaddr, C);
	assert_int_equal(img_resolve(img, C + PS, &loc), -ENOENT);
	assert_int_equal(img_resolve(img, C + 15 * PS, &loc), 0);
	assert_int_equal(loc.run->vaddr, C + 15 * PS);
	assert_int_equal(img_resolve(img, C + 16 * PS, &loc), -ENOENT);

	assert_false(img_has_runs(img, 0, A));
	assert_true(img_has_runs(img, A + 3 * PS, A + 4 * PS));
	assert_false(img_has_runs(img, A + 4 * PS, A + 8 * PS));
	assert_true(img_has_runs(img, A + 4 * PS, A + 8 * PS + 1));
	assert_false(img_has_runs(img, A + 18 * PS, C));
	assert_true(img_has_runs(img, C + 16 * PS - 1, UINT64_MAX));
	assert_false(img_has_runs(img, C + 16 * PS, UINT64_MAX));

	assert_int_equal(img_hashes_load(img, &h, &err), 0);
	assert_null(img_hashes_find(&h, A - PS, &avail));
	assert_int_equal(avail, 0);
	assert_non_null(img_hashes_find(&h, A, &avail));
	assert_int_equal(avail, 4);
	assert_non_null(img_hashes_find(&h, A + 3 * PS, &avail));
	assert_int_equal(avail, 1);
	assert_null(img_hashes_find(&h, A + 4 * PS, &avail));
	assert_non_null(img_hashes_find(&h, A + 8 * PS, &avail));
	assert_int_equal(avail, 2);
	assert_null(img_hashes_find(&h, A + 10 * PS, &avail));
	assert_non_null(img_hashes_find(&h, A + 17 * PS, &avail));
	assert_int_equal(avail, 1);
	assert_non_null(img_hashes_find(&h, C + 15 * PS, &avail));
	assert_int_equal(avail, 1);
	assert_null(img_hashes_find(&h, C + 16 * PS, &avail));
	img_hashes_free(&h);
	img_close(img);

	/* Nothing at all: every lookup misses. */
	assert_int_equal(img_writer_create(&w, path_in(f, "n"), &o, &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	assert_int_equal(img_open(&img, path_in(f, "n"), &err), 0);
	assert_null(img_vma_at(img, A));
	assert_int_equal(img_resolve(img, A, &loc), -ENOENT);
	assert_false(img_has_runs(img, 0, UINT64_MAX));
	assert_int_equal(img_hashes_load(img, &h, &err), 0);
	assert_null(img_hashes_find(&h, A, &avail));
	img_hashes_free(&h);
	img_close(img);
}

/* Enough data for img_verify to split the work over threads: the report
 * must still count every bad run and name the lowest one. */
static void test_page_checksum_parallel(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_FULL, .root_pid = 100 };
	const uint64_t runs = 48, n = IMG_RUN_DATA_MAX_PAGES; /* 96 MiB with 4 KiB pages */
	const char *dir = path_in(f, "par");
	struct img_verify_report rep;
	struct img_writer *w;
	struct img_image *img;
	struct ferr err;
	uint8_t x = 0x5a;
	char want[32];

	assert_int_equal(img_writer_create(&w, dir, &o, &err), 0);
	add_proc(w, 100);
	add_vma(w, VA, VA + runs * n * PS, PROT_READ | PROT_WRITE);
	for (uint64_t r = 0; r < runs; r++)
		add_data(w, VA + r * n * PS, n, 3);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	corrupt_bytes(path_in(f, "par/pages.img"), PS + 40 * n * (off_t)PS + 9, &x, 1);
	corrupt_bytes(path_in(f, "par/pages.img"), PS + 10 * n * (off_t)PS + 3, &x, 1);
	corrupt_bytes(path_in(f, "par/pages.img"), PS + (runs * n - 1) * (off_t)PS, &x, 1);
	assert_int_equal(img_open(&img, dir, &err), 0);
	assert_int_equal(img_verify(img, &rep, &err), -EBADMSG);
	assert_int_equal(rep.runs_checked, runs);
	assert_int_equal(rep.bytes_checked, runs * n * PS);
	assert_int_equal(rep.bad_runs, 3);
	snprintf(want, sizeof(want), "run at 0x%llx ", (unsigned long long)(VA + 10 * n * PS));
	assert_non_null(strstr(err.msg, want));
	img_close(img);
}

/* parent: pre-dump, data on pages 0..99 (gen 1); child: full dump, in-parent
 * 0..49, new data 50..59 (gen 2), in-parent 60..99. */
static void make_chain(struct fixture *f)
{
	struct img_writer_opts po = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 100 };
	struct img_writer_opts co = { .kind = FERRY__DUMP_KIND__DUMP_FULL, .root_pid = 100,
				      .parent = "../p" };
	struct img_writer *w;
	struct ferr err;

	assert_int_equal(img_writer_create(&w, path_in(f, "p"), &po, &err), 0);
	add_vma(w, VA, VA + 1024 * PS, PROT_READ | PROT_WRITE);
	add_data(w, VA, 100, 1);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);

	assert_int_equal(img_writer_create(&w, path_in(f, "c"), &co, &err), 0);
	add_proc(w, 100);
	add_vma(w, VA, VA + 1024 * PS, PROT_READ | PROT_WRITE);
	assert_int_equal(img_pages_parent(w, VA, 50, &err), 0);
	add_data(w, VA + 50 * PS, 10, 2);
	assert_int_equal(img_pages_parent(w, VA + 60 * PS, 40, &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
}

static void test_chain_resolution(void **state)
{
	struct fixture *f = *state;
	struct img_image *img;
	struct img_page_loc loc;
	struct img_verify_report rep;
	uint8_t *buf = malloc(100 * PS);
	struct ferr err;

	make_chain(f);
	assert_int_equal(img_open(&img, path_in(f, "c"), &err), 0);
	assert_non_null(img->parent);
	assert_int_equal(img->parent->inv->kind, FERRY__DUMP_KIND__DUMP_PRE);
	assert_int_equal(img_resolve(img, VA + 10 * PS, &loc), 0);
	assert_ptr_equal(loc.img, img->parent);
	assert_int_equal(img_resolve(img, VA + 55 * PS, &loc), 0);
	assert_ptr_equal(loc.img, img);
	assert_int_equal(img_resolve(img, VA + 200 * PS, &loc), -ENOENT);

	/* One read across child and parent runs gets each page from the right dump. */
	assert_int_equal(img_read_pages(img, VA, 100, buf, &err), 0);
	for (int i = 0; i < 100; i++)
		check_page(buf + i * PS, VA + i * PS, i >= 50 && i < 60 ? 2 : 1);
	assert_int_equal(img_verify(img, &rep, &err), 0);
	assert_int_equal(rep.images, 2);
	img_close(img);

	/* A pre-dump has no process to restore. */
	assert_int_equal(img_open(&img, path_in(f, "p"), &err), 0);
	Ferry__Process *proc;
	assert_int_equal(img_read_process(img, &proc, &err), -ENOENT);
	img_close(img);
	free(buf);
}

/* hashes.img: data pages hashed as written, zero pages as zeroes, in-parent
 * pages inherit the parent's hashes; a malformed entry is refused. */
static void test_page_hashes(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts po = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 100,
				      .page_hashes = true, .tracker = "hash" };
	struct img_writer_opts co = po;
	struct img_hashes h;
	struct img_image *img;
	struct img_writer *w;
	uint8_t page[PS], zero[PS] = { 0 };
	uint64_t avail;
	const uint64_t *x;
	struct ferr err;

	co.parent = "../p";
	assert_int_equal(img_writer_create(&w, path_in(f, "p"), &po, &err), 0);
	add_vma(w, VA, VA + 1024 * PS, PROT_READ | PROT_WRITE);
	add_data(w, VA, 100, 1);
	assert_int_equal(img_pages_zero(w, VA + 100 * PS, 5, &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);

	assert_int_equal(img_writer_create(&w, path_in(f, "c"), &co, &err), 0);
	add_vma(w, VA, VA + 1024 * PS, PROT_READ | PROT_WRITE);
	assert_int_equal(img_pages_parent(w, VA, 50, &err), 0);
	add_data(w, VA + 50 * PS, 10, 2);
	assert_int_equal(img_pages_parent(w, VA + 60 * PS, 45, &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);

	assert_int_equal(img_open(&img, path_in(f, "c"), &err), 0);
	assert_string_equal(img->inv->tracker, "hash");
	assert_int_equal(img_hashes_load(img, &h, &err), 0);
	for (uint64_t i = 0; i < 105; i++) {
		x = img_hashes_find(&h, VA + i * PS, &avail);
		assert_non_null(x);
		if (i < 100)
			fill_page(page, VA + i * PS, i >= 50 && i < 60 ? 2 : 1);
		assert_true(*x == XXH3_64bits(i < 100 ? page : zero, PS));
	}
	assert_null(img_hashes_find(&h, VA + 105 * PS, &avail));
	assert_null(img_hashes_find(&h, VA - PS, &avail));
	img_hashes_free(&h);
	img_close(img);

	/* Entries out of order are refused. */
	Ferry__PageHashes a = FERRY__PAGE_HASHES__INIT, b = FERRY__PAGE_HASHES__INIT;
	uint64_t hv[2] = { 1, 2 };
	ProtobufCMessage *m[2] = { &a.base, &b.base };
	a.vaddr = VA + 10 * PS;
	b.vaddr = VA;
	a.n_xxh3 = b.n_xxh3 = 2;
	a.xxh3 = b.xxh3 = hv;
	craft(path_in(f, "c"), IMG_HASHES, m, 2);
	reseal(path_in(f, "c"));
	assert_int_equal(img_open(&img, path_in(f, "c"), &err), 0);
	assert_int_equal(img_hashes_load(img, &h, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "out of order"));
	img_close(img);
}

/* Metadata files larger than the writer's 1 MiB buffer, written in entries
 * that straddle its flushes: what a reader gets back must be what was
 * checksummed (a flush once wrote at the wrong offset past 1 MiB). */
static void test_large_metadata_files(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 100,
				     .page_hashes = true };
	const uint64_t nvma = 100000;
	struct img_hashes h;
	struct img_image *img;
	struct img_writer *w;
	struct ferr err;
	uint64_t avail;

	assert_int_equal(img_writer_create(&w, path_in(f, "big"), &o, &err), 0);
	for (uint64_t i = 0; i < nvma; i++)
		add_vma(w, VA + i * 2 * PS, VA + (i * 2 + 1) * PS, PROT_READ | PROT_WRITE);
	/* One zero run per VMA: as many pagemap runs and hashes entries, every
	 * file well past 1 MiB. */
	for (uint64_t i = 0; i < nvma; i++)
		assert_int_equal(img_pages_zero(w, VA + i * 2 * PS, 1, &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);

	assert_int_equal(img_open(&img, path_in(f, "big"), &err), 0);
	assert_int_equal(img->nr_vmas, nvma);
	assert_int_equal(img->nr_runs, nvma);
	assert_int_equal(img_hashes_load(img, &h, &err), 0);
	assert_int_equal(h.n, nvma);
	assert_non_null(img_hashes_find(&h, VA + (nvma - 1) * 2 * PS, &avail));
	img_hashes_free(&h);
	img_close(img);
}

static void test_chain_errors(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	struct img_writer *w;
	struct ferr err;

	/* In-parent pages with no parent: the writer refuses. */
	assert_int_equal(img_writer_create(&w, path_in(f, "x"), &o, &err), 0);
	add_vma(w, VA, VA + 4 * PS, PROT_READ);
	assert_int_equal(img_pages_parent(w, VA, 1, &err), -EINVAL);
	img_writer_free(w);

	/* A parent that is not the dump the child was made against. */
	make_chain(f);
	make_base(path_in(f, "p"), 3);
	expect_open_error(path_in(f, "c"), EBADMSG, "id mismatch");

	/* A parent that is gone. */
	make_chain(f);
	assert_int_equal(unlink(path_in(f, "p/inventory.img")), 0);
	expect_open_error(path_in(f, "c"), ENOENT, "incomplete");

	/* Child's in-parent run not covered by the parent. */
	make_chain(f);
	{
		Ferry__PagemapRun r[1] = { FERRY__PAGEMAP_RUN__INIT };
		r[0].vaddr = VA + 90 * PS;
		r[0].nr_pages = 20;
		r[0].flags = IMG_RUN_IN_PARENT;
		craft_pagemap(path_in(f, "c"), r, 1);
		expect_open_error(path_in(f, "c"), EBADMSG, "the parent does not have these pages");
	}
}

/* Edit one dump's inventory: parent path and id. */
static void set_parent(const char *dir, const char *parent, const ProtobufCBinaryData *pid)
{
	ProtobufCMessage **msgs;
	size_t n;
	Ferry__Inventory *inv = load_inventory(dir, &msgs, &n);
	char *old = inv->parent;
	ProtobufCBinaryData oldid = inv->parent_id;

	inv->parent = (char *)parent;
	inv->has_parent_id = true;
	inv->parent_id = *pid;
	store_inventory(dir, inv);
	inv->parent = old; /* so that freeing frees what was decoded */
	inv->parent_id = oldid;
	img_free_entries(msgs, n);
}

static void test_chain_cycle(void **state)
{
	struct fixture *f = *state;
	struct img_image *c;
	struct ferr err;
	uint8_t cid[IMG_ID_SIZE];

	make_chain(f);
	assert_int_equal(img_open(&c, path_in(f, "c"), &err), 0);
	memcpy(cid, c->inv->id.data, IMG_ID_SIZE);
	img_close(c);
	/* p now names c as its parent: c -> p -> c. */
	ProtobufCBinaryData id = { IMG_ID_SIZE, cid };
	set_parent(path_in(f, "p"), "../c", &id);
	expect_open_error(path_in(f, "c"), ELOOP, "loops back");
}

/* A parent names a directory beside or below the dump, as ferry writes it,
 * and is reached without following a symbolic link. */
static void test_parent_confined(void **state)
{
	struct fixture *f = *state;
	static const char *const good[] = { "p", "../p", "../p/q", "rounds/3", "..p",
					    "../../p/pid-12" };
	static const char *const bad[] = { "", "/p", "..", "../..", "../../p", "p/../../q",
					   "./p", "p//q", "p/", "p/.", "../p/..", "../../p/q",
					   "../../p/pid-012", "../../../pid-1", "../../p/pid-1/",
					   "../../../p/pid-1", "../.././pid-1", "../../p/pid-1x" };
	struct img_image *c;
	struct ferr err;
	ProtobufCBinaryData pid;
	uint8_t id[IMG_ID_SIZE];

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!img_parent_path_ok(good[i]))
			fail_msg("`%s` refused", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (img_parent_path_ok(bad[i]))
			fail_msg("`%s` accepted", bad[i]);
	/* Two levels up only from a tree's process directory. */
	assert_int_equal(img_open_parent_dir(AT_FDCWD, "../../p/pid-12", "d/pre-2", &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "../../pre-1/pid-N"));

	make_chain(f);
	assert_int_equal(img_open(&c, path_in(f, "p"), &err), 0);
	memcpy(id, c->inv->id.data, IMG_ID_SIZE);
	img_close(c);
	pid = (ProtobufCBinaryData){ IMG_ID_SIZE, id };
	set_parent(path_in(f, "c"), "../../p", &pid);
	expect_open_error(path_in(f, "c"), EBADMSG, "not a path inside");

	/* The parent's directory swapped for a symbolic link to it. */
	set_parent(path_in(f, "c"), "../p", &pid);
	assert_int_equal(rename(path_in(f, "p"), path_in(f, "p.real")), 0);
	assert_int_equal(symlink("p.real", path_in(f, "p")), 0);
	expect_open_error(path_in(f, "c"), ELOOP, "symbolic link is not followed");
	assert_int_equal(unlink(path_in(f, "p")), 0);
	assert_int_equal(rename(path_in(f, "p.real"), path_in(f, "p")), 0);
	assert_int_equal(img_open(&c, path_in(f, "c"), &err), 0);
	img_close(c);
}

static void expect_bad(int ret, const struct ferr *err, const char *needle)
{
	if (ret != -EBADMSG || !strstr(err->msg, needle))
		fail_msg("expected -EBADMSG with \"%s\", got %d: %s", needle, ret, err->msg);
}

/* Counts, lengths and ids of process, threads and fds are bounded before
 * restore sizes anything by them. */
static void test_entry_bounds(void **state)
{
	Ferry__Process p = FERRY__PROCESS__INIT;
	Ferry__Creds c = FERRY__CREDS__INIT;
	Ferry__Thread t[3] = { FERRY__THREAD__INIT, FERRY__THREAD__INIT, FERRY__THREAD__INIT };
	Ferry__Thread *tp[3] = { &t[0], &t[1], &t[2] };
	Ferry__Fd fd[2] = { FERRY__FD__INIT, FERRY__FD__INIT };
	Ferry__Fd *fp[2] = { &fd[0], &fd[1] };
	Ferry__Sigaction sa = FERRY__SIGACTION__INIT, *sap = &sa;
	uint32_t ids[4] = { 1000, 1000, 1000, 1000 }, bad_ids[4] = { 1000, UINT32_MAX, 1000, 1000 };
	uint8_t xs[8];
	struct ferr err;

	(void)state;
	p.pid = 7;
	p.creds = &c;
	expect_bad(img_check_process("p", &p, &err), &err, "uids: need 4");
	c.uid = ids;
	c.n_uid = 4;
	expect_bad(img_check_process("p", &p, &err), &err, "gids: need 4");
	c.gid = bad_ids;
	c.n_gid = 4;
	expect_bad(img_check_process("p", &p, &err), &err, "none of them -1");
	c.gid = ids;
	assert_int_equal(img_check_process("p", &p, &err), 0);
	c.n_groups = IMG_GROUPS_MAX + 1;
	expect_bad(img_check_process("p", &p, &err), &err, "supplementary groups");
	c.n_groups = 0;
	sa.signo = 65;
	p.sigactions = &sap;
	p.n_sigactions = 1;
	expect_bad(img_check_process("p", &p, &err), &err, "signal number out of range");
	p.n_sigactions = 0;

	for (int i = 0; i < 3; i++)
		t[i].tid = (uint32_t)(30 - i * 10);
	assert_int_equal(img_check_threads("t", tp, 3, &err), 0);
	t[2].tid = 30;
	expect_bad(img_check_threads("t", tp, 3, &err), &err, "tid 30 repeated");
	t[2].tid = 5;
	t[1].has_xsave = true;
	t[1].xsave = (ProtobufCBinaryData){ sizeof(xs), xs };
	expect_bad(img_check_threads("t", tp, 3, &err), &err, "XSAVE state");
	t[1].has_xsave = false;
	t[1].has_fpregs = true;
	t[1].fpregs = (ProtobufCBinaryData){ sizeof(xs), xs };
	expect_bad(img_check_threads("t", tp, 3, &err), &err, "FPU registers");

	for (int i = 0; i < 2; i++) {
		fd[i].fd = (uint32_t)i;
		fd[i].kind = FERRY__FD_KIND__FD_REG;
	}
	assert_int_equal(img_check_fds("f", fp, 2, &err), 0);
	fd[1].fd = 0;
	expect_bad(img_check_fds("f", fp, 2, &err), &err, "repeated or out of order");
	fd[1].fd = IMG_FD_MAX;
	expect_bad(img_check_fds("f", fp, 2, &err), &err, "fd number out of range");
	fd[1].fd = 1;
	fd[1].kind = FERRY__FD_KIND__FD_DELETED + 1;
	expect_bad(img_check_fds("f", fp, 2, &err), &err, "unknown kind");
	fd[1].kind = FERRY__FD_KIND__FD_MEMFD;
	expect_bad(img_check_fds("f", fp, 2, &err), &err, "memfd without its name");
	fd[1].kind = FERRY__FD_KIND__FD_INOTIFY;
	Ferry__InotifyWatch iw[2] = { FERRY__INOTIFY_WATCH__INIT, FERRY__INOTIFY_WATCH__INIT };
	Ferry__InotifyWatch *iwp[2] = { &iw[0], &iw[1] };
	iw[0].wd = 2;
	iw[1].wd = 2;
	iw[0].path = iw[1].path = "/tmp";
	fd[1].inotify = iwp;
	fd[1].n_inotify = 2;
	expect_bad(img_check_fds("f", fp, 2, &err), &err, "not ascending");
	iw[1].wd = 3;
	assert_int_equal(img_check_fds("f", fp, 2, &err), 0);
	fd[1].n_inotify = IMG_FD_ENTRIES_MAX + 1;
	expect_bad(img_check_fds("f", fp, 2, &err), &err, "more epoll targets or inotify");
	fd[1].n_inotify = 0;
	fd[1].kind = FERRY__FD_KIND__FD_EPOLL;
	Ferry__EpollTarget et = FERRY__EPOLL_TARGET__INIT, *etp = &et;
	et.tfd = IMG_FD_MAX;
	fd[1].epoll = &etp;
	fd[1].n_epoll = 1;
	expect_bad(img_check_fds("f", fp, 2, &err), &err, "epoll target fd out of range");
	fd[1].n_epoll = 0;
}

/* fdata.img: contents written from an fd, listed in the inventory with a
 * checksum, mapped back; every FileData must lie inside it, and a changed
 * byte or a truncated file is refused. */
static void test_fdata(void **state)
{
	struct fixture *f = *state;
	const char *dir = path_in(f, "fd");
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_FULL, .root_pid = 100 };
	Ferry__Fd e = FERRY__FD__INIT, *ep = &e, **fds;
	Ferry__FileData fd_data = FERRY__FILE_DATA__INIT;
	Ferry__MemfdState mst = FERRY__MEMFD_STATE__INIT;
	struct img_writer *w;
	struct img_image *img;
	struct img_fdata d;
	uint8_t content[3000];
	struct ferr err;
	size_t n;
	int src, fdf;

	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (uint8_t)(i * 7);
	src = open(path_in(f, "src"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(src >= 0);
	assert_int_equal(write(src, content, sizeof(content)), (ssize_t)sizeof(content));
	assert_int_equal(img_writer_create(&w, dir, &o, &err), 0);
	add_proc(w, 100);
	add_vma(w, VA, VA + PS, PROT_READ);
	/* A source shorter than announced is an error, not a short copy. */
	assert_int_not_equal(img_write_fdata(w, src, sizeof(content) + 1, &fd_data.offset, &err), 0);
	assert_non_null(strstr(err.msg, "ended at less"));
	img_writer_free(w);
	assert_int_equal(img_writer_create(&w, dir, &o, &err), 0);
	add_proc(w, 100);
	add_vma(w, VA, VA + PS, PROT_READ);
	assert_int_equal(img_write_fdata(w, src, sizeof(content), &fd_data.offset, &err), 0);
	assert_int_equal(fd_data.offset, IMG_HEADER_SIZE);
	fd_data.size = sizeof(content);
	e.fd = 3;
	e.kind = FERRY__FD_KIND__FD_MEMFD;
	e.path = "/memfd:x (deleted)";
	mst.name = "x";
	e.memfd = &mst;
	e.data = &fd_data;
	assert_int_equal(img_write_fd(w, &e, &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	close(src);

	assert_int_equal(img_open(&img, dir, &err), 0);
	assert_int_equal(img_read_fds(img, &fds, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(img_fdata_map(img, &d, &err), 0);
	assert_int_equal(d.size, IMG_HEADER_SIZE + sizeof(content));
	assert_memory_equal(d.map + fds[0]->data->offset, content, sizeof(content));
	img_fdata_unmap(&d);
	img_free_entries(fds, n);

	/* Bounds: past the end, before the header, no fdata.img at all. */
	fd_data.offset = IMG_HEADER_SIZE + 1;
	expect_bad(img_check_fd_data("f", &ep, 1, IMG_HEADER_SIZE + sizeof(content), &err), &err,
		   "beyond the end of fdata.img");
	fd_data.offset = 0;
	expect_bad(img_check_fd_data("f", &ep, 1, IMG_HEADER_SIZE + sizeof(content), &err), &err,
		   "beyond the end");
	fd_data.offset = IMG_HEADER_SIZE;
	fd_data.size = UINT64_MAX;
	expect_bad(img_check_fd_data("f", &ep, 1, IMG_HEADER_SIZE + sizeof(content), &err), &err,
		   "beyond the end");
	expect_bad(img_check_fd_data("f", &ep, 1, 0, &err), &err, "does not have");

	/* A changed byte: the checksum; a truncated file: the size. */
	fdf = open(path_in(f, "fd/fdata.img"), O_RDWR);
	assert_true(fdf >= 0);
	assert_int_equal(pwrite(fdf, "!", 1, 100), 1);
	expect_bad(img_fdata_map(img, &d, &err), &err, "checksum");
	assert_int_equal(ftruncate(fdf, 1000), 0);
	expect_bad(img_fdata_map(img, &d, &err), &err, "truncated");
	close(fdf);
	img_close(img);
}

/* The writer never follows a link planted in DIR, and writes only into a
 * directory of its caller that nobody else can write. */
static void test_writer_dir_trust(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	struct img_writer *w;
	struct ferr err;
	struct stat st;
	FILE *fp;
	char buf[16] = "";

	fp = fopen(path_in(f, "victim"), "w");
	fputs("untouched", fp);
	fclose(fp);
	assert_int_equal(mkdir(path_in(f, "d"), 0700), 0);
	assert_int_equal(symlink("../victim", path_in(f, "d/pages.img")), 0);
	assert_int_equal(symlink("../victim", path_in(f, "d/vmas.img")), 0);
	assert_int_equal(img_writer_create(&w, path_in(f, "d"), &o, &err), 0);
	add_vma(w, VA, VA + 4 * PS, PROT_READ);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	fp = fopen(path_in(f, "victim"), "r");
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "untouched");
	assert_int_equal(lstat(path_in(f, "d/pages.img"), &st), 0);
	assert_true(S_ISREG(st.st_mode));

	assert_int_equal(chmod(path_in(f, "d"), 0770), 0);
	assert_int_equal(img_writer_create(&w, path_in(f, "d"), &o, &err), -EPERM);
	assert_non_null(strstr(err.msg, "writable by its group"));
	assert_int_equal(chmod(path_in(f, "d"), 0700), 0);
	assert_int_equal(symlink("d", path_in(f, "link")), 0);
	assert_true(img_writer_create(&w, path_in(f, "link"), &o, &err) < 0);
	assert_non_null(strstr(err.msg, "symbolic link"));
}

static void test_chain_depth_limit(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	struct img_writer *w;
	struct ferr err;
	char name[32], parent[32];
	int i, ret = 0;

	for (i = 0; i <= IMG_CHAIN_MAX && !ret; i++) {
		snprintf(name, sizeof(name), "r%02d", i);
		snprintf(parent, sizeof(parent), "../r%02d", i - 1);
		o.parent = i ? parent : NULL;
		ret = img_writer_create(&w, path_in(f, name), &o, &err);
		if (ret)
			break;
		add_vma(w, VA, VA + 4 * PS, PROT_READ);
		if (i)
			assert_int_equal(img_pages_parent(w, VA, 1, &err), 0);
		else
			add_data(w, VA, 1, 1);
		assert_int_equal(img_writer_commit(w, 0, &err), 0);
		img_writer_free(w);
	}
	assert_int_equal(ret, -ELOOP);
	assert_int_equal(i, IMG_CHAIN_MAX);
	assert_non_null(strstr(err.msg, "chain"));
}

static void test_writer_rejects_misuse(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_FULL, .root_pid = 1 };
	struct img_writer *w;
	struct ferr err;
	uint8_t page[PS] = { 0 };

	assert_int_equal(img_writer_create(&w, path_in(f, "d"), &o, &err), 0);
	add_data(w, VA + 8 * PS, 1, 1);
	/* Out of order and unaligned runs. */
	assert_int_equal(img_pages_data(w, VA, page, 1, &err), -EINVAL);
	assert_int_equal(img_pages_data(w, VA + 20 * PS + 1, page, 1, &err), -EINVAL);
	/* A full dump without process or threads cannot commit. */
	assert_int_equal(img_writer_commit(w, 0, &err), -EINVAL);
	img_writer_free(w);
	expect_open_error(path_in(f, "d"), ENOENT, "incomplete");
}

/* Runs checksummed by the caller stay separate; a wrong checksum is caught. */
static void test_prehashed_runs(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	struct img_writer *w;
	struct img_image *img;
	struct img_verify_report rep;
	uint8_t *buf = malloc(8 * PS);
	struct ferr err;

	for (int i = 0; i < 8; i++)
		fill_page(buf + i * PS, VA + i * PS, 5);
	assert_int_equal(img_writer_create(&w, path_in(f, "h"), &o, &err), 0);
	add_vma(w, VA, VA + 16 * PS, PROT_READ | PROT_WRITE);
	assert_int_equal(img_pages_data_hashed(w, VA, buf, 4, XXH3_64bits(buf, 4 * PS), &err), 0);
	assert_int_equal(img_pages_data_hashed(w, VA + 4 * PS, buf + 4 * PS, 4,
					       XXH3_64bits(buf, 4 * PS) /* wrong */, &err), 0);
	assert_int_equal(img_pages_data_hashed(w, VA + 8 * PS, buf, IMG_RUN_DATA_MAX_PAGES + 1, 0,
					       &err), -EINVAL);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	assert_int_equal(img_open(&img, path_in(f, "h"), &err), 0);
	assert_int_equal(img->nr_runs, 2); /* contiguous, yet not merged */
	assert_int_equal(img_read_pages(img, VA, 8, buf, &err), 0);
	for (int i = 0; i < 8; i++)
		check_page(buf + i * PS, VA + i * PS, 5);
	assert_int_equal(img_verify(img, &rep, &err), -EBADMSG);
	assert_int_equal(rep.bad_runs, 1);
	assert_non_null(strstr(err.msg, "0x10004000"));
	img_close(img);
	free(buf);
}

/* Writing 256 MiB of pages must not grow the writer's memory with the dump. */
static void test_writer_bounded_memory(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	const uint64_t chunk = 256, total = 65536; /* pages: 1 MiB chunks, 256 MiB */
	struct img_writer *w;
	struct rusage before, after;
	uint8_t *buf = malloc(chunk * PS);
	struct ferr err;

	memset(buf, 0xab, chunk * PS);
	assert_int_equal(img_writer_create(&w, path_in(f, "big"), &o, &err), 0);
	add_vma(w, VA, VA + total * PS, PROT_READ | PROT_WRITE);
	getrusage(RUSAGE_SELF, &before);
	for (uint64_t p = 0; p < total; p += chunk)
		assert_int_equal(img_pages_data(w, VA + p * PS, buf, chunk, &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	getrusage(RUSAGE_SELF, &after);
	img_writer_free(w);
	/* ru_maxrss is in KiB; allow 16 MiB of growth for a 256 MiB dump. */
	assert_true(after.ru_maxrss - before.ru_maxrss < 16 * 1024);
	free(buf);
}

/* Space reserved in order, written out of order (as the page workers do),
 * runs added in address order; reserved space never written reads as a
 * hole, and a run outside what was reserved is refused. */
static void test_reserved_writes(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	struct img_writer *w;
	struct img_image *img;
	struct img_verify_report rep;
	uint8_t *buf = malloc(8 * PS);
	uint64_t a, b, c;
	struct ferr err;
	struct stat st;

	for (int i = 0; i < 8; i++)
		fill_page(buf + i * PS, VA + i * PS, 7);
	assert_int_equal(img_writer_create(&w, path_in(f, "r"), &o, &err), 0);
	add_vma(w, VA, VA + 16 * PS, PROT_READ | PROT_WRITE);
	a = img_pages_reserve(w, 4 * PS);
	b = img_pages_reserve(w, 4 * PS);
	c = img_pages_reserve(w, 4 * PS); /* never written: a hole at the end */
	assert_int_equal(b, a + 4 * PS);
	assert_int_equal(img_pages_write_at(w, b, buf + 4 * PS, 4 * PS, &err), 0);
	assert_int_equal(img_pages_write_at(w, a, buf, 4 * PS, &err), 0);
	assert_int_equal(img_pages_data_at(w, VA, 4, a, XXH3_64bits(buf, 4 * PS), buf, &err), 0);
	assert_int_equal(img_pages_data_at(w, VA + 4 * PS, 4, b, XXH3_64bits(buf + 4 * PS, 4 * PS),
					   buf + 4 * PS, &err), 0);
	assert_int_equal(img_pages_data_at(w, VA + 8 * PS, 4, c + 4 * PS, 0, buf, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "outside the space reserved"));
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	assert_int_equal(stat(path_in(f, "r/pages.img"), &st), 0);
	assert_int_equal((uint64_t)st.st_size, c + 4 * PS);
	assert_int_equal(img_open(&img, path_in(f, "r"), &err), 0);
	assert_int_equal(img_read_pages(img, VA, 8, buf, &err), 0);
	for (int i = 0; i < 8; i++)
		check_page(buf + i * PS, VA + i * PS, 7);
	assert_int_equal(img_verify(img, &rep, &err), 0);
	img_close(img);
	free(buf);
}

/* A sink gets the header and every data byte once; pages.img keeps only
 * its header and a hole of the full size. */
struct test_sink {
	struct img_pages_sink base;
	char dir[256];
	uint8_t *file;
	size_t cap, calls;
};

static int test_sink_open(struct img_pages_sink *s, const char *dir, struct ferr *err)
{
	struct test_sink *t = (struct test_sink *)s;

	(void)err;
	snprintf(t->dir, sizeof(t->dir), "%s", dir);
	return 0;
}

static int test_sink_write(struct img_pages_sink *s, uint64_t off, const void *data, size_t len,
			   struct ferr *err)
{
	struct test_sink *t = (struct test_sink *)s;

	if (off + len > t->cap)
		return ferr_new(err, EFBIG, "beyond the test sink");
	memcpy(t->file + off, data, len);
	t->calls++;
	return 0;
}

static void test_pages_sink(void **state)
{
	struct fixture *f = *state;
	struct test_sink sink = { .base = { test_sink_open, test_sink_write, NULL },
				  .cap = 16 * PS };
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1,
				     .sink = &sink.base };
	uint8_t *buf = malloc(4 * PS), *local = malloc(5 * PS);
	struct img_writer *w;
	struct ferr err;
	FILE *fp;

	sink.file = calloc(1, sink.cap);
	for (int i = 0; i < 4; i++)
		fill_page(buf + i * PS, VA + i * PS, 9);
	assert_int_equal(img_writer_create(&w, path_in(f, "s"), &o, &err), 0);
	assert_string_equal(sink.dir, path_in(f, "s"));
	assert_false(img_pages_can_splice(w));
	add_vma(w, VA, VA + 16 * PS, PROT_READ | PROT_WRITE);
	assert_int_equal(img_pages_data_hashed(w, VA, buf, 4, XXH3_64bits(buf, 4 * PS), &err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);
	assert_int_equal(sink.calls, 2); /* the header, the run */
	assert_memory_equal(sink.file + PS, buf, 4 * PS);
	fp = fopen(path_in(f, "s/pages.img"), "rb");
	assert_non_null(fp);
	assert_int_equal(fread(local, 1, 5 * PS, fp), 5 * PS);
	fclose(fp);
	assert_memory_equal(local, sink.file, PS);  /* the same header here */
	for (size_t i = PS; i < 5 * PS; i++)
		assert_int_equal(local[i], 0);    /* and a hole for the data */
	free(sink.file);
	free(buf);
	free(local);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages_sink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_inventory_is_incomplete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlapping_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offset_past_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_outside_vmas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_data_offsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_run_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_checksum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_magic_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_checksum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_checksum_parallel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_has_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_resolution, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_hashes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_metadata_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_depth_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parent_confined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_dir_trust, setup, teardown),
		cmocka_unit_test(test_entry_bounds),
		cmocka_unit_test_setup_teardown(test_fdata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_rejects_misuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_bounded_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prehashed_runs, setup, teardown),
	};

	return cmocka_run_group_tests_name("images", tests, NULL, NULL);
}
