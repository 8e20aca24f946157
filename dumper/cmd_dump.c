/* `ferry dump`: freeze a process, write its complete state to an image
 * directory, then end it (or, with --leave-running, let it go on). Every
 * failure resumes the target as it was and leaves no inventory behind. */
#include <getopt.h>
#include <poll.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "common/fault.h"
#include "common/json.h"
#include "common/kerndat.h"
#include "common/log.h"
#include "dumper/backend.h"
#include "dumper/cli.h"
#include "dumper/dump.h"
#include "dumper/fds.h"
#include "dumper/layout.h"
#include "dumper/pages.h"
#include "dumper/state.h"
#include "dumper/target.h"
#include "dumper/xfer.h"

void cmd_dump_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry dump -t PID -D DIR [--leave-running] [--layout auto|procmap|maps]\n"
		"                  [--pages auto|pagemap-scan|pagemap] [--skip-unsupported-fds]\n"
		"                  [-v] [--json]\n"
		"\n"
		"Freeze every thread of process PID, write its complete state (threads,\n"
		"registers, FPU/AVX state, signals, memory layout, populated pages, file\n"
		"descriptors) to the image directory DIR, then end the process, as\n"
		"`criu dump` does. DIR is created if missing; inventory.img is written last,\n"
		"so a dump that fails leaves DIR incomplete and never restorable.\n"
		"\n"
		"  -t, --tree PID           the process to dump (a thread-group leader)\n"
		"  -D, --images-dir DIR     where to write the images\n"
		"  -R, --leave-running      resume the process after the dump instead of ending it\n"
		"      --layout B           how to read the VMAs: procmap (PROCMAP_QUERY), maps\n"
		"                           (parse /proc/PID/maps), or auto (default)\n"
		"      --pages B            how to find populated pages: pagemap-scan (PAGEMAP_SCAN),\n"
		"                           pagemap (/proc/PID/pagemap), or auto (default)\n"
		"      --skip-unsupported-fds  record pipes, sockets and other fds ferry cannot\n"
		"                           restore yet and go on (restore leaves them closed);\n"
		"                           without it the dump refuses before touching memory\n"
		"  -v, --verbose            progress messages\n"
		"      --json               print the summary as one JSON object\n"
		"  -h, --help               this help\n"
		"\n"
		"The process is resumed unharmed on every failure: no such process, no\n"
		"permission, already traced, unsupported fds, exit mid-dump, full disk.\n"
		"Exit status: 0 dumped, 1 failed, 2 usage error.\n");
}

static void print_summary(const struct dump_opts *o, const struct dump_result *r, bool json)
{
	uint64_t bytes = r->data_pages * (uint64_t)ferry_page_size();

	if (json) {
		struct json j;

		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_u64(&j, "pid", (uint64_t)o->pid);
		json_str(&j, "dir", o->dir);
		json_u64(&j, "threads", r->threads);
		json_u64(&j, "vmas", r->vmas);
		json_u64(&j, "pages", r->data_pages + r->zero_pages);
		json_u64(&j, "data_pages", r->data_pages);
		json_u64(&j, "zero_pages", r->zero_pages);
		json_u64(&j, "bytes", bytes);
		json_f64(&j, "seconds", r->seconds);
		json_f64(&j, "freeze_seconds", r->freeze_ns / 1e9);
		json_str(&j, "layout", o->layout->name);
		json_str(&j, "pages_backend", o->pages->name);
		json_bool(&j, "left_running", !r->killed);
		json_obj_end(&j);
		json_finish(&j);
		return;
	}
	printf("dumped process %d to %s: %" PRIu64 " pages (%.1f MiB), %zu threads, %zu vmas, "
	       "%.3f s, frozen %.3f s, %s\n", o->pid, o->dir, r->data_pages + r->zero_pages,
	       bytes / 1048576.0, r->threads, r->vmas, r->seconds, r->freeze_ns / 1e9,
	       r->killed ? "process ended" : "process left running");
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tree", required_argument, NULL, 't' },
		{ "images-dir", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, 'R' },
		{ "layout", required_argument, NULL, 'L' },
		{ "pages", required_argument, NULL, 'P' },
		{ "skip-unsupported-fds", no_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *layout = "auto", *pages = "auto";
	struct dump_opts o = { 0 };
	struct dump_result r;
	struct kerndat kd;
	struct ferr err;
	bool json = false;
	char why[256];
	const struct backend_desc *b;
	int c;

	while ((c = getopt_long(argc, argv, "t:D:Rvh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o.pid = atoi(optarg);
			if (o.pid <= 0)
				return cli_usage_error("dump", "-t needs a process id, not `%s`", optarg);
			break;
		case 'D':
			o.dir = optarg;
			break;
		case 'R':
			o.leave_running = true;
			break;
		case 'L':
			layout = optarg;
			break;
		case 'P':
			pages = optarg;
			break;
		case 'S':
			o.skip_unsupported_fds = true;
			break;
		case 'v':
			log_set_level(log_get_level() < LOG_INFO ? LOG_INFO : LOG_DEBUG);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			cmd_dump_help(stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("dump", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("dump", "unexpected argument `%s`", argv[optind]);
	if (!o.pid || !o.dir)
		return cli_usage_error("dump", "-t PID and -D DIR are required");

	kerndat_probe(&kd);
	b = backend_choose(backend_family("layout"), layout, &kd, why, sizeof(why));
	if (!b || !(o.layout = layout_ops_by_name(b->name)))
		return fprintf(stderr, "ferry dump: %s\n", why), EXIT_FAIL;
	b = backend_choose(backend_family("pages"), pages, &kd, why, sizeof(why));
	if (!b || !(o.pages = pages_ops_by_name(b->name)))
		return fprintf(stderr, "ferry dump: %s\n", why), EXIT_FAIL;
	o.use_pidfd = kd_has(&kd, KD_PROCESS_VM_PIDFD);
	pr_info("dumping process %d with --layout %s --pages %s, reading by %s", o.pid,
		o.layout->name, o.pages->name, o.use_pidfd ? "pidfd" : "pid (re-checked per batch)");

	ferr_clear(&err);
	if (dump_run(&o, &r, &err)) {
		fprintf(stderr, "ferry dump: %s\n", err.msg);
		fprintf(stderr, "ferry dump: no complete dump was written to %s; process %d %s\n",
			o.dir, o.pid, err.code == ESRCH ? "is gone" : "was left running");
		return EXIT_FAIL;
	}
	print_summary(&o, &r, json);
	return EXIT_OK;
}
