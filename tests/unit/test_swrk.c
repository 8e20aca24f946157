/* Unit tests of criu/: every option of CRIU's RPC has its rule, refused
 * options are refused by name for the requests they concern and ignored for
 * the others, and a request's log file gets errors in CRIU's form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "criu/opts.h"
#include "dump/ns.h"
#include "restore/ns.h"

/* A new field in proto/criu-rpc.proto must be given a rule (and a line in
 * docs/CONTAINERS.md), and a rule must name a real field. */
static void test_every_option_placed(void **state)
{
	(void)state;
	const char *name = swrk_opts_unclassified();

	if (name)
		fail_msg("criu_opts field or rule `%s` has no place in criu/opts.c", name);
}

static int check(CriuOpts *o, enum swrk_kind kind, struct ferr *err)
{
	struct swrk_req q = { .o = o };

	ferr_clear(err);
	return swrk_opts_check(&q, kind, err);
}

static void test_refusals(void **state)
{
	CriuOpts o = CRIU_OPTS__INIT;
	struct ferr err;

	(void)state;
	assert_int_equal(check(&o, SWRK_DUMP, &err), 0);
	/* Set to false, as runc sends it: not refused. */
	o.has_tcp_established = true;
	assert_int_equal(check(&o, SWRK_DUMP, &err), 0);
	o.tcp_established = true;
	assert_int_equal(check(&o, SWRK_DUMP, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "option tcp_established is refused"));
	o.tcp_established = false;
	/* empty_ns: the network namespace (runc always asks) is made
	 * empty; any other is refused, by name, in every request. */
	o.has_empty_ns = true;
	o.empty_ns = 0x40000000;
	assert_int_equal(check(&o, SWRK_DUMP, &err), 0);
	assert_int_equal(check(&o, SWRK_RESTORE, &err), 0);
	o.empty_ns = 0x40000000 | 0x04000000; /* and CLONE_NEWUTS */
	assert_int_equal(check(&o, SWRK_RESTORE, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "option empty_ns"));
	assert_int_equal(check(&o, SWRK_DUMP, &err), -EOPNOTSUPP);
	o.has_empty_ns = false;
	/* root: the container's root filesystem, for a restore's mounts. */
	o.root = (char *)"/tmp/rootfs";
	assert_int_equal(check(&o, SWRK_DUMP, &err), 0);
	assert_int_equal(check(&o, SWRK_RESTORE, &err), 0);
	o.root = NULL;
	/* A configuration file that does not exist configures nothing. */
	o.config_file = (char *)"/nonexistent/criu/runc.conf";
	assert_int_equal(check(&o, SWRK_DUMP, &err), 0);
	o.config_file = (char *)"/proc/self/status";
	assert_int_equal(check(&o, SWRK_DUMP, &err), -EOPNOTSUPP);
	o.config_file = NULL;
	/* external: judged entry by entry on a dump (criu/jobs.c); on a
	 * restore the namespace comes as an inherit_fd, so refused. */
	{
		char *ext[] = { (char *)"net[4026532000]:extRootNetNS" };

		o.external = ext;
		o.n_external = 1;
		assert_int_equal(check(&o, SWRK_DUMP, &err), 0);
		assert_int_equal(check(&o, SWRK_PRE_DUMP, &err), 0);
		assert_int_equal(check(&o, SWRK_RESTORE, &err), -EOPNOTSUPP);
		assert_non_null(strstr(err.msg, "option external"));
		o.n_external = 0;
		o.external = NULL;
	}
}

/* The forms of --external: net[INO]:KEY taken, every other refused by name. */
static void test_external_forms(void **state)
{
	struct dump_ns_opts o = { 0 };
	struct ferr err;

	(void)state;
	ferr_clear(&err);
	assert_int_equal(dump_ns_external(&o, "net[4026532000]:extRootNetNS", &err), 0);
	assert_string_equal(o.net_key, "extRootNetNS");
	assert_int_equal(o.net_ino, 4026532000ull);
	/* The same again is no conflict; another one is. */
	assert_int_equal(dump_ns_external(&o, "net[4026532000]:extRootNetNS", &err), 0);
	assert_int_equal(dump_ns_external(&o, "net[4026532001]:extRootNetNS", &err), -EINVAL);
	assert_int_equal(dump_ns_external(&o, "pid[4026531836]:extRootPidNS", &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "pid[4026531836]:extRootPidNS"));
	assert_int_equal(dump_ns_external(&o, "mnt[/data]:data", &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "mnt[/data]:data"));
	memset(&o, 0, sizeof(o));
	assert_int_equal(dump_ns_external(&o, "net[]:k", &err), -EINVAL);
	assert_int_equal(dump_ns_external(&o, "net[12]k", &err), -EINVAL);
	assert_int_equal(dump_ns_external(&o, "net[12]:", &err), -EINVAL);
	assert_int_equal(dump_ns_external(&o, "net[12x]:k", &err), -EINVAL);
	assert_null(o.net_key);
}

/* join_ns on a restore: ipc, uts and net taken, the other types refused by
 * name (mnt and pid with their reason), a type that is none too; ignored on
 * a dump, where runc never sends it. */
