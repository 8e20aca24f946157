/* Unit tests of the page reader (dump/pageread.c) against a real child
 * whose memory is known: how queued runs fill the 1 MiB batches, where the
 * iovec and segment limits end one, memory only /proc/PID/mem reads in a
 * batch of its own, zero and in-parent runs, and the data reaching the
 * image writer in address order, read back with the image reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "dump/pageread.h"
#include "images/img.h"
#include "proc/target.h"

#define PS 4096ull

#define NRW 1024            /* pages of the readable region */
#define NNONE 8             /* pages of the PROT_NONE one (read by /proc/PID/mem) */
#define MIB_PAGES (PGREAD_BUF_DEFAULT / PS)

struct fixture {
	char root[64];
	pid_t pid;
	uint8_t *rw, *none;     /* the same addresses and content in the child */
	struct target t;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void fill(uint8_t *p, size_t pages, uint64_t tag)
{
	for (size_t i = 0; i < pages; i++)
		for (size_t j = 0; j < PS / 8; j++)
			((uint64_t *)(p + i * PS))[j] = tag << 48 | i << 16 | j;
}

/* The child's memory is known: it is ours at fork, untouched since. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ferr err;

	strcpy(f->root, "/tmp/ferry-test-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->rw = mmap(NULL, NRW * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	f->none = mmap(NULL, NNONE * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->rw != MAP_FAILED && f->none != MAP_FAILED);
	fill(f->rw, NRW, 1);
	fill(f->none, NNONE, 2);
	assert_int_equal(mprotect(f->none, NNONE * PS, PROT_NONE), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		for (;;)
			pause();
	}
	assert_int_equal(mprotect(f->none, NNONE * PS, PROT_READ), 0);
	ferr_clear(&err);
	if (target_open(&f->t, f->pid, &err))
		fail_msg("target_open: %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	target_close(&f->t);
	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	munmap(f->rw, NRW * PS);
	munmap(f->none, NNONE * PS);
	nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static char *path_in(struct fixture *f, const char *name)
{
	static char buf[2][128];
	static int i;

	i = !i;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", f->root, name);
	return buf[i];
}

static struct vma vma_of(const uint8_t *p, size_t pages, uint32_t prot)
{
	return (struct vma){ .start = (uintptr_t)p, .end = (uintptr_t)p + pages * PS,
			     .prot = prot, .flags = MAP_PRIVATE,
			     .kind = FERRY__VMA_KIND__VMA_ANON };
}

static void add_vma(struct img_writer *w, const struct vma *v)
{
	Ferry__Vma e;
	struct ferr err;

	vma_to_entry(v, &e);
	assert_int_equal(img_write_vma(w, &e, &err), 0);
}

/* A sink that records every write the workers make: where, how much, what. */
struct rec_sink {
	struct img_pages_sink s;
	pthread_mutex_t mu;
	struct {
		uint64_t off;
		size_t len;
	} w[64];
	size_t n;
	uint8_t *data;          /* the bytes, at their offsets */
	size_t size;
};

static int rec_open(struct img_pages_sink *s, const char *dir, struct ferr *err)
{
	(void)s;
	(void)dir;
	(void)err;
	return 0;
}

static int rec_write(struct img_pages_sink *s, uint64_t off, const void *data, size_t len,
		     struct ferr *err)
{
	struct rec_sink *r = container_of(s, struct rec_sink, s);

