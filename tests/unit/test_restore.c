/* Unit tests of restore's refusal when this kernel's vdso does not fit the
 * dumped one (restore/mem.c: rst_vdso_fits): the dumped layout is built from
 * this process's own [vdso] and [vvar*] mappings, then altered; and of the
 * credential check (restore/creds.c: rst_creds_check): an image never gets
 * more than its caller holds; and of the read window the fill and the
 * checksum check read pages.img through (images/window.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "images/window.h"
#include "restore/rst.h"

struct fake {
	struct img_image img;
	Ferry__Inventory inv;
	Ferry__Vma vma[8];
	Ferry__Vma *vmas[8];
	char names[8][32];
	struct utsname u;
};

/* The dump as this kernel would have made it: our own special mappings. */
static void fake_from_self(struct fake *f)
{
	FILE *m = fopen("/proc/self/maps", "r");
	char line[512];
	size_t n = 0;

	memset(f, 0, sizeof(*f));
	assert_non_null(m);
	uname(&f->u);
	ferry__inventory__init(&f->inv);
	f->inv.kernel = f->u.release;
	while (fgets(line, sizeof(line), m) && n < 8) {
		unsigned long long s, e;
		char name[64] = "";
		Ferry__Vma *v = &f->vma[n];

		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %63s", &s, &e, name) < 2)
			continue;
		if (strcmp(name, "[vdso]") && strncmp(name, "[vvar", 5))
			continue;
		ferry__vma__init(v);
		v->start = s;
		v->end = e;
		snprintf(f->names[n], sizeof(f->names[n]), "%s", name);
		v->name = f->names[n];
		v->kind = name[2] == 'd' ? FERRY__VMA_KIND__VMA_VDSO : FERRY__VMA_KIND__VMA_VVAR;
		f->vmas[n] = v;
		n++;
	}
	fclose(m);
	f->img.inv = &f->inv;
	f->img.vmas = f->vmas;
	f->img.nr_vmas = n;
	assert_true(n >= 2); /* a vdso and at least one vvar */
}

/* rst_hole: a layout with a single free region (below 4 GiB a program,
 * above 0x7ff000000000 nothing asked for, one mapping at 0x10000000000)
 * still offers several non-overlapping places in it, the top one first. */
static void test_hole_places_in_one_region(void **state)
{
	struct fake f;
	const uint64_t len = 64 << 10, top = 0x10000000000ULL;
	uint64_t at[3];

	(void)state;
	memset(&f, 0, sizeof(f));
	ferry__vma__init(&f.vma[0]);
	ferry__vma__init(&f.vma[1]);
	f.vma[0].start = 0x400000;
	f.vma[0].end = 0x500000;
	f.vma[1].start = top;
	f.vma[1].end = 0x7ff000000000ULL; /* nothing free above it */
	f.vmas[0] = &f.vma[0];
	f.vmas[1] = &f.vma[1];
	f.img.vmas = f.vmas;
	f.img.nr_vmas = 2;
	for (unsigned n = 0; n < 3; n++) {
		at[n] = rst_hole(&f.img, len, n);
		assert_true(at[n] >= (1ULL << 32) && at[n] + len <= top);
	}
	assert_true(at[0] > at[1] && at[1] + len <= at[0]);
	assert_true(at[1] > at[2] && at[2] + len <= at[1]);
}

static Ferry__Vma *find(struct fake *f, Ferry__VmaKind k)
{
	for (size_t i = 0; i < f->img.nr_vmas; i++)
		if (f->vmas[i]->kind == k)
			return f->vmas[i];
	fail();
	return NULL;
}

static void test_own_layout_fits(void **state)
{
	struct fake f;
	struct ferr err;

	(void)state;
	fake_from_self(&f);
	assert_int_equal(rst_vdso_fits(&f.img, &err), 0);
	/* Moved as a block elsewhere: still fits, restore moves it there. */
	for (size_t i = 0; i < f.img.nr_vmas; i++) {
		f.vmas[i]->start -= 0x100000000ull;
		f.vmas[i]->end -= 0x100000000ull;
	}
	assert_int_equal(rst_vdso_fits(&f.img, &err), 0);
}

static void test_bigger_vdso_refused(void **state)
{
	struct fake f;
	struct ferr err;

	(void)state;
	fake_from_self(&f);
	find(&f, FERRY__VMA_KIND__VMA_VDSO)->end += 4096;
	assert_int_equal(rst_vdso_fits(&f.img, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "does not fit"));
}

