/* Unit tests of restore's refusal when this kernel's vdso does not fit the
 * dumped one (restore/mem.c: rst_vdso_fits): the dumped layout is built from
 * this process's own [vdso] and [vvar*] mappings, then altered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_layout_fits),
		cmocka_unit_test(test_bigger_vdso_refused),
		cmocka_unit_test(test_vvar_elsewhere_refused),
		cmocka_unit_test(test_missing_or_unknown_mapping_refused),
		cmocka_unit_test(test_other_kernel_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