static void test_join_ns_types(void **state)
{
	CriuOpts o = CRIU_OPTS__INIT;
	JoinNamespace j = JOIN_NAMESPACE__INIT, *js[] = { &j };
	static const char *const taken[] = { "ipc", "uts", "net" };
	static const char *const refused[] = { "mnt", "pid", "user", "cgroup", "time" };
	struct ferr err;
	int flag;

	(void)state;
	o.join_ns = js;
	o.n_join_ns = 1;
	j.ns_file = (char *)"/proc/1/ns/x";
	for (size_t i = 0; i < ARRAY_SIZE(taken); i++) {
		j.ns = (char *)taken[i];
		assert_int_equal(check(&o, SWRK_RESTORE, &err), 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		char want[32];

		j.ns = (char *)refused[i];
		assert_int_equal(check(&o, SWRK_RESTORE, &err), -EOPNOTSUPP);
		snprintf(want, sizeof(want), "join_ns %s is refused", refused[i]);
		assert_non_null(strstr(err.msg, want));
		assert_non_null(strstr(err.msg, "/proc/1/ns/x"));
		assert_int_equal(check(&o, SWRK_DUMP, &err), 0);
	}
	j.ns = (char *)"pid";
	assert_int_equal(check(&o, SWRK_RESTORE, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "PID namespace cannot be joined"));
	j.ns = (char *)"mnt";
	assert_int_equal(check(&o, SWRK_RESTORE, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "--root"));
	j.ns = (char *)"network";
	assert_int_equal(check(&o, SWRK_RESTORE, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "`network`: no such namespace type"));
	ferr_clear(&err);
	assert_int_equal(rst_join_flag("uts", &flag, &err), 0);
	assert_int_equal(flag, CLONE_NEWUTS);
	assert_int_equal(rst_join_flag("ipc", &flag, &err), 0);
	assert_int_equal(flag, CLONE_NEWIPC);
	assert_int_equal(rst_join_flag("net", &flag, &err), 0);
	assert_int_equal(flag, CLONE_NEWNET);
}

/* The files join_ns names, opened and checked before anything is made: a
 * namespace of the type named, once per type; a file that is none, or one
 * of another type, refused naming it. */
static void test_join_ns_files(void **state)
{
	struct rst_join j[2] = { { "uts", "/proc/self/ns/uts" }, { "ipc", "/proc/self/ns/ipc" } };
	struct rst_opts o = { .join = j, .nr_join = 2 };
	struct rst_ns ns;
	struct ferr err;
	char self[16];

	(void)state;
	memset(&ns, 0, sizeof(ns));
	ns.view.rootfd = -1;
	ferr_clear(&err);
	assert_int_equal(rst_ns_load_joins(&ns, &o, &err), 0);
	assert_int_equal(ns.nr_join, 2);
	assert_int_equal(ns.join_flags, CLONE_NEWUTS | CLONE_NEWIPC);
	assert_true(ns.join[0].fd >= 0 && ns.join[1].fd >= 0);
	assert_int_equal(rst_ns_clone_flags(&ns), 0);
	rst_ns_free(&ns);
	/* A PID stands for its /proc/PID/ns/TYPE, as criu takes it. */
	snprintf(self, sizeof(self), "%d", (int)getpid());
	j[0] = (struct rst_join){ "uts", self };
	o.nr_join = 1;
	assert_int_equal(rst_ns_load_joins(&ns, &o, &err), 0);
	rst_ns_free(&ns);
	j[0] = (struct rst_join){ "uts", "/dev/null" };
	assert_int_equal(rst_ns_load_joins(&ns, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "/dev/null is /dev/null, not a UTS namespace"));
	rst_ns_free(&ns);
	j[0] = (struct rst_join){ "ipc", "/proc/self/ns/uts" };
	assert_int_equal(rst_ns_load_joins(&ns, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "/proc/self/ns/uts is uts:["));
	assert_non_null(strstr(err.msg, "not an IPC namespace"));
	rst_ns_free(&ns);
	j[0] = (struct rst_join){ "uts", "/nonexistent/ns" };
	assert_int_equal(rst_ns_load_joins(&ns, &o, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "join_ns uts:/nonexistent/ns"));
	rst_ns_free(&ns);
	j[0] = j[1] = (struct rst_join){ "uts", "/proc/self/ns/uts" };
	o.nr_join = 2;
	assert_int_equal(rst_ns_load_joins(&ns, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "the uts namespace twice"));
	rst_ns_free(&ns);
}

static void test_log_form(void **state)
{
	char line[512];
	FILE *f = tmpfile();
	enum log_level was = log_get_level();

	(void)state;
	assert_non_null(f);
	log_set_level(LOG_ERROR); /* nothing on stderr below errors */
	log_tee(f, LOG_WARN);
	pr_err("refused %d", 7);
	pr_warn("careful");
	pr_info("not at this level");
	log_tee(NULL, LOG_ERROR);
	pr_err("not in the file");
	log_set_level(was);
	rewind(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(strstr(line, ") Error (ferry): refused 7"));
	assert_int_equal(line[0], '(');
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(strstr(line, ") Warn  (ferry): careful"));
	assert_null(fgets(line, sizeof(line), f));
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_option_placed),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_external_forms),
		cmocka_unit_test(test_join_ns_types),
		cmocka_unit_test(test_join_ns_files),
		cmocka_unit_test(test_log_form),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
