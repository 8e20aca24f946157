/* ferry restore: bring a dumped process back (restore/restore.h). */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/fdpass.h"
#include "common/log.h"
#include "cli/cli.h"
#include "restore/restore.h"

void cmd_restore_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry restore -D DIR [-d|--restore-detached] [--pidfile FILE]\n"
		"                     [--require-same-pid] [--pid-ns] [--shell-job]\n"
		"                     [--inherit-fd fd[N]:KEY]... [--file-validation MODE]\n"
		"                     [--root DIR [--ext-mount-map KEY:PATH]...]\n"
		"                     [--join-ns TYPE:PATH]... [--console-socket PATH] [-v]\n"
		"\n"
		"Re-create the process tree dumped in DIR (and its parent chain) and let it\n"
		"run on from where it was frozen, as `criu restore` does: every process with\n"
		"its PID, parent, process group and session, its memory, threads, registers\n"
		"and FPU/AVX state, signal handlers, masks and pending signals, credentials,\n"
		"limits, cwd, and its fds at the same numbers: files at their offsets, pipes\n"
		"and Unix sockets shared as they were, with the data queued in them.\n"
		"\n"
		"Everything is checked before a process is created: the images' checksums,\n"
		"that every file behind a mapping, an fd or the executable is the same file\n"
		"as at dump time (by its content: on another host, or as a copy, it is\n"
		"another inode), and that this kernel's vdso fits. A failure later kills\n"
		"the half-built process; a restore never leaves one behind. The images are\n"
		"only read: the same DIR can be restored again.\n"
		"\n"
		"  -D, --images-dir DIR     the dump to restore (a full dump, not a pre-dump)\n"
		"  -d, --restore-detached   print the new PID and exit once the process runs;\n"
		"                           without it ferry waits and exits with its status\n"
		"      --pidfile FILE       write the restored PID to FILE\n"
		"      --require-same-pid   fail if the dumped PID or a TID is taken; without it\n"
		"                           ferry warns and gives a lone process new ones (a\n"
		"                           tree always needs its PIDs)\n"
		"      --shell-job          a dump --shell-job: the job's fds on its terminal\n"
		"                           get ferry's (stdin's, else stdout's or stderr's),\n"
		"                           in ferry's session, in the foreground if it was\n"
		"      --pid-ns             restore into a new PID namespace, under a small init\n"
		"                           of ferry's (pid 1 there): the processes get their\n"
		"                           PIDs inside it even while the originals run (a\n"
		"                           snapshot restored beside its original, or twice).\n"
		"                           The PID printed is the root's as seen from here;\n"
		"                           without -d ferry waits for the namespace to end\n"
		"                           and exits 0\n"
		"      --inherit-fd fd[N]:KEY  every fd that was KEY at dump time (as\n"
		"                           /proc/PID/fd showed it: pipe:[INO], socket:[INO],\n"
		"                           or a file's path; `ferry show` lists them) gets\n"
		"                           ferry's fd N instead: a pipe whose other end was\n"
		"                           outside the dumped tree is otherwise restored with\n"
		"                           that end closed. Repeatable\n"
		"      --root DIR           a tree dumped with namespaces of its own (a\n"
		"                           container): DIR holds its root filesystem (the\n"
		"                           same files, or copies). The tree gets new mount,\n"
		"                           UTS, IPC and network namespaces as it had: its\n"
		"                           mounts rebuilt on DIR (proc, sysfs, devpts, mqueue\n"
		"                           and tmpfs anew, tmpfs with its files; binds), its\n"
		"                           hostname, loopback up; and DIR becomes its root\n"
		"      --ext-mount-map KEY:PATH  the mount dumped as external under KEY (dump\n"
		"                           --ext-mount-map MNT:KEY) is PATH, bound there.\n"
		"                           Repeatable\n"
		"      --join-ns TYPE:PATH  the tree joins the namespace PATH (a PID: its\n"
		"                           /proc/PID/ns/TYPE) instead of making its own, as\n"
		"                           a pod's containers share the pause container's;\n"
		"                           TYPE is ipc, uts or net (mnt, pid, user, cgroup\n"
		"                           and time are refused). What the dump holds of that\n"
		"                           namespace (the hostname) is not applied: it is the\n"
		"                           namespace's owner's. Joined even if the tree had\n"
		"                           none of its own. Repeatable, once per TYPE\n"
		"      --console-socket PATH  a dump --orphan-pts (a tree on a terminal whose\n"
		"                           master was outside it): the tree gets a new pty\n"
		"                           pair with the dumped termios and window size, its\n"
		"                           controlling terminal and foreground group again,\n"
		"                           and the new master is sent (SCM_RIGHTS) to the Unix\n"
		"                           stream socket at PATH, as runc's --console-socket\n"
		"                           gets one\n"
		"      --file-validation MODE  what is checked of each file behind the process:\n"
		"                           content (default): type, size, build-id and the\n"
		"                           XXH3-128 of its content; size: type and size;\n"
		"                           none: that it exists, of the same type. A\n"
		"                           directory is only checked to be one; a file open\n"
		"                           O_APPEND may have grown (its dumped part checked)\n"
		"  -v, --verbose            progress messages and a summary on stderr\n"
		"  -h, --help               this help\n"
		"\n"
		"The restored root is a child of ferry (of the namespace's init with --pid-ns),\n"
		"in ferry's session unless it led its own session or process group. fds 0-2 that the dump could not record (pipes,\n"
		"terminals, with `dump --skip-unsupported-fds`) are ferry's own; other such fds\n"
		"stay closed.\n"
		"Exit status: with -d 0 once restored; without, the process's exit status\n"
		"(128+N if signal N ended it); 1 if the restore failed, 2 usage error.\n");
}

