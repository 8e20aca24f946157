/* Unit tests of common/ and the backend tables: error wrapping, log levels,
 * JSON escaping, backend choice, and the consistency of the feature probe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/kerndat.h"
#include "common/log.h"
#include "proc/backend.h"
#include "proc/layout.h"

/* A running process read in two steps can show a VMA that grew below the
 * end of the one listed before it: the list must stay sorted and disjoint. */
static void test_vma_list_overlap(void **state)
{
	struct vma_list l = { 0 };
	struct vma a = { .start = 0x10000, .end = 0x20000, .prot = 1 },
		   grown = { .start = 0x10000, .end = 0x30000, .pgoff = 0x1000, .inode = 7 },
		   inside = { .start = 0x18000, .end = 0x30000 },
		   next = { .start = 0x40000, .end = 0x50000 };
	struct ferr err;

	(void)state;
	assert_int_equal(vma_list_add(&l, &a, NULL, &err), 0);
	assert_int_equal(vma_list_add(&l, &grown, "/lib/x.so", &err), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[1].start, 0x20000);  /* only the part not listed yet */
	assert_int_equal(l.v[1].end, 0x30000);
	assert_int_equal(l.v[1].pgoff, 0x11000);  /* its file offset moves with it */
	assert_int_equal(vma_list_add(&l, &inside, NULL, &err), 0);
	assert_int_equal(l.n, 2);                 /* all of it listed already */
	assert_int_equal(vma_list_add(&l, &next, NULL, &err), 0);
	assert_int_equal(l.n, 3);
	for (size_t i = 1; i < l.n; i++)
		assert_true(l.v[i].start >= l.v[i - 1].end);
	vma_list_free(&l);
}

/* The VMA holding an address, across gaps and at both edges of each VMA. */
static void test_vma_list_find(void **state)
{
	struct vma_list l = { 0 };
	struct vma v[] = { { .start = 0x1000, .end = 0x3000 }, { .start = 0x5000, .end = 0x6000 },
			   { .start = 0x6000, .end = 0x9000 } };
	struct ferr err;

	(void)state;
	assert_int_equal(vma_list_find(&l, 0x1000), -1);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(vma_list_add(&l, &v[i], NULL, &err), 0);
	assert_int_equal(vma_list_find(&l, 0), -1);
	assert_int_equal(vma_list_find(&l, 0x1000), 0);
	assert_int_equal(vma_list_find(&l, 0x2fff), 0);
	assert_int_equal(vma_list_find(&l, 0x3000), -1);
	assert_int_equal(vma_list_find(&l, 0x4fff), -1);
	assert_int_equal(vma_list_find(&l, 0x5fff), 1);
	assert_int_equal(vma_list_find(&l, 0x6000), 2);
	assert_int_equal(vma_list_find(&l, 0x8fff), 2);
	assert_int_equal(vma_list_find(&l, 0x9000), -1);
	vma_list_free(&l);
}

/* A command's -v: from quiet or the default to informational, from there
 * to debug, and no further. */
static void test_log_more_verbose(void **state)
{
	enum log_level saved = log_get_level();

	(void)state;
	log_set_level(LOG_ERROR);
	assert_int_equal(log_more_verbose(), LOG_INFO);
	log_set_level(LOG_WARN);
	assert_int_equal(log_more_verbose(), LOG_INFO);
	assert_int_equal(log_get_level(), LOG_INFO);
	assert_int_equal(log_more_verbose(), LOG_DEBUG);
	assert_int_equal(log_more_verbose(), LOG_DEBUG);
	assert_int_equal(log_get_level(), LOG_DEBUG);
	log_set_level(saved);
}

static void test_err_wrap(void **state)
{
	struct ferr e;

	(void)state;
	assert_int_equal(ferr_sys(&e, ENOENT, "open `%s`", "/x"), -ENOENT);
	assert_string_equal(e.msg, "open `/x`: No such file or directory");
	assert_int_equal(ferr_wrap(&e, "dump %d", 42), -ENOENT);
	assert_string_equal(e.msg, "dump 42: open `/x`: No such file or directory");
	assert_int_equal(ferr_new(&e, EBADMSG, "bad %s", "entry"), -EBADMSG);
	assert_string_equal(e.msg, "bad entry");
	/* A long chain of wraps truncates, never overflows. */
	for (int i = 0; i < 200; i++)
		ferr_wrap(&e, "context number %d", i);
	assert_true(strlen(e.msg) < FERR_MSG_MAX);
	assert_int_equal(e.code, EBADMSG);
}

static void test_json_escaping(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json j;

	(void)state;
	json_init(&j, f);
	json_obj_begin(&j, NULL);
	json_str(&j, "s", "a\"b\\c\nd\x01");
	json_arr_begin(&j, "a");
	json_u64(&j, NULL, 1);
	json_bool(&j, NULL, false);
	json_null(&j, NULL);
	json_arr_end(&j);
	json_f64(&j, "f", 1.0 / 0.0);
	json_obj_end(&j);
	json_finish(&j);
	fclose(f);
	assert_string_equal(buf, "{\"s\":\"a\\\"b\\\\c\\nd\\u0001\",\"a\":[1,false,null],\"f\":null}\n");
	free(buf);
}

