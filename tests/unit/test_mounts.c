/* Unit tests of a container's mount table as ferry reads it
 * (proc/mounts.c: mountinfo lines, escapes, flags, propagation) and as an
 * image may hold it (images/check.c: the namespace items of tree.img that
 * a restore would act on are refused unless they stay inside the tree). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "images/load.h"
#include "proc/mounts.h"

static void test_parse_line(void **state)
{
	struct mnt_info m;

	(void)state;
	assert_int_equal(mnt_parse_line("72 71 0:42 / /dev/pts rw,nosuid,noexec,relatime - devpts "
					 "devpts rw,gid=5,mode=620,ptmxmode=666\n", &m), 0);
	assert_int_equal(m.id, 72);
	assert_int_equal(m.parent, 71);
	assert_int_equal(m.major, 0);
	assert_int_equal(m.minor, 42);
	assert_string_equal(m.point, "/dev/pts");
	assert_string_equal(m.fstype, "devpts");
	assert_string_equal(m.super, "rw,gid=5,mode=620,ptmxmode=666");
	assert_int_equal(m.flags, MS_NOSUID | MS_NOEXEC | MS_RELATIME);
	assert_false(m.propagates);
	mnt_info_free(&m);
	/* Optional fields, an escaped space, and no atime word: strictatime. */
	assert_int_equal(mnt_parse_line("80 76 0:31 /a\\040b /sys/x ro,nodev shared:4 master:1 - "
					 "cgroup cgroup rw,memory", &m), 0);
	assert_string_equal(m.root, "/a b");
	assert_string_equal(m.source, "cgroup");
	assert_int_equal(m.flags, MS_RDONLY | MS_NODEV | MS_STRICTATIME);
	assert_true(m.propagates);
	mnt_info_free(&m);
	/* An nsfs file bound somewhere: its root is no path. */
	assert_int_equal(mnt_parse_line("247 246 0:4 net:[4026532242] /run/netns/x rw master:2 - "
					 "nsfs nsfs rw", &m), 0);
	assert_string_equal(m.root, "net:[4026532242]");
	mnt_info_free(&m);
	/* Not mountinfo: no separator, a relative point, a short line. */
	assert_int_equal(mnt_parse_line("1 2 0:3 / /x rw tmpfs tmpfs rw", &m), -EINVAL);
	assert_int_equal(mnt_parse_line("1 2 0:3 / x rw - tmpfs tmpfs rw", &m), -EINVAL);
	assert_int_equal(mnt_parse_line("1 2 0:3 /", &m), -EINVAL);
	assert_true(mnt_path_under("/dev/pts/0", "/dev"));
	assert_true(mnt_path_under("/dev", "/dev"));
	assert_false(mnt_path_under("/devx", "/dev"));
	assert_true(mnt_path_under("/anything", "/"));
}

/* A tree.img of one process, its namespaces, a root and a tmpfs mount at
 * /dev, and one file in it; each case spoils one thing. */
struct fixture {
	Ferry__TreeItem it[5], *v[5];
	Ferry__TreeProc proc;
	Ferry__NsInfo ns;
	Ferry__MountItem root, dev;
	Ferry__TmpfsFile file;
};

static void build(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 5; i++) {
		ferry__tree_item__init(&f->it[i]);
		f->v[i] = &f->it[i];
	}
	ferry__tree_proc__init(&f->proc);
	f->proc.pid = 100;
	f->it[0].proc = &f->proc;
	ferry__ns_info__init(&f->ns);
	f->ns.flags = 0x00020000; /* CLONE_NEWNS */
	f->it[1].ns = &f->ns;
	ferry__mount_item__init(&f->root);
	f->root.id = 10;
	f->root.point = (char *)"/";
	f->root.kind = FERRY__MOUNT_KIND__MNT_ROOT;
	f->it[2].mnt = &f->root;
	ferry__mount_item__init(&f->dev);
	f->dev.id = 11;
	f->dev.parent = 10;
	f->dev.point = (char *)"/dev";
	f->dev.kind = FERRY__MOUNT_KIND__MNT_FRESH;
	f->dev.fstype = (char *)"tmpfs";
	f->dev.source = (char *)"tmpfs";
	f->it[3].mnt = &f->dev;
	ferry__tmpfs_file__init(&f->file);
	f->file.mnt = 11;
	f->file.path = (char *)"shm/x";
	f->file.mode = S_IFREG | 0644;
	f->it[4].tfile = &f->file;
}

static int check(struct fixture *f, const char *want)
{
	struct ferr err;
	int ret;

	ferr_clear(&err);
	ret = img_check_tree("tree.img", f->v, 5, &err);
	if (want && (!ret || !strstr(err.msg, want)))
		fail_msg("wanted a refusal with `%s`, got %d `%s`", want, ret, err.msg);
	return ret;
}

static void test_ns_items(void **state)
{
	struct fixture f;

	(void)state;
	build(&f);
	assert_int_equal(check(&f, NULL), 0);
	build(&f);
	f.file.path = (char *)"../../etc/passwd";
	check(&f, "leaves its mount");
	build(&f);
	f.file.path = (char *)"/etc/passwd";
	check(&f, "leaves its mount");
	build(&f);
	f.dev.point = (char *)"/dev/../../etc";
	check(&f, "mount point");
	build(&f);
	f.dev.parent = 12;
	check(&f, "parent is not listed");
	build(&f);
	f.dev.fstype = (char *)"mqueue";
	check(&f, "no tmpfs");
	build(&f);
	f.ns.flags = 0x04000000; /* UTS only: no mount namespace for mounts */
	check(&f, "without a mount namespace");
	build(&f);
	f.root.kind = FERRY__MOUNT_KIND__MNT_FRESH;
	check(&f, "root mount");
	build(&f);
	f.dev.kind = FERRY__MOUNT_KIND__MNT_BIND;
	f.dev.has_bind_of = true;
	f.dev.bind_of = 99;
	f.dev.bind_root = (char *)"/";
	check(&f, "bind mount of no earlier");
	build(&f);
	f.file.mode = S_IFSOCK | 0644;
	check(&f, "unknown type");
	build(&f);
	f.ns.flags = 0x20000 | 0x10000000; /* and CLONE_NEWUSER */
	check(&f, "flags unknown");
	/* An external network namespace: named, and a network namespace. */
	build(&f);
	f.ns.flags = 0x20000 | 0x40000000;
	f.ns.net_ext_key = (char *)"extRootNetNS";
	assert_int_equal(check(&f, NULL), 0);
	f.ns.net_ext_key = (char *)"";
	check(&f, "external network namespace");
	build(&f);
	f.ns.net_ext_key = (char *)"extRootNetNS"; /* without CLONE_NEWNET */
	check(&f, "external network namespace");
	build(&f);
	f.ns.flags = 0x20000 | 0x40000000;
	f.ns.net_ext_key = (char *)"extRootNetNS";
	f.ns.has_net_empty = f.ns.net_empty = true;
	check(&f, "external network namespace");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_ns_items),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