#define INHERIT_MAX 64

struct restore_cli {
	struct rst_opts o;
	const char *pidfile;
	const char *console_socket;
	bool detached;
	struct rst_inherit inherit[INHERIT_MAX];
	struct rst_ext_mnt ext[64];
	char ext_key[64][256];
	struct rst_join join[8];
	char join_type[8][8];
};

/* --console-socket: the new terminal's master, with the name runc gives
 * it when it passes criu's on. */
static int send_console(void *arg, int master, struct ferr *err)
{
	const struct restore_cli *rc = arg;
	static const char name[] = "orphan-pts-master";
	int ret = fdpass_send_to(rc->console_socket, name, sizeof(name) - 1, master);

	return ret ? ferr_sys(err, -ret, "--console-socket %s", rc->console_socket) : 0;
}

/* fd[N]:KEY, N an fd open here. */
static int parse_inherit(struct restore_cli *rc, const char *arg)
{
	struct rst_inherit *in = &rc->inherit[rc->o.nr_inherit];
	char *end;
	long n;

	if (rc->o.nr_inherit == INHERIT_MAX)
		return cli_usage_error("restore", "at most %d --inherit-fd", INHERIT_MAX);
	if (strncmp(arg, "fd[", 3))
		return cli_usage_error("restore", "--inherit-fd is fd[N]:KEY, not `%s`", arg);
	n = strtol(arg + 3, &end, 10);
	if (end == arg + 3 || n < 0 || n > 1 << 20 || strncmp(end, "]:", 2) || !end[2])
		return cli_usage_error("restore", "--inherit-fd is fd[N]:KEY, not `%s`", arg);
	if (fcntl((int)n, F_GETFD) < 0)
		return cli_usage_error("restore", "--inherit-fd %s: fd %ld is not open here", arg, n);
	in->fd = (int)n;
	in->key = end + 2;
	rc->o.nr_inherit++;
	rc->o.inherit = rc->inherit;
	return 0;
}

/* TYPE:PATH, TYPE one ferry joins; PATH is checked by the restore. */
static int parse_join(struct restore_cli *rc, const char *arg)
{
	const char *colon = strchr(arg, ':');
	size_t k = rc->o.nr_join;
	struct ferr err;
	int flag;

	if (k == ARRAY_SIZE(rc->join))
		return cli_usage_error("restore", "at most %zu --join-ns", ARRAY_SIZE(rc->join));
	if (!colon || colon == arg || !colon[1] || colon - arg >= (ptrdiff_t)sizeof(rc->join_type[0]))
		return cli_usage_error("restore", "--join-ns is TYPE:PATH (or TYPE:PID), not `%s`",
				       arg);
	snprintf(rc->join_type[k], sizeof(rc->join_type[0]), "%.*s", (int)(colon - arg), arg);
	ferr_clear(&err);
	if (rst_join_flag(rc->join_type[k], &flag, &err))
		return cli_usage_error("restore", "--join-ns %s: %s", arg, err.msg);
	rc->join[k] = (struct rst_join){ rc->join_type[k], colon + 1 };
	rc->o.join = rc->join;
	rc->o.nr_join++;
	return 0;
}