static void test_backend_choose(void **state)
{
	const struct backend_family *layout = backend_family("layout");
	const struct backend_family *tracker = backend_family("tracker");
	const struct backend_desc *b;
	struct kerndat kd;
	char err[256];

	(void)state;
	assert_non_null(layout);
	assert_non_null(tracker);
	assert_null(backend_family("nope"));
	memset(&kd, 0, sizeof(kd));
	/* With nothing probed, the text fallback is still usable and auto takes it. */
	b = backend_choose(layout, "auto", &kd, err, sizeof(err));
	assert_non_null(b);
	assert_string_equal(b->name, "maps");
	b = backend_choose(layout, "procmap", &kd, err, sizeof(err));
	assert_null(b);
	assert_non_null(strstr(err, "--layout procmap needs procmap_query"));
	kd.has[KD_PROCMAP_QUERY] = true;
	b = backend_choose(layout, NULL, &kd, err, sizeof(err));
	assert_string_equal(b->name, "procmap");
	assert_null(backend_choose(layout, "bogus", &kd, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown layout `bogus`"));
	/* The tracker ranking: uffd-wp only with everything it needs. */
	kd.has[KD_PROCESS_VM_READV] = true;
	kd.has[KD_UFFD_WP_ASYNC] = true;
	assert_string_equal(backend_auto(tracker, &kd)->name, "hash");
	kd.has[KD_PTRACE] = kd.has[KD_PIDFD_GETFD] = true;
	assert_string_equal(backend_auto(tracker, &kd)->name, "hash");
	/* Its scan needs PAGEMAP_SCAN too (WP_ASYNC came in 6.7 with it). */
	kd.has[KD_PAGEMAP_SCAN] = true;
	assert_string_equal(backend_auto(tracker, &kd)->name, "uffd-wp");
}

/* The probe's answers must be consistent with each other and with the
 * essential-feature rule, whatever kernel runs the test. */
static void test_kerndat_consistent(void **state)
{
	struct kerndat kd;
	int missing;

	(void)state;
	kerndat_probe(&kd);
	assert_true(kd.page_size >= 4096);
	if (kd.has[KD_UFFD_WP_ASYNC]) {
		assert_true(kd.has[KD_UFFD]);
		assert_true(kd.has[KD_PAGEMAP_SCAN]);
	}
	if (kd.has[KD_UFFD_COPY])
		assert_true(kd.has[KD_UFFD]);
	for (int f = KD_IO_URING_SPLICE; f <= KD_IO_URING_SEND_ZC; f++)
		if (kd.has[f])
			assert_true(kd.has[KD_IO_URING]);
	missing = kerndat_missing_essential(&kd);
	if (missing >= 0)
		assert_false(kd.has[missing]);
	for (int f = 0; f < KD_NR_FEATURES; f++) {
		assert_non_null(kd_features[f].key);
		if (!kd.has[f])
			assert_true(kd.note[f][0] != '\0');
	}
	/* Probing one feature alone gives the same answer as probing all. */
	for (int f = 0; f < KD_NR_FEATURES; f++) {
		struct kerndat one;
		memset(&one, 0, sizeof(one));
		assert_int_equal(kerndat_probe_one(&one, (enum kd_feature)f), kd.has[f]);
	}
}

/* Hiding works on what a probe found, hides what is built on a hidden
 * feature (uffd_copy on userfaultfd), and kerndat_probe_feature() applies
 * $FERRY_HIDE_FEATURES as kerndat_probe() does. */
static void test_kerndat_hide(void **state)
{
	struct kerndat kd, one;

	(void)state;
	memset(&kd, 0, sizeof(kd));
	kd.has[KD_UFFD] = kd.has[KD_UFFD_COPY] = kd.has[KD_SOFT_DIRTY] = true;
	kerndat_hide(&kd, "uffd_copy");
	assert_true(kd.has[KD_UFFD]);
	assert_false(kd.has[KD_UFFD_COPY]);
	kd.has[KD_UFFD_COPY] = true;
	kerndat_hide(&kd, "soft_dirty,userfaultfd");
	assert_false(kd.has[KD_UFFD]);
	assert_false(kd.has[KD_UFFD_COPY]);
	assert_false(kd.has[KD_SOFT_DIRTY]);
	assert_string_equal(kd.note[KD_UFFD_COPY], "hidden by FERRY_HIDE_FEATURES");

	memset(&one, 0, sizeof(one));
	assert_int_equal(setenv("FERRY_HIDE_FEATURES", "process_vm_readv", 1), 0);
	assert_false(kerndat_probe_feature(&one, KD_PROCESS_VM_READV));
	assert_string_equal(one.note[KD_PROCESS_VM_READV], "hidden by FERRY_HIDE_FEATURES");
	assert_int_equal(setenv("FERRY_HIDE_FEATURES", "userfaultfd", 1), 0);
	assert_false(kerndat_probe_feature(&one, KD_UFFD_COPY));
	assert_int_equal(unsetenv("FERRY_HIDE_FEATURES"), 0);
	memset(&one, 0, sizeof(one));
	memset(&kd, 0, sizeof(kd));
	assert_int_equal(kerndat_probe_feature(&one, KD_UFFD_COPY),
			 kerndat_probe_one(&kd, KD_UFFD_COPY));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_wrap),
		cmocka_unit_test(test_log_more_verbose),
		cmocka_unit_test(test_vma_list_overlap),
		cmocka_unit_test(test_vma_list_find),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_backend_choose),
		cmocka_unit_test(test_kerndat_consistent),
		cmocka_unit_test(test_kerndat_hide),
	};

	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
