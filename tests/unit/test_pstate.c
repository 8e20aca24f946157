/* proc/pstate.c: smaps VmFlags into ferry's madvise bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proc/pstate.h"

static const char smaps[] =
	"55d0c0000000-55d0c0001000 r--p 00000000 fd:01 1234                       /usr/bin/x\n"
	"Size:                  4 kB\n"
	"VmFlags: rd mr mw me sr dd \n"
	"7f0000000000-7f0000004000 rw-p 00000000 00:00 0 \n"
	"Rss:                   0 kB\n"
	"THPeligible:    0\n"
	"VmFlags: rd wr mr mw me ac hg wf mg dc\n"
	"7f0000004000-7f0000008000 rw-p 00000000 00:00 0 \n"
	"VmFlags: rd wr mr mw me ac nh rr\n"
	"7ffc00000000-7ffc00001000 r--p 00000000 00:00 0                          [vvar]\n"
	"VmFlags: rd mr pf io de dd \n"
	"7ffc00002000-7ffc00003000 rw-p 00000000 00:00 0 \n"
	"Size:                  4 kB\n";

static void test_smaps_bits(void **state)
{
	struct madv_list l;
	struct ferr err;
	FILE *f = fmemopen((void *)smaps, sizeof(smaps) - 1, "r");

	(void)state;
	assert_non_null(f);
	assert_int_equal(pstate_parse_smaps(f, &l, &err), 0);
	fclose(f);
	assert_int_equal(l.n, 5);
	assert_int_equal(madv_list_find(&l, 0x55d0c0000000ull), VMA_MADV_SEQUENTIAL | VMA_MADV_DONTDUMP);
	assert_int_equal(madv_list_find(&l, 0x7f0000000000ull), VMA_MADV_HUGEPAGE |
			 VMA_MADV_WIPEONFORK | VMA_MADV_MERGEABLE | VMA_MADV_DONTFORK);
	assert_int_equal(madv_list_find(&l, 0x7f0000004000ull), VMA_MADV_NOHUGEPAGE | VMA_MADV_RANDOM);
	assert_int_equal(madv_list_find(&l, 0x7ffc00000000ull), VMA_MADV_DONTDUMP);
	/* No VmFlags line, and an address that starts no VMA: nothing. */
	assert_int_equal(madv_list_find(&l, 0x7ffc00002000ull), 0);
	assert_int_equal(madv_list_find(&l, 0x7f0000001000ull), 0);
	madv_list_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smaps_bits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