static int restore_opt(void *ctx, int c, char *arg)
{
	struct restore_cli *rc = ctx;

	switch (c) {
	case 'D':
		rc->o.dir = arg;
		break;
	case 'd':
		rc->detached = true;
		break;
	case 'p':
		rc->pidfile = arg;
		break;
	case 'S':
		rc->o.require_same_pid = true;
		break;
	case 'N':
		rc->o.pid_ns = true;
		break;
	case 'J':
		rc->o.shell_job = true;
		break;
	case 'I':
		return parse_inherit(rc, arg);
	case 'r':
		rc->o.root = arg;
		break;
	case 'E': {
		const char *colon = strchr(arg, ':');
		size_t k = rc->o.nr_ext;

		if (k == ARRAY_SIZE(rc->ext))
			return cli_usage_error("restore", "at most %zu --ext-mount-map",
					       ARRAY_SIZE(rc->ext));
		if (!colon || colon == arg || colon[1] != '/' ||
		    colon - arg >= (ptrdiff_t)sizeof(rc->ext_key[0]))
			return cli_usage_error("restore", "--ext-mount-map is KEY:PATH, PATH an "
					       "absolute path, not `%s`", arg);
		snprintf(rc->ext_key[k], sizeof(rc->ext_key[0]), "%.*s", (int)(colon - arg), arg);
		rc->ext[k] = (struct rst_ext_mnt){ rc->ext_key[k], colon + 1 };
		rc->o.ext = rc->ext;
		rc->o.nr_ext++;
		break;
	}
	case 'j':
		return parse_join(rc, arg);
	case 'C':
		rc->console_socket = arg;
		rc->o.pty_master = send_console;
		rc->o.pty_master_arg = rc;
		break;
	case 'F':
		if (rst_file_validation_parse(arg, &rc->o.files))
			return cli_usage_error("restore", "--file-validation is content, size or "
					       "none, not `%s`", arg);
		break;
	}
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "restore-detached", no_argument, NULL, 'd' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "require-same-pid", no_argument, NULL, 'S' },
		{ "pid-ns", no_argument, NULL, 'N' },
		{ "shell-job", no_argument, NULL, 'J' },
		{ "inherit-fd", required_argument, NULL, 'I' },
		{ "root", required_argument, NULL, 'r' },
		{ "ext-mount-map", required_argument, NULL, 'E' },
		{ "join-ns", required_argument, NULL, 'j' },
		{ "file-validation", required_argument, NULL, 'F' },
		{ "console-socket", required_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct restore_cli c = { 0 };
	struct rst_result r;
	struct ferr err;
	int status, ret;

	ret = cli_parse(argc, argv, "restore", "D:dvh", opts, cmd_restore_help, restore_opt, &c,
			NULL);
	if (ret)
		return ret == CLI_HELP_SHOWN ? EXIT_OK : ret;
	if (!c.o.dir)
		return cli_usage_error("restore", "-D DIR is required");

	ferr_clear(&err);
	if (rst_restore(&c.o, &r, &err)) {
		cli_error("restore", "%s", err.msg);
		return EXIT_FAIL;
	}
	pr_info("restored process %d from %s: %u threads, %u vmas, %" PRIu64 " pages "
		"(%.1f MiB) in %.3f s (validation %.3f s)%s", r.pid, c.o.dir, r.threads, r.vmas,
		r.pages, cli_mib(r.bytes), r.total_ns / 1e9, r.validate_ns / 1e9,
		r.same_pid ? "" : "; PIDs changed");
	if (r.cow_pages)
		pr_info("%" PRIu64 " pages (%.1f MiB) of children kept their parents' copy-on-write",
			r.cow_pages, cli_mib(r.cow_pages * (uint64_t)ferry_page_size()));
	if (r.ns_init)
		pr_info("in a new PID namespace, whose init is process %d", r.ns_init);
	cli_pidfile("restore", c.pidfile, r.pid);
	if (c.detached) {
		printf("%d\n", r.pid);
		return EXIT_OK;
	}
	/* With --pid-ns, ferry's child is the namespace's init. */
	while (waitpid(r.ns_init ? r.ns_init : r.pid, &status, 0) < 0) {
		if (errno != EINTR) {
			cli_error("restore", "wait for %d: %s", r.pid, strerror(errno));
			return EXIT_FAIL;
		}
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