static void test_vvar_elsewhere_refused(void **state)
{
	struct fake f;
	struct ferr err;
	Ferry__Vma *v;

	(void)state;
	fake_from_self(&f);
	v = find(&f, FERRY__VMA_KIND__VMA_VVAR);
	v->start -= 0x200000;
	v->end -= 0x200000;
	assert_int_equal(rst_vdso_fits(&f.img, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "lie differently"));
}

static void test_missing_or_unknown_mapping_refused(void **state)
{
	struct fake f;
	struct ferr err;

	(void)state;
	fake_from_self(&f);
	f.img.nr_vmas--; /* the dump lacks one this kernel has */
	assert_int_equal(rst_vdso_fits(&f.img, &err), -ENOEXEC);
	fake_from_self(&f);
	snprintf(f.names[0], sizeof(f.names[0]), "[vvar_future]");
	f.vmas[0]->kind = FERRY__VMA_KIND__VMA_VVAR;
	assert_int_equal(rst_vdso_fits(&f.img, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "[vvar_future]"));
}

static void test_other_kernel_refused(void **state)
{
	struct fake f;
	struct ferr err;

	(void)state;
	fake_from_self(&f);
	f.inv.kernel = "5.10.0-unit";
	assert_int_equal(rst_vdso_fits(&f.img, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "5.10.0-unit"));
}

/* ---- credentials ------------------------------------------------------- */

#define ALL_CAPS (~0ULL >> (63 - 40))

static void expect_refused(const Ferry__Creds *c, const struct rst_caller *who, int code,
			   const char *needle)
{
	struct ferr err;
	int ret;

	ferr_clear(&err);
	ret = rst_creds_check(c, who, &err);
	if (ret != -code || !strstr(err.msg, needle))
		fail_msg("expected -%d with \"%s\", got %d: %s", code, needle, ret, err.msg);
}

static void test_creds_within_caller(void **state)
{
	gid_t groups[2] = { 1000, 27 };
	struct rst_caller user = { { 1000, 1000, 1000 }, { 1000, 1000, 1000 }, groups, 2,
				   { 0, 0, 0, ALL_CAPS, 0 } };
	struct rst_caller root = { { 0, 0, 0 }, { 0, 0, 0 }, NULL, 0,
				   { ALL_CAPS, ALL_CAPS, 0, ALL_CAPS, 0 } };
	uint32_t uids[4] = { 1000, 1000, 1000, 1000 }, gids[4] = { 1000, 1000, 1000, 1000 };
	uint32_t igroups[1] = { 27 };
	Ferry__Creds c = FERRY__CREDS__INIT;
	struct rst_caps ic;
	struct ferr err;

	(void)state;
	expect_refused(&c, &user, EBADMSG, "4 uids");
	c.uid = uids;
	c.n_uid = 4;
	c.gid = gids;
	c.n_gid = 4;
	c.groups = igroups;
	c.n_groups = 1;
	assert_int_equal(rst_creds_check(&c, &user, &err), 0);
	/* Left out, the capability sets are empty, never kept. */
	rst_creds_caps(&c, &ic);
	assert_true(ic.eff == 0 && ic.prm == 0 && ic.inh == 0 && ic.amb == 0);
	assert_true(ic.bnd == ALL_CAPS);

	uids[2] = 0;
	expect_refused(&c, &user, EPERM, "saved uid 0");
	assert_int_equal(rst_creds_check(&c, &root, &err), 0);
	uids[2] = 1000;
	gids[0] = 0;
	expect_refused(&c, &user, EPERM, "real gid 0");
	gids[0] = 1000;
	igroups[0] = 0;
	expect_refused(&c, &user, EPERM, "supplementary group 0");
	igroups[0] = 27;

	c.has_cap_prm = true;
	c.cap_prm = 1ULL << 21;
	expect_refused(&c, &user, EPERM, "cap_sys_admin");
	assert_int_equal(rst_creds_check(&c, &root, &err), 0);
	/* Root without CAP_SYS_ADMIN in its bounding set cannot give it. */
	root.caps.bnd &= ~(1ULL << 21);
	expect_refused(&c, &root, EPERM, "cap_sys_admin");
	root.caps.bnd = ALL_CAPS;
	c.has_cap_prm = false;
	c.has_cap_amb = true;
	c.cap_amb = 1ULL << 12;
	expect_refused(&c, &user, EPERM, "cap_net_admin");
	/* Inheritable bits the caller has already are no grant. */
	c.has_cap_amb = false;
	c.has_cap_inh = true;
	c.cap_inh = 1ULL << 7;
	expect_refused(&c, &user, EPERM, "cap_setuid");
	user.caps.inh = 1ULL << 7;
	assert_int_equal(rst_creds_check(&c, &user, &err), 0);
}

