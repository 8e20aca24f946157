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

static int refuse_unsupported_fds(const struct fd_list *l, pid_t pid, struct ferr *err)
{
	char desc[1024];

	if (!l->nr_unsupported)
		return 0;
	fds_describe_unsupported(l, desc, sizeof(desc));
	return ferr_new(err, EOPNOTSUPP, "process %d has file descriptors ferry cannot dump yet: "
			"%s (use --skip-unsupported-fds to dump without them)", pid, desc);
}

/* Refuse before freezing, so an unsupported fd costs the target nothing;
 * the list is taken again once frozen, as it may have changed. */
static int check_fds_early(struct target *t, struct ferr *err)
{
	struct fd_list l;
	int ret = fds_collect(t, &l, err);

	if (!ret)
		ret = refuse_unsupported_fds(&l, t->pid, err);
	fds_free(&l);
	return ret;
}

static int write_vmas(struct target *t, struct img_writer *w, const struct vma_list *vl,
		      struct ferr *err)
{
	for (size_t i = 0; i < vl->n; i++) {
		const struct vma *v = &vl->v[i];
		Ferry__Vma e;
		char path[64];
		int ret;

		vma_to_entry(v, &e);
		if (v->kind == FERRY__VMA_KIND__VMA_FILE) {
			snprintf(path, sizeof(path), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
			e.file = state_file_id(t->procfd, path);
		}
		ret = img_write_vma(w, &e, err);
		if (e.file)
			ferry__file_id__free_unpacked(e.file, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

/* Read every dumped page and write it. With leave_running the target is
 * released as soon as its memory is read, while the last batch is written. */
static int write_pages(struct target *t, struct img_writer *w, const struct vma_list *vl,
		       const struct dump_opts *o, struct dump_result *res, struct ferr *err)
{
	struct pages_ctx pc;
	struct xfer x;
	struct page_run *runs = malloc(PAGES_BATCH * sizeof(*runs));
	int ret;

	if (!runs)
		return ferr_sys(err, ENOMEM, "page runs");
	ret = pages_ctx_open(&pc, t->procfd, err);
	if (ret) {
		free(runs);
		return ret;
	}
	ret = xfer_init(&x, t, o->use_pidfd, w, XFER_BUF_DEFAULT, err);
	for (size_t i = 0; !ret && i < vl->n; i++) {
		const struct vma *v = &vl->v[i];
		enum pages_policy pol = pages_policy_of(v);
		uint64_t pos = v->start;

		while (!ret && pos < v->end) {
			size_t n;

			ret = o->pages->next(&pc, v, pol, &pos, runs, &n, err);
			if (!ret && n)
				ret = xfer_runs(&x, v, runs, n, err);
		}
	}
	if (!ret)
		ret = xfer_read_all(&x, err);
	pr_debug("pages read from the target");
	if (!ret && o->leave_running) {
		target_release(t);
		res->freeze_ns = t->freeze_ns;
	}
	if (!ret)
		ret = xfer_flush(&x, err);
	res->data_pages = x.data_pages;
	res->zero_pages = x.zero_pages;
	xfer_fini(&x);
	pages_ctx_close(&pc);
	free(runs);
	return ret;
}

int dump_run(const struct dump_opts *o, struct dump_result *res, struct ferr *err)
{
	struct target t;
	struct dump_state st = { 0 };
	struct vma_list vl = { 0 };
	struct fd_list fl = { 0 };
	struct img_writer *w = NULL;
	struct img_writer_opts wo = { .kind = FERRY__DUMP_KIND__DUMP_FULL };
	uint64_t t0 = now_ns();
	int ret;

	memset(res, 0, sizeof(*res));
	ret = target_open(&t, o->pid, err);
	if (!ret && !o->skip_unsupported_fds)
		ret = check_fds_early(&t, err);
	if (!ret)
		ret = target_freeze(&t, err);
	if (ret)
		goto out;
	res->threads = t.nr_th;
	pr_debug("frozen %zu threads after %.1f ms", t.nr_th, (now_ns() - t0) / 1e6);
	ret = state_collect(&t, &st, err);
	pr_debug("state collected at %.1f ms", (now_ns() - t0) / 1e6);
	if (!ret)
		ret = o->layout->read(t.procfd, &vl, err);
	if (!ret)
		ret = fds_collect(&t, &fl, err);
	if (!ret && !o->skip_unsupported_fds)
		ret = refuse_unsupported_fds(&fl, t.pid, err);
	if (ret)
		goto out;
	res->vmas = vl.n;
	pr_debug("layout (%zu VMAs) and fds read at %.1f ms", vl.n, (now_ns() - t0) / 1e6);

	wo.root_pid = (uint32_t)o->pid;
	ret = img_writer_create(&w, o->dir, &wo, err);
	if (!ret)
		ret = img_write_process(w, st.proc, err);
	for (size_t i = 0; !ret && i < st.nr_threads; i++)
		ret = img_write_thread(w, st.threads[i], err);
	if (!ret)
		ret = write_vmas(&t, w, &vl, err);
	for (size_t i = 0; !ret && i < fl.n; i++)
		ret = img_write_fd(w, fl.fds[i], err);
	if (!ret && fault_hit("kill-target-mid-dump")) {
		/* Half the images are written; the target dies for certain
		 * (its pidfd turns readable) before its memory is read. */
		struct pollfd pfd = { .fd = t.pidfd, .events = POLLIN };
		syscall(SYS_pidfd_send_signal, t.pidfd, SIGKILL, NULL, 0);
		poll(&pfd, 1, 5000);
	}
	if (!ret)
		ret = write_pages(&t, w, &vl, o, res, err);
	if (ret)
		goto out;
	pr_debug("pages written at %.1f ms", (now_ns() - t0) / 1e6);

	/* A live snapshot let the process go once its memory was read; the
	 * fsyncs of the commit need not be inside the freeze either. */
	if (!o->leave_running)
		res->freeze_ns = now_ns() - t.freeze_start_ns;
	ret = img_writer_commit(w, res->freeze_ns, err);
	if (ret)
		goto out;
	if (!o->leave_running) {
		/* Ended only once its images are safely on disk. */
		syscall(SYS_pidfd_send_signal, t.pidfd, SIGKILL, NULL, 0);
		res->killed = true;
	}
out:
	/* Whatever call noticed it, a dead target is the error to report. */
	if (ret && t.pidfd >= 0 && !target_alive(&t) && !strstr(err->msg, "exited")) {
		ferr_wrap(err, "process %d exited during the dump", o->pid);
		err->code = ESRCH;
	}
	target_close(&t);
	if (w)
		img_writer_free(w);
	res->seconds = (now_ns() - t0) / 1e9;
	state_free(&st);
	vma_list_free(&vl);
	fds_free(&fl);
	return ret;
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
