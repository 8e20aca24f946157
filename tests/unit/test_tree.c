/* Unit tests of tree.img's checks (images/check.c: img_check_tree): the
 * processes, objects and terminal of a tree dump as a hostile writer could
 * make them are refused, naming why, and the sound ones taken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "images/load.h"

/* tree.img as a hostile writer could make it: img_check_tree must refuse
 * each, naming why, and take the sound one. */
static Ferry__TreeProc *tproc(Ferry__TreeProc *p, uint32_t pid, uint32_t ppid, const char *dir)
{
	ferry__tree_proc__init(p);
	p->pid = pid;
	p->ppid = ppid;
	p->pgid = p->sid = 100;
	p->dir = (char *)dir;
	return p;
}

static int check_tree(Ferry__TreeItem *it, size_t n)
{
	Ferry__TreeItem *v[8];
	struct ferr err;

	for (size_t i = 0; i < n; i++)
		v[i] = &it[i];
	ferr_clear(&err);
	n = (size_t)img_check_tree("tree.img", v, n, &err);
	if (n)
		print_message("%s\n", err.msg);
	return (int)n;
}

static void test_tree_checks(void **state)
{
	Ferry__TreeProc p[4];
	Ferry__PipeObj pipe;
	Ferry__UnixSk sk;
	Ferry__TreeItem it[6];
	uint8_t data[16] = { 0 };

	(void)state;
	for (int i = 0; i < 6; i++)
		ferry__tree_item__init(&it[i]);
	it[0].proc = tproc(&p[0], 100, 0, "");
	it[1].proc = tproc(&p[1], 101, 100, "pid-101");
	it[2].proc = tproc(&p[2], 102, 101, "pid-102");
	ferry__pipe_obj__init(&pipe);
	pipe.id = 7;
	pipe.size = 16;
	pipe.has_data = true;
	pipe.data.data = data;
	pipe.data.len = 16;
	it[3].pipe = &pipe;
	ferry__unix_sk__init(&sk);
	sk.id = 8;
	sk.type = SOCK_STREAM;
	sk.state = 1;
	it[4].sk = &sk;
	assert_int_equal(check_tree(it, 5), 0);

	/* the root first, and without a parent */
	assert_int_equal(check_tree(it + 1, 4), -EBADMSG);
	p[0].ppid = 1;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	p[0].ppid = 0;
	/* a parent listed after its child, or not at all */
	it[1].proc = &p[2];
	it[2].proc = &p[1];
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	it[1].proc = &p[1];
	it[2].proc = &p[2];
	p[2].ppid = 555;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	p[2].ppid = 101;
	/* a process twice; a directory that is not pid-PID (it could climb) */
	p[2].pid = 101;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	p[2].pid = 102;
	p[2].dir = "../../etc";
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	p[2].dir = "pid-102";
	/* more queued data than the pipe holds; an object twice; two kinds in one */
	pipe.size = 8;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	pipe.size = 16;
	sk.id = 7;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	sk.id = 8;
	it[4].pipe = &pipe;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	it[4].pipe = NULL;
	/* a socket of an unknown type, or its own peer */
	sk.type = 99;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	sk.type = SOCK_STREAM;
	sk.has_peer = true;
	sk.peer = 8;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	sk.has_peer = false;
	assert_int_equal(check_tree(it, 5), 0);
}

/* The terminal of a dump --orphan-pts: one, in range, of a devpts the
 * restore mounts anew when the tree has mounts. */
static void test_tree_pty_checks(void **state)
{
	Ferry__TreeProc p;
	Ferry__NsInfo ns;
	Ferry__MountItem root, pts;
	Ferry__Pty pty, pty2;
	Ferry__TreeItem it[6];

	(void)state;
	for (int i = 0; i < 6; i++)
		ferry__tree_item__init(&it[i]);
	it[0].proc = tproc(&p, 100, 0, "");
	ferry__pty__init(&pty);
	pty.path = "/dev/pts/0";
	it[1].pty = &pty;
	/* without a mount namespace: made from the restorer's /dev/ptmx */
	assert_int_equal(check_tree(it, 2), 0);
	pty.index = 1u << 20;
	assert_int_equal(check_tree(it, 2), -EBADMSG);
	pty.index = 3;
	pty.has_cc = true;
	pty.cc.len = 33;
	assert_int_equal(check_tree(it, 2), -EBADMSG);
	pty.cc.len = 32;
	pty2 = pty;
	it[2].pty = &pty2;
	assert_int_equal(check_tree(it, 3), -EBADMSG);
	it[2].pty = NULL;

	/* a container's: of its devpts, listed before it */
	ferry__ns_info__init(&ns);
	ns.flags = 0x00020000u; /* CLONE_NEWNS */
	ferry__mount_item__init(&root);
	root.id = 69;
	root.point = "/";
	root.kind = FERRY__MOUNT_KIND__MNT_ROOT;
	ferry__mount_item__init(&pts);
	pts.id = 70;
	pts.parent = 69;
	pts.point = "/dev/pts";
	pts.kind = FERRY__MOUNT_KIND__MNT_FRESH;
	pts.fstype = "devpts";
	pts.source = "devpts";
	it[1].ns = &ns;
	it[1].pty = NULL;
	it[2].mnt = &root;
	it[3].mnt = &pts;
	it[4].pty = &pty;
	pty.has_mnt = true;
	pty.mnt = 70;
	assert_int_equal(check_tree(it, 5), 0);
	pty.mnt = 71;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	pty.mnt = 70;
	pts.fstype = "tmpfs";
	assert_int_equal(check_tree(it, 5), -EBADMSG);
	pts.fstype = "devpts";
	it[3].mnt = NULL;
	it[3].pty = &pty;
	it[4].pty = NULL;
	it[4].mnt = &pts;
	assert_int_equal(check_tree(it, 5), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_checks),
		cmocka_unit_test(test_tree_pty_checks),
	};

	return cmocka_run_group_tests_name("tree", tests, NULL, NULL);
}