	pthread_mutex_lock(&r->mu);
	/* No cmocka assert on a worker thread: an error fails the flush. */
	if (r->n == ARRAY_SIZE(r->w) || off + len > r->size) {
		pthread_mutex_unlock(&r->mu);
		return ferr_new(err, ENOSPC, "more writes than the recording holds");
	}
	r->w[r->n].off = off;
	r->w[r->n++].len = len;
	memcpy(r->data + off, data, len);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int by_off(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* Runs of pages of region base, one VMA at a time, through a reader with
 * buf_size batches into a recording sink; then the data writes (past the
 * header page) in offset order must have the lengths want (in pages), and
 * the bytes must be the pages' in the order queued. */
struct queued {
	const struct vma *v;
	struct page_run runs[1024];
	size_t n;
};

static void check_batches(struct fixture *f, const char *name, size_t buf_size,
			  const struct queued *q, size_t nq, const size_t *want, size_t nwant,
			  uint64_t data_pages, uint64_t zero_pages)
{
	struct img_writer_opts wo = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	struct rec_sink r = { .s = { .open = rec_open, .write = rec_write } };
	struct img_writer *w = NULL;
	struct pgread *x = calloc(1, sizeof(*x));
	struct ferr err;
	size_t at;

	r.size = 64 << 20;
	r.data = calloc(1, r.size);
	pthread_mutex_init(&r.mu, NULL);
	wo.sink = &r.s;
	ferr_clear(&err);
	assert_int_equal(img_writer_create(&w, path_in(f, name), &wo, &err), 0);
	if (pgread_init(x, &f->t, false, w, buf_size, false, &err))
		fail_msg("pgread_init: %s", err.msg);
	for (size_t i = 0; i < nq; i++)
		if (pgread_runs(x, q[i].v, q[i].runs, q[i].n, &err))
			fail_msg("pgread_runs: %s", err.msg);
	if (pgread_flush(x, &err))
		fail_msg("pgread_flush: %s", err.msg);
	assert_int_equal(x->data_pages, data_pages);
	assert_int_equal(x->zero_pages, zero_pages);
	assert_int_equal(x->parent_pages, 0);
	pgread_fini(x);
	free(x);

	/* The header page first, at 0; then one write per batch. */
	qsort(r.w, r.n, sizeof(r.w[0]), by_off);
	assert_int_equal(r.n, nwant + 1);
	assert_int_equal(r.w[0].off, 0);
	at = r.w[0].len;
	for (size_t i = 0; i < nwant; i++) {
		if (r.w[i + 1].off != at || r.w[i + 1].len != want[i] * PS)
			fail_msg("%s: batch %zu is %zu bytes at %llu, want %zu pages at %zu", name, i,
				 r.w[i + 1].len, (unsigned long long)r.w[i + 1].off, want[i], at);
		at += r.w[i + 1].len;
	}
	at = r.w[0].len;
	for (size_t i = 0; i < nq; i++) {
		for (size_t k = 0; k < q[i].n; k++) {
			size_t len = q[i].runs[k].end - q[i].runs[k].start;

			if (q[i].runs[k].zero)
				continue;
			if (memcmp(r.data + at, (void *)(uintptr_t)q[i].runs[k].start, len))
				fail_msg("%s: the data of %#llx is not what the process holds", name,
					 (unsigned long long)q[i].runs[k].start);
			at += len;
		}
	}
	img_writer_free(w);
	pthread_mutex_destroy(&r.mu);
	free(r.data);
}

static struct page_run run_of(const uint8_t *base, size_t from, size_t to, bool zero)
{
	return (struct page_run){ .start = (uintptr_t)base + from * PS,
				  .end = (uintptr_t)base + to * PS, .zero = zero };
}

/* 1 MiB batches: a 600-page run fills two and starts a third. */
static void test_pgread_fills_batches(void **state)
{
	struct fixture *f = *state;
	struct vma v = vma_of(f->rw, NRW, PROT_READ | PROT_WRITE);
	static struct queued q;
	size_t want[] = { MIB_PAGES, MIB_PAGES, 600 - 2 * MIB_PAGES };

	q = (struct queued){ .v = &v, .n = 1 };
	q.runs[0] = run_of(f->rw, 0, 600, false);
	check_batches(f, "fill", PGREAD_BUF_DEFAULT, &q, 1, want, ARRAY_SIZE(want), 600, 0);
}

/* 2 MiB batches of single pages: the iovec limit (256) ends a batch before
 * the buffer is full. */
static void test_pgread_iov_limit(void **state)
{
	struct fixture *f = *state;
	struct vma v = vma_of(f->rw, NRW, PROT_READ | PROT_WRITE);
	static struct queued q;
	size_t want[] = { PGREAD_IOV_MAX, 300 - PGREAD_IOV_MAX };

	q = (struct queued){ .v = &v, .n = 300 };
	for (size_t i = 0; i < q.n; i++)
		q.runs[i] = run_of(f->rw, 2 * i, 2 * i + 1, false);
	check_batches(f, "iov", 2 * PGREAD_BUF_DEFAULT, &q, 1, want, ARRAY_SIZE(want), 300, 0);
}

/* Zero runs take segments but no data: 400 of them and 112 data pages
 * make the 512 segments of one batch; the other 88 go in the next. */
static void test_pgread_seg_limit(void **state)
{
	struct fixture *f = *state;
	struct vma v = vma_of(f->rw, NRW, PROT_READ | PROT_WRITE);
	static struct queued q;
	size_t want[] = { PGREAD_SEG_MAX - 400, 200 - (PGREAD_SEG_MAX - 400) };

	q = (struct queued){ .v = &v, .n = 600 };
	for (size_t i = 0; i < 400; i++)
		q.runs[i] = run_of(f->rw, 2 * i, 2 * i + 1, true);
	for (size_t i = 0; i < 200; i++)
		q.runs[400 + i] = run_of(f->rw, 800 + i, 801 + i, false);
	check_batches(f, "seg", 2 * PGREAD_BUF_DEFAULT, &q, 1, want, ARRAY_SIZE(want), 200, 400);
}

/* Memory the process cannot read itself goes in a batch of its own, read
 * through /proc/PID/mem; the data stays in address order. */
static void test_pgread_forced_batch(void **state)
{
	struct fixture *f = *state;
	struct vma rw = vma_of(f->rw, NRW, PROT_READ | PROT_WRITE);
	struct vma none = vma_of(f->none, NNONE, PROT_NONE);
	static struct queued q[2];
	bool none_first = f->none < f->rw;
	size_t want[2];

	q[0] = (struct queued){ .v = &rw, .n = 1 };
	q[0].runs[0] = run_of(f->rw, 0, 10, false);
	q[1] = (struct queued){ .v = &none, .n = 1 };
	q[1].runs[0] = run_of(f->none, 0, 5, false);
	if (none_first) {
		struct queued t = q[0];

		q[0] = q[1];
		q[1] = t;
	}
	want[0] = none_first ? 5 : 10;
	want[1] = none_first ? 10 : 5;
	check_batches(f, "force", PGREAD_BUF_DEFAULT, q, 2, want, 2, 15, 0);
}

static int run_cmp(const void *a, const void *b)
{
	const struct page_run *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* A whole round into pages.img on top of a parent, read back: every run in
 * address order and where the data landed in the same order, data runs cut
 * at the 1 MiB batches, zero and in-parent runs as queued, every byte as
 * the process holds it, every checksum right. */
static void test_pgread_read_back(void **state)
{
	struct fixture *f = *state;
	struct img_writer_opts po = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1 };
	struct img_writer_opts co = { .kind = FERRY__DUMP_KIND__DUMP_PRE, .root_pid = 1,
				      .parent = "../p" };
	struct vma rw = vma_of(f->rw, NRW, PROT_READ | PROT_WRITE);
	struct vma none = vma_of(f->none, NNONE, PROT_NONE);
	struct page_run rr[] = { run_of(f->rw, 0, 300, false), run_of(f->rw, 300, 310, true),
				 run_of(f->rw, 310, 320, false), run_of(f->rw, 400, 500, false),
				 run_of(f->rw, 500, NRW, false) };
	struct page_run nr[] = { run_of(f->none, 0, NNONE, false) };
	struct img_verify_report rep = { 0 };
	struct img_writer *w = NULL;
	struct img_image *img = NULL;
	struct pgread *x = calloc(1, sizeof(*x));
	uint8_t *buf = malloc(NRW * PS);
	uint64_t prev_end = 0, next_off = 0;
	bool none_first = f->none < f->rw;
	struct ferr err;

	rr[3].parent = true;
	ferr_clear(&err);
	/* The parent holds pages 400..499 as they are now. */
	assert_int_equal(img_writer_create(&w, path_in(f, "p"), &po, &err), 0);
	add_vma(w, none_first ? &none : &rw);
	add_vma(w, none_first ? &rw : &none);
	assert_int_equal(img_pages_data(w, (uintptr_t)f->rw + 400 * PS, f->rw + 400 * PS, 100,
					&err), 0);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);

	assert_int_equal(img_writer_create(&w, path_in(f, "c"), &co, &err), 0);
	add_vma(w, none_first ? &none : &rw);
	add_vma(w, none_first ? &rw : &none);
	if (pgread_init(x, &f->t, false, w, PGREAD_BUF_DEFAULT, true, &err))
		fail_msg("pgread_init: %s", err.msg);
	if (none_first)
		assert_int_equal(pgread_runs(x, &none, nr, 1, &err), 0);
	assert_int_equal(pgread_runs(x, &rw, rr, 3, &err), 0);
	assert_int_equal(pgread_runs(x, &rw, rr + 3, 2, &err), 0);
	if (!none_first)
		assert_int_equal(pgread_runs(x, &none, nr, 1, &err), 0);
	if (pgread_flush(x, &err))
		fail_msg("pgread_flush: %s", err.msg);
	assert_int_equal(x->data_pages, 300 + 10 + (NRW - 500) + NNONE);
	assert_int_equal(x->zero_pages, 10);
	assert_int_equal(x->parent_pages, 100);
	pgread_fini(x);
	free(x);
	assert_int_equal(img_writer_commit(w, 0, &err), 0);
	img_writer_free(w);

	if (img_open(&img, path_in(f, "c"), &err))
		fail_msg("img_open: %s", err.msg);
	for (size_t i = 0; i < img->nr_runs; i++) {
		const struct img_run *r = &img->runs[i];

		assert_true(r->vaddr >= prev_end);
		prev_end = r->vaddr + r->nr_pages * PS;
		if (r->flags)
			continue;
		assert_true(r->nr_pages <= MIB_PAGES);
		if (next_off)
			assert_int_equal(r->offset, next_off);
		next_off = r->offset + r->nr_pages * PS;
	}
	assert_int_equal(img_verify(img, &rep, &err), 0);
	assert_int_equal(rep.bad_runs, 0);
	qsort(rr, ARRAY_SIZE(rr), sizeof(rr[0]), run_cmp);
	for (size_t i = 0; i < ARRAY_SIZE(rr); i++) {
		size_t n = (rr[i].end - rr[i].start) / PS;
		struct img_page_loc loc;

		assert_int_equal(img_resolve(img, rr[i].start, &loc), 0);
		assert_int_equal(loc.run->flags, rr[i].zero ? IMG_RUN_ZERO : 0);
		assert_ptr_equal(loc.img, rr[i].parent ? img->parent : img);
		assert_int_equal(img_read_pages(img, rr[i].start, n, buf, &err), 0);
		if (rr[i].zero) {
			for (size_t k = 0; k < n * PS; k++)
				assert_int_equal(buf[k], 0);
		} else if (memcmp(buf, (void *)(uintptr_t)rr[i].start, n * PS)) {
			fail_msg("pages at %#llx read back wrong", (unsigned long long)rr[i].start);
		}
	}
	assert_int_equal(img_read_pages(img, (uintptr_t)f->none, NNONE, buf, &err), 0);
	assert_memory_equal(buf, f->none, NNONE * PS);
	img_close(img);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pgread_fills_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgread_iov_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgread_seg_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgread_forced_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgread_read_back, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
