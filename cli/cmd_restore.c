/* ferry restore: bring a dumped process back (restore/restore.h). */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/log.h"
#include "cli/cli.h"
#include "restore/restore.h"

void cmd_restore_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry restore -D DIR [-d|--restore-detached] [--pidfile FILE]\n"
		"                     [--require-same-pid] [-v]\n"
		"\n"
		"Re-create the process dumped in DIR (and its parent chain) and let it run\n"
		"on from where it was frozen, as `criu restore` does: its memory, threads,\n"
		"registers and FPU/AVX state, signal handlers, masks and pending signals,\n"
		"credentials, limits, cwd, and its files at the same fd numbers and offsets.\n"
		"\n"
		"Everything is checked before a process is created: the images' checksums,\n"
		"that every file behind a mapping, an fd or the executable is the same file\n"
		"as at dump time, and that this kernel's vdso fits. A failure later kills\n"
		"the half-built process; a restore never leaves one behind. The images are\n"
		"only read: the same DIR can be restored again.\n"
		"\n"
		"  -D, --images-dir DIR     the dump to restore (a full dump, not a pre-dump)\n"
		"  -d, --restore-detached   print the new PID and exit once the process runs;\n"
		"                           without it ferry waits and exits with its status\n"
		"      --pidfile FILE       write the restored PID to FILE\n"
		"      --require-same-pid   fail if the dumped PID or a TID is taken; without it\n"
		"                           ferry warns and gives the process new ones\n"
		"  -v, --verbose            progress messages and a summary on stderr\n"
		"  -h, --help               this help\n"
		"\n"
		"The restored process is a child of ferry, in ferry's session unless it led its\n"
		"own session or process group. fds 0-2 that the dump could not record (pipes,\n"
		"terminals, with `dump --skip-unsupported-fds`) are ferry's own; other such fds\n"
		"stay closed.\n"
		"Exit status: with -d 0 once restored; without, the process's exit status\n"
		"(128+N if signal N ended it); 1 if the restore failed, 2 usage error.\n");
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "restore-detached", no_argument, NULL, 'd' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "require-same-pid", no_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rst_opts o = { 0 };
	struct rst_result r;
	const char *pidfile = NULL;
	bool detached = false;
	struct ferr err;
	int c, status;

	while ((c = getopt_long(argc, argv, "D:dvh", opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			o.dir = optarg;
			break;
		case 'd':
			detached = true;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'S':
			o.require_same_pid = true;
			break;
		case 'v':
			log_set_level(log_get_level() < LOG_INFO ? LOG_INFO : LOG_DEBUG);
			break;
		case 'h':
			cmd_restore_help(stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("restore", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("restore", "unexpected argument `%s`", argv[optind]);
	if (!o.dir)
		return cli_usage_error("restore", "-D DIR is required");

	ferr_clear(&err);
	if (rst_restore(&o, &r, &err)) {
		fprintf(stderr, "ferry restore: %s\n", err.msg);
		return EXIT_FAIL;
	}
	pr_info("restored process %d from %s: %u threads, %u vmas, %" PRIu64 " pages "
		"(%.1f MiB) in %.3f s (validation %.3f s)%s", r.pid, o.dir, r.threads, r.vmas,
		r.pages, r.bytes / 1048576.0, r.total_ns / 1e9, r.validate_ns / 1e9,
		r.same_pid ? "" : "; PIDs changed");
	if (pidfile && cli_write_pidfile(pidfile, r.pid) < 0)
		fprintf(stderr, "ferry restore: process %d runs, but writing %s failed: %s\n", r.pid,
			pidfile, strerror(errno));
	if (detached) {
		printf("%d\n", r.pid);
		return EXIT_OK;
	}
	while (waitpid(r.pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "ferry restore: wait for %d: %s\n", r.pid, strerror(errno));
			return EXIT_FAIL;
		}
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