#define WPS 4096u

/* A file of npages pages, each filled with its index + tag. */
static int pattern_file(unsigned npages, unsigned tag)
{
	char path[] = "/tmp/ferry-test-window-XXXXXX";
	int fd = mkstemp(path);
	uint8_t page[WPS];

	assert_true(fd >= 0);
	unlink(path);
	for (unsigned i = 0; i < npages; i++) {
		memset(page, (int)((i + tag) & 0xff), WPS);
		assert_int_equal(write(fd, page, WPS), WPS);
	}
	return fd;
}

static void assert_pages(const uint8_t *d, unsigned first, unsigned n, unsigned tag)
{
	assert_non_null(d);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(d[i * WPS], (first + i + tag) & 0xff);
		assert_int_equal(d[i * WPS + WPS - 1], (first + i + tag) & 0xff);
	}
}

/* A window serves what it holds without reading again, reads from the
 * asked offset on where it does not (the next pages with it), never past
 * the file, and tells a short file (-ENODATA) from a request bigger than
 * itself (-EINVAL). */
static void test_window_reads(void **state)
{
	unsigned cap_pages = IMG_WINDOW_SIZE / WPS, npages = 2 * cap_pages + 3;
	uint64_t size = (uint64_t)npages * WPS;
	int a = pattern_file(npages, 0), b = pattern_file(4, 100), ret;
	struct img_window w;
	const uint8_t *d, *first;

	(void)state;
	assert_int_equal(img_window_init(&w, IMG_WINDOW_SIZE), 0);
	first = d = img_window_get(&w, a, size, 0, WPS, &ret);
	assert_int_equal(ret, 0);
	assert_pages(d, 0, 1, 0);
	assert_int_equal(w.len, IMG_WINDOW_SIZE);          /* read ahead */
	d = img_window_get(&w, a, size, 5 * WPS, 2 * WPS, &ret);
	assert_ptr_equal(d, first + 5 * WPS);               /* held: no read */
	assert_pages(d, 5, 2, 0);
	d = img_window_get(&w, a, size, (cap_pages - 1) * WPS, 2 * WPS, &ret);
	assert_ptr_equal(d, first);                         /* across its end: read again */
	assert_int_equal(w.off, (cap_pages - 1) * WPS);
	assert_pages(d, cap_pages - 1, 2, 0);
	d = img_window_get(&w, b, 4 * WPS, 2 * WPS, WPS, &ret);
	assert_int_equal(w.fd, b);                          /* another file */
	assert_pages(d, 2, 1, 100);
	d = img_window_get(&w, a, size, (npages - 2) * WPS, 2 * WPS, &ret);
	assert_int_equal(w.len, 2 * WPS);                   /* not past the end */
	assert_pages(d, npages - 2, 2, 0);
	assert_null(img_window_get(&w, a, size, (npages - 1) * WPS, 2 * WPS, &ret));
	assert_int_equal(ret, -ENODATA);
	assert_null(img_window_get(&w, a, size + 2 * WPS, (npages - 1) * WPS, 2 * WPS, &ret));
	assert_int_equal(ret, -ENODATA);                    /* the file is shorter than said */
	assert_int_equal(w.fd, -1);
	assert_null(img_window_get(&w, a, size, 0, IMG_WINDOW_SIZE + WPS, &ret));
	assert_int_equal(ret, -EINVAL);
	img_window_free(&w);
	close(a);
	close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hole_places_in_one_region),
		cmocka_unit_test(test_own_layout_fits),
		cmocka_unit_test(test_bigger_vdso_refused),
		cmocka_unit_test(test_vvar_elsewhere_refused),
		cmocka_unit_test(test_missing_or_unknown_mapping_refused),
		cmocka_unit_test(test_other_kernel_refused),
		cmocka_unit_test(test_creds_within_caller),
		cmocka_unit_test(test_window_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
