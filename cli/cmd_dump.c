/* `ferry dump` and `ferry pre-dump`: the command lines of the dump engine
 * (dump.c), its dirty trackers (track.c, keeper.c) and the iterative loop
 * (iter.c). */
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/kerndat.h"
#include "common/log.h"
#include "proc/backend.h"
#include "cli/cli.h"
#include "dump/dump.h"
#include "dump/iter.h"
#include "migrate/migrate.h"
#include "dump/keeper.h"

#define DEFAULT_DOWNTIME_MS 100
#define MIGRATE_DOWNTIME_MS 30 /* see parse() */
#define DEFAULT_MAX_ROUNDS 8

void cmd_dump_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry dump -t PID -D DIR [--leave-running] [--layout auto|procmap|maps]\n"
		"                  [--pages auto|pagemap-scan|pagemap] [--reader B] [--skip-unsupported-fds]\n"
		"                  [--prev-images-dir DIR] [--track auto|uffd-wp|soft-dirty|hash]\n"
		"                  [--iterative [--downtime-limit MS] [--max-rounds N]\n"
		"                   [--auto-converge]] [-v] [--json]\n"
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
		"      --reader B           how the frozen process's pages leave it:\n"
		"                           process-vm-readv (into a buffer; auto, the default)\n"
		"                           or vmsplice (the process is made to vmsplice them\n"
		"                           into a pipe that is spliced on: no copy in ferry)\n"
		"      --skip-unsupported-fds  record pipes, sockets and other fds ferry cannot\n"
		"                           restore yet and go on (restore leaves them closed);\n"
		"                           without it the dump refuses before touching memory\n"
		"      --prev-images-dir P  a `ferry pre-dump` of this process (relative to DIR,\n"
		"                           as in criu): pages its tracker saw unwritten since are\n"
		"                           recorded as in-parent, not copied again\n"
		"      --track T            with --prev-images-dir or --iterative: the dirty\n"
		"                           tracker, uffd-wp, soft-dirty, hash or auto (default:\n"
		"                           the previous images' tracker, else the best usable)\n"
		"      --iterative          copy memory while the process runs, in rounds into\n"
		"                           DIR/pre-1, DIR/pre-2, ..., each copying only what was\n"
		"                           written since the last; then freeze for the final\n"
		"                           dump into DIR. One row per round is printed.\n"
		"      --downtime-limit MS  stop the rounds once the predicted freeze is at most\n"
		"                           MS milliseconds (default %d)\n"
		"      --max-rounds N       at most N pre-dump rounds (default %d)\n"
		"      --auto-converge      slow a process that writes faster than ferry copies\n"
		"                           (cgroup cpu.max, else SIGSTOP/SIGCONT duty cycles)\n"
		"  -v, --verbose            progress messages (twice: debugging detail)\n"
		"      --page-server        send the pages to `ferry page-server`, as DIR's\n"
		"                           basename there (dump --iterative: its rounds and\n"
		"                           DIR itself); DIR keeps the metadata\n"
		"      --address A --port P the page server (default 127.0.0.1:27027)\n"
		"      --auth-key FILE      pre-shared key for the page server\n"
		"      --compress           zstd-compress what is sent\n"
		"      --json               print the summary as one JSON object\n"
		"  -h, --help               this help\n"
		"\n"
		"The process is resumed unharmed on every failure: no such process, no\n"
		"permission, already traced, unsupported fds, exit mid-dump, full disk.\n"
		"`ferry restore -D DIR` restores an iterative dump from the same DIR.\n"
		"Exit status: 0 dumped, 1 failed, 2 usage error.\n",
		DEFAULT_DOWNTIME_MS, DEFAULT_MAX_ROUNDS);
}

void cmd_pre_dump_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry pre-dump -t PID -D DIR [--prev-images-dir DIR]\n"
		"                      [--track auto|uffd-wp|soft-dirty|hash]\n"
		"                      [--layout B] [--pages B] [-v] [--json]\n"
		"\n"
		"Copy the memory of process PID to DIR while it keeps running, and leave a\n"
		"dirty tracker armed, so that a later `ferry pre-dump` or `ferry dump` with\n"
		"--prev-images-dir DIR copies only the pages written since. With\n"
		"--prev-images-dir this round itself copies only what changed.\n"
		"\n"
		"  -t, --tree PID           the process (a thread-group leader)\n"
		"  -D, --images-dir DIR     where to write this round\n"
		"      --prev-images-dir P  the previous round, relative to DIR (as in criu)\n"
		"      --track T            uffd-wp (userfaultfd async write-protect and\n"
		"                           PAGEMAP_SCAN), soft-dirty, hash (per-page hashes), or\n"
		"                           auto (default: the previous round's, else the first\n"
		"                           this kernel and process allow, in that order)\n"
		"      --layout B, --pages B  as for `ferry dump`\n"
		"  -v, --verbose            progress messages\n"
		"      --page-server        send the pages to `ferry page-server`, as DIR's\n"
		"                           basename there (dump --iterative: its rounds and\n"
		"                           DIR itself); DIR keeps the metadata\n"
		"      --address A --port P the page server (default 127.0.0.1:27027)\n"
		"      --auth-key FILE      pre-shared key for the page server\n"
		"      --compress           zstd-compress what is sent\n"
		"      --json               print the summary as one JSON object\n"
		"  -h, --help               this help\n"
		"\n"
		"uffd-wp tracking lives in a userfaultfd that must stay open between\n"
		"commands: a small keeper process (`ferry` detached, holding only that fd\n"
		"and the target's pidfd) holds it until the next round takes it, and\n"
		"exits when it does or when the target exits. The process is only\n"
		"stopped for the moment it takes to create that userfaultfd (round one).\n"
		"Exit status: 0 done, 1 failed, 2 usage error.\n");
}

struct dump_cli {
	struct dump_opts o;
	const char *layout, *pages, *track, *reader;
	bool json, iterative, auto_converge, pre;
	uint64_t downtime_ms;
	unsigned max_rounds;
	bool iter_only_opt;    /* an option that only --iterative takes */
	bool migrate;          /* ferry migrate: --to, --auth-key */
	const char *to, *auth_key;
	bool page_server;      /* dump/pre-dump --page-server --address --port */
	const char *ps_address, *ps_port;
	char ps_to[300];
	bool compress;         /* zstd on the wire */
	bool downtime_set;
};

/* ---- trackers ------------------------------------------------------------- */

/* Choose the tracker: the user's, else the previous images', else the first
 * usable one (uffd-wp is passed over for a process using userfaultfd). */
static const struct tracker_ops *choose_tracker(const char *choice, const char *prev,
						const struct kerndat *kd, pid_t pid,
						const char *cmd)
{
	const struct backend_family *f = backend_family("tracker");
	const struct backend_desc *b;
	char why[256];

	if (strcmp(choice, "auto") == 0 && prev && tracker_ops_by_name(prev))
		return tracker_ops_by_name(prev);
	if (strcmp(choice, "auto") == 0) {
		struct target t;
		struct ferr e;
		bool uses = false;

		if (target_open(&t, pid, &e) == 0)
			uses = target_uses_uffd(&t);
		target_close(&t);
		for (size_t i = 0; i < f->n; i++) {
			if (!backend_usable(&f->list[i], kd))
				continue;
			if (uses && strcmp(f->list[i].name, "uffd-wp") == 0) {
				pr_info("process %d uses userfaultfd itself: not tracking with uffd-wp",
					pid);
				continue;
			}
			return tracker_ops_by_name(f->list[i].name);
		}
		fprintf(stderr, "ferry %s: no dirty tracker is usable here\n", cmd);
		return NULL;
	}
	b = backend_choose(f, choice, kd, why, sizeof(why));
	if (!b) {
		fprintf(stderr, "ferry %s: %s\n", cmd, why);
		return NULL;
	}
	return tracker_ops_by_name(b->name);
}

/* Pick up the previous round's tracking: soft-dirty bits live in the kernel,
 * hashes in the previous images, a userfaultfd in its keeper. */
static void resume_tracker(struct tracker *tr, const struct img_image *prev, pid_t pid)
{
	struct ferr e;
	int fd;

	if (!prev || !prev->inv->tracker || strcmp(prev->inv->tracker, tr->ops->name))
		return;
	if (tr->ops != &track_uffd_ops) {
		tr->armed = true;
		return;
	}
	fd = keeper_take(prev->inv->id.data, pid, &e);
	if (fd >= 0) {
		tr->uffd = fd;
		tr->armed = true;
		return;
	}
	if (fd == -ENOENT)
		pr_warn("the uffd-wp tracking of the previous images is gone (its keeper exited, "
			"or the process was tracked by a round that failed): copying every page");
	else
		pr_warn("%s: copying every page", e.msg);
}

/* ---- output --------------------------------------------------------------- */

static void json_result(struct json *j, const char *key, const struct dump_result *r)
{
	uint64_t ps = (uint64_t)ferry_page_size();

	json_obj_begin(j, key);
	json_u64(j, "threads", r->threads);
	json_u64(j, "vmas", r->vmas);
	json_u64(j, "pages", r->data_pages + r->zero_pages + r->parent_pages);
	json_u64(j, "data_pages", r->data_pages);
	json_u64(j, "zero_pages", r->zero_pages);
	json_u64(j, "parent_pages", r->parent_pages);
	json_u64(j, "bytes", r->data_pages * ps);
	json_f64(j, "seconds", r->seconds);
	json_f64(j, "freeze_seconds", r->freeze_ns / 1e9);
	json_bool(j, "tracked", r->tracked);
	json_obj_end(j);
}

static void print_summary(const struct dump_cli *c, const struct dump_result *r)
{
	const struct dump_opts *o = &c->o;
	uint64_t bytes = r->data_pages * (uint64_t)ferry_page_size();

	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_u64(&j, "pid", (uint64_t)o->pid);
		json_str(&j, "dir", o->dir);
		json_str(&j, "kind", c->pre ? "pre-dump" : "dump");
		json_u64(&j, "threads", r->threads);
		json_u64(&j, "vmas", r->vmas);
		json_u64(&j, "pages", r->data_pages + r->zero_pages + r->parent_pages);
		json_u64(&j, "data_pages", r->data_pages);
		json_u64(&j, "zero_pages", r->zero_pages);
		json_u64(&j, "parent_pages", r->parent_pages);
		json_u64(&j, "bytes", bytes);
		json_f64(&j, "seconds", r->seconds);
		json_f64(&j, "freeze_seconds", r->freeze_ns / 1e9);
		json_str(&j, "layout", o->layout->name);
		json_str(&j, "pages_backend", o->pages->name);
		if (o->tr)
			json_str(&j, "tracker", o->tr->ops->name);
		else
			json_null(&j, "tracker");
		json_bool(&j, "tracked", r->tracked);
		json_bool(&j, "left_running", !r->killed);
		json_obj_end(&j);
		json_finish(&j);
		return;
	}
	if (c->pre) {
		printf("pre-dumped process %d to %s: %" PRIu64 " pages copied (%.1f MiB), %" PRIu64
		       " unchanged in parent, %zu vmas, %.3f s, stopped %.2f ms, tracker %s\n",
		       o->pid, o->dir, r->data_pages + r->zero_pages, bytes / 1048576.0,
		       r->parent_pages, r->vmas, r->seconds, r->freeze_ns / 1e6,
		       o->tr ? o->tr->ops->name : "none");
		return;
	}
	printf("dumped process %d to %s: %" PRIu64 " pages (%.1f MiB)", o->pid, o->dir,
	       r->data_pages + r->zero_pages + r->parent_pages, bytes / 1048576.0);
	if (r->parent_pages)
		printf(" + %" PRIu64 " in parent", r->parent_pages);
	printf(", %zu threads, %zu vmas, %.3f s, frozen %.3f s, %s\n", r->threads, r->vmas,
	       r->seconds, r->freeze_ns / 1e9, r->killed ? "process ended" : "process left running");
}

static void print_round(const struct iter_round *r, void *arg)
{
	const struct dump_cli *c = arg;

	if (c->json)
		return;
	if (r->n == 1)
		printf("%5s %10s %10s %8s %8s %12s %12s %11s %8s\n", "round", "pages", "MiB",
		       "seconds", "stop ms", "dirty MB/s", "copy MB/s", "predict ms", "throttle");
	printf("%5u %10" PRIu64 " %10.1f %8.3f %8.2f %12.1f %12.1f %11.1f %7.0f%%\n", r->n,
	       r->pages, r->bytes / 1048576.0, r->seconds, r->freeze_ns / 1e6, r->dirty_rate / 1e6,
	       r->bandwidth / 1e6, r->predicted_ns / 1e6, r->throttle * 100);
	fflush(stdout);
}

static void print_iter(const struct dump_cli *c, const struct iter_opts *io,
		       const struct iter_result *r)
{
	uint64_t ps = (uint64_t)ferry_page_size();
	const struct dump_result *f = &r->final;

	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_u64(&j, "pid", (uint64_t)c->o.pid);
		json_str(&j, "dir", c->o.dir);
		json_str(&j, "tracker", io->track->name);
		json_f64(&j, "downtime_limit_ms", io->downtime_limit_ns / 1e6);
		json_arr_begin(&j, "rounds");
		for (size_t i = 0; i < r->nr; i++) {
			const struct iter_round *x = &r->rounds[i];

			json_obj_begin(&j, NULL);
			json_u64(&j, "round", x->n);
			json_u64(&j, "pages", x->pages);
			json_u64(&j, "parent_pages", x->parent_pages);
			json_u64(&j, "bytes", x->bytes);
			json_f64(&j, "seconds", x->seconds);
			json_f64(&j, "dirty_rate", x->dirty_rate);
			json_f64(&j, "bandwidth", x->bandwidth);
			json_f64(&j, "predicted_downtime_ms", x->predicted_ns / 1e6);
			json_f64(&j, "throttle", x->throttle);
			json_f64(&j, "stopped_seconds", x->freeze_ns / 1e9);
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_str(&j, "stop_reason", r->stop_reason);
		if (r->throttle_method)
			json_str(&j, "throttle_method", r->throttle_method);
		else
			json_null(&j, "throttle_method");
		json_result(&j, "final", f);
		json_f64(&j, "freeze_seconds", f->freeze_ns / 1e9);
		json_f64(&j, "seconds", r->seconds);
		json_u64(&j, "total_bytes", r->total_bytes);
		json_bool(&j, "left_running", !f->killed);
		json_obj_end(&j);
		json_finish(&j);
		return;
	}
	printf("%5s %10" PRIu64 " %10.1f %8.3f %8.2f   (the final dump; %" PRIu64
	       " pages in parent)\n", "final", f->data_pages, f->data_pages * ps / 1048576.0,
	       f->seconds, f->freeze_ns / 1e6, f->parent_pages);
	printf("stopped after %zu round%s: %s%s%s\n", r->nr, r->nr == 1 ? "" : "s",
	       r->stop_reason, r->throttle_method ? "; throttled by " : "",
	       r->throttle_method ? r->throttle_method : "");
	printf("dumped process %d to %s: frozen %.1f ms, %.3f s in all, %.1f MiB copied, %s\n",
	       c->o.pid, c->o.dir, f->freeze_ns / 1e6, r->seconds, r->total_bytes / 1048576.0,
	       f->killed ? "process ended" : "process left running");
}

/* ---- command lines -------------------------------------------------------- */

static int parse(int argc, char **argv, const char *cmd, struct dump_cli *c)
{
	static const struct option opts[] = {
		{ "tree", required_argument, NULL, 't' },
		{ "images-dir", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, 'R' },
		{ "layout", required_argument, NULL, 'L' },
		{ "pages", required_argument, NULL, 'P' },
		{ "reader", required_argument, NULL, 'r' },
		{ "skip-unsupported-fds", no_argument, NULL, 'S' },
		{ "prev-images-dir", required_argument, NULL, 'p' },
		{ "track", required_argument, NULL, 'T' },
		{ "iterative", no_argument, NULL, 'I' },
		{ "downtime-limit", required_argument, NULL, 'd' },
		{ "max-rounds", required_argument, NULL, 'm' },
		{ "auto-converge", no_argument, NULL, 'A' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "to", required_argument, NULL, 'o' },
		{ "auth-key", required_argument, NULL, 'k' },
		{ "page-server", no_argument, NULL, 'g' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'q' },
		{ "compress", no_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int ch;

	c->layout = c->pages = c->track = c->reader = "auto";
	c->downtime_ms = DEFAULT_DOWNTIME_MS;
	c->max_rounds = DEFAULT_MAX_ROUNDS;
	while ((ch = getopt_long(argc, argv, "t:D:Rvh", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			c->o.pid = atoi(optarg);
			if (c->o.pid <= 0)
				return cli_usage_error(cmd, "-t needs a process id, not `%s`", optarg);
			break;
		case 'D':
			c->o.dir = optarg;
			break;
		case 'R':
			c->o.leave_running = true;
			break;
		case 'L':
			c->layout = optarg;
			break;
		case 'P':
			c->pages = optarg;
			break;
		case 'r':
			c->reader = optarg;
			break;
		case 'S':
			c->o.skip_unsupported_fds = true;
			break;
		case 'p':
			c->o.parent = optarg;
			break;
		case 'T':
			c->track = optarg;
			break;
		case 'I':
			c->iterative = true;
			break;
		case 'd':
			c->downtime_ms = strtoull(optarg, &end, 10);
			if (*end || !*optarg)
				return cli_usage_error(cmd, "--downtime-limit needs milliseconds, not `%s`",
						       optarg);
			c->iter_only_opt = true;
			c->downtime_set = true;
			break;
		case 'm':
			c->max_rounds = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg || !c->max_rounds || c->max_rounds > IMG_CHAIN_MAX - 1)
				return cli_usage_error(cmd, "--max-rounds needs a number from 1 to %d",
						       IMG_CHAIN_MAX - 1);
			c->iter_only_opt = true;
			break;
		case 'A':
			c->auto_converge = true;
			c->iter_only_opt = true;
			break;
		case 'v':
			log_set_level(log_get_level() < LOG_INFO ? LOG_INFO : LOG_DEBUG);
			break;
		case 'j':
			c->json = true;
			break;
		case 'o':
			if (!c->migrate)
				return cli_usage_error(cmd, "--to goes with ferry migrate");
			c->to = optarg;
			break;
		case 'k':
			c->auth_key = optarg;
			break;
		case 'g':
			c->page_server = true;
			break;
		case 'a':
			c->ps_address = optarg;
			break;
		case 'q':
			c->ps_port = optarg;
			break;
		case 'z':
			c->compress = true;
			break;
		case 'h':
			if (c->migrate)
				cmd_migrate_help(stdout);
			else if (c->pre)
				cmd_pre_dump_help(stdout);
			else
				cmd_dump_help(stdout);
			return -1;
		default:
			return cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument `%s`", argv[optind]);
	if (c->migrate) {
		/* The final round's freeze also holds its sending and the
		 * destination's last step, which the prediction cannot see. */
		if (!c->downtime_set)
			c->downtime_ms = MIGRATE_DOWNTIME_MS;
		if (!c->o.pid || !c->to)
			return cli_usage_error(cmd, "-t PID and --to HOST:PORT are required");
		if (c->o.leave_running || c->o.parent || c->o.dir)
			return cli_usage_error(cmd, "takes neither -D, --prev-images-dir nor "
					       "--leave-running (the process moves)");
		return 0;
	}
	if (!c->o.pid || !c->o.dir)
		return cli_usage_error(cmd, "-t PID and -D DIR are required");
	if ((c->ps_address || c->ps_port || c->auth_key || c->compress) && !c->page_server)
		return cli_usage_error(cmd, "--address, --port, --auth-key and --compress go with "
				       "--page-server");
	if (c->page_server) {
		const char *a = c->ps_address ? c->ps_address : "127.0.0.1";

		snprintf(c->ps_to, sizeof(c->ps_to), strchr(a, ':') ? "[%s]:%s" : "%s:%s", a,
			 c->ps_port ? c->ps_port : "27027");
	}
	if (c->pre && (c->o.leave_running || c->iterative || c->iter_only_opt ||
		       c->o.skip_unsupported_fds))
		return cli_usage_error(cmd, "takes neither --leave-running, --skip-unsupported-fds "
				       "nor the --iterative options (a pre-dump always leaves the "
				       "process running)");
	if (c->iter_only_opt && !c->iterative)
		return cli_usage_error(cmd, "--downtime-limit, --max-rounds and --auto-converge go "
				       "with --iterative");
	if (c->iterative && c->o.parent)
		return cli_usage_error(cmd, "--iterative makes its own rounds: no --prev-images-dir");
	if (!c->pre && !c->iterative && !c->o.parent && strcmp(c->track, "auto"))
		return cli_usage_error(cmd, "--track goes with --prev-images-dir or --iterative");
	return 0;
}

static int pick_backends(struct dump_cli *c, const struct kerndat *kd, const char *cmd)
{
	const struct backend_desc *b;
	char why[256];

	b = backend_choose(backend_family("layout"), c->layout, kd, why, sizeof(why));
	if (!b || !(c->o.layout = layout_ops_by_name(b->name)))
		return fprintf(stderr, "ferry %s: %s\n", cmd, why), -1;
	b = backend_choose(backend_family("pages"), c->pages, kd, why, sizeof(why));
	if (!b || !(c->o.pages = pages_ops_by_name(b->name)))
		return fprintf(stderr, "ferry %s: %s\n", cmd, why), -1;
	c->o.use_pidfd = kd_has(kd, KD_PROCESS_VM_PIDFD);
	/* How page data leaves a frozen target: read into a buffer (auto: the
	 * faster in bench/b_dump.sh and b_migrate.sh), or through a pipe the
	 * target vmsplices into. process-vmsplice is refused by name where the
	 * kernel lacks it (everywhere: it was never merged). */
	b = backend_choose(backend_family("reader"), c->reader, kd, why, sizeof(why));
	if (!b)
		return fprintf(stderr, "ferry %s: %s\n", cmd, why), -1;
	if (!strcmp(b->name, "process-vmsplice"))
		return fprintf(stderr, "ferry %s: --reader process-vmsplice is not built: no kernel "
			       "has the system call\n", cmd), -1;
	c->o.splice = !strcmp(b->name, "vmsplice");
	return 0;
}

/* --page-server: connect (and authenticate) before anything is dumped. */
/* The key (if any) loaded, connected to `to` and authenticated. */
static int connect_to(const struct dump_cli *c, const char *to, struct mig_conn *conn,
		      struct ferr *err)
{
	struct net_key key = { 0 };
	int ret;

	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
	ret = c->auth_key ? net_key_load(c->auth_key, &key, err) : 0;
	if (!ret)
		ret = mig_connect(conn, to, &key, err);
	conn->compress = c->compress;
	return ret;
}

static int ps_connect(const struct dump_cli *c, struct mig_conn *conn, const char *cmd)
{
	struct ferr err;

	ferr_clear(&err);
	if (!c->page_server) {
		conn->fd = -1;
		return 0;
	}
	if (connect_to(c, c->ps_to, conn, &err)) {
		fprintf(stderr, "ferry %s: page server: %s\n", cmd, err.msg);
		return -1;
	}
	return 0;
}

static int ps_round_done(void *arg, unsigned k, const char *dir, struct ferr *err)
{
	char remote[32];

	snprintf(remote, sizeof(remote), "pre-%u", k);
	return mig_send_round(arg, dir, remote, false, err);
}

/* Send the dump just written to DIR (its -D basename names it there, ""
 * for dump --iterative's final dump, whose rounds are DIR/pre-N). */
static int ps_send(const struct dump_cli *c, struct mig_conn *conn, const char *remote,
		   const char *cmd)
{
	struct ferr err;
	int ret;

	ferr_clear(&err);
	ret = c->pre ? mig_send_round(conn, c->o.dir, remote, false, &err)
		     : mig_send_dump(conn, c->o.dir, remote, &err);
	mig_close(conn);
	if (ret) {
		fprintf(stderr, "ferry %s: page server %s: %s\n", cmd, c->ps_to, err.msg);
		fprintf(stderr, "ferry %s: the images are complete in %s all the same\n", cmd,
			c->o.dir);
		return EXIT_FAIL;
	}
	/* The pages live on the page server only; DIR keeps the metadata. */
	if (!c->json)
		printf("sent to the page server at %s as %s (%.1f MiB); the pages are kept "
		       "there only\n", c->ps_to, *remote ? remote : "its DIR",
		       conn->bytes / 1048576.0);
	return EXIT_OK;
}

static int run_iterative(struct dump_cli *c, const struct kerndat *kd)
{
	struct iter_opts io = { .base = c->o, .downtime_limit_ns = c->downtime_ms * 1000000ull,
				.max_rounds = c->max_rounds, .auto_converge = c->auto_converge };
	struct mig_conn conn;
	struct iter_result r;
	struct ferr err;
	int ret;

	io.track = choose_tracker(c->track, NULL, kd, c->o.pid, "dump");
	if (!io.track || ps_connect(c, &conn, "dump"))
		return EXIT_FAIL;
	if (c->page_server) {
		io.round_done = ps_round_done;
		io.hook_arg = &conn;
		io.base.sink = mig_stream(&conn, c->o.dir, "");
	}
	pr_info("iterative dump of process %d with --track %s, downtime limit %" PRIu64 " ms",
		c->o.pid, io.track->name, c->downtime_ms);
	ferr_clear(&err);
	ret = iter_run(&io, &r, print_round, c, &err);
	if (ret) {
		fprintf(stderr, "ferry dump: %s\n", err.msg);
		fprintf(stderr, "ferry dump: no complete dump was written to %s; process %d %s\n",
			c->o.dir, c->o.pid, err.code == ESRCH ? "is gone" : "was left running");
		iter_result_free(&r);
		if (c->page_server) {
			mig_abort(&conn, err.msg);
			mig_close(&conn);
		}
		return EXIT_FAIL;
	}
	print_iter(c, &io, &r);
	iter_result_free(&r);
	return c->page_server ? ps_send(c, &conn, "", "dump") : EXIT_OK;
}

/* A dump's name on the page server: its -D basename, so that relative parent
 * paths (../p1) resolve there as here. */
static const char *remote_name(const char *dir, char *buf)
{
	char *b;

	snprintf(buf, PATH_MAX, "%s", dir);
	while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/')
		buf[strlen(buf) - 1] = '\0';
	b = strrchr(buf, '/');
	return b ? b + 1 : buf;
}

/* One round, pre-dump or final, maybe on top of --prev-images-dir. */
static int run_one(struct dump_cli *c, const struct kerndat *kd, const char *cmd)
{
	char remote_buf[PATH_MAX];
	const char *remote = remote_name(c->o.dir, remote_buf);
	struct mig_conn conn;
	struct img_image *prev = NULL;
	struct tracker tr;
	struct dump_result r;
	struct ferr err;
	struct target t;
	int ret;

	ferr_clear(&err);
	tracker_init(&tr, NULL);
	if (c->o.parent) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", c->o.dir, c->o.parent);
		if (c->o.parent[0] == '/') {
			fprintf(stderr, "ferry %s: --prev-images-dir is relative to -D DIR (as in "
				"criu), not `%s`\n", cmd, c->o.parent);
			return EXIT_FAIL;
		}
		/* The path is relative to DIR, which must exist to resolve it. */
		if ((mkdir(c->o.dir, 0700) < 0 && errno != EEXIST) || img_open(&prev, path, &err)) {
			if (!err.code)
				ferr_sys(&err, errno, "create image directory `%s`", c->o.dir);
			fprintf(stderr, "ferry %s: previous images: %s\n", cmd, err.msg);
			return EXIT_FAIL;
		}
	}
	if (c->pre || prev) {
		tr.ops = choose_tracker(c->track, prev ? prev->inv->tracker : NULL, kd, c->o.pid, cmd);
		if (!tr.ops) {
			img_close(prev);
			return EXIT_FAIL;
		}
		resume_tracker(&tr, prev, c->o.pid);
		c->o.tr = &tr;
	}
	img_close(prev);
	pr_info("%s process %d with --layout %s --pages %s%s%s", cmd, c->o.pid, c->o.layout->name,
		c->o.pages->name, tr.ops ? " --track " : "", tr.ops ? tr.ops->name : "");

	if (ps_connect(c, &conn, cmd)) {
		tracker_fini(&tr);
		return EXIT_FAIL;
	}
	if (c->page_server)
		c->o.sink = mig_stream(&conn, c->o.dir, remote);
	ret = target_open(&t, c->o.pid, &err);
	if (!ret)
		ret = dump_round(&t, &c->o, &r, &err);
	/* A pre-dump leaves its userfaultfd to a keeper for the next round. */
	if (!ret && c->pre && tr.uffd >= 0)
		ret = keeper_spawn(r.id, t.pid, t.pidfd, tr.uffd, &err);
	target_close(&t);
	tracker_fini(&tr);
	if (ret) {
		fprintf(stderr, "ferry %s: %s\n", cmd, err.msg);
		fprintf(stderr, "ferry %s: no complete %s was written to %s; process %d %s\n", cmd,
			c->pre ? "pre-dump" : "dump", c->o.dir, c->o.pid,
			err.code == ESRCH ? "is gone" : "was left running");
		return EXIT_FAIL;
	}
	print_summary(c, &r);
	return c->page_server ? ps_send(c, &conn, remote, cmd) : EXIT_OK;
}

static int dump_main(int argc, char **argv, bool pre)
{
	const char *cmd = pre ? "pre-dump" : "dump";
	struct dump_cli c = { .pre = pre };
	struct kerndat kd;
	int ret = parse(argc, argv, cmd, &c);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	c.o.pre = pre;
	kerndat_probe(&kd);
	if (pick_backends(&c, &kd, cmd))
		return EXIT_FAIL;
	if (c.iterative)
		return run_iterative(&c, &kd);
	return run_one(&c, &kd, cmd);
}

int cmd_dump(int argc, char **argv)
{
	return dump_main(argc, argv, false);
}

int cmd_pre_dump(int argc, char **argv)
{
	return dump_main(argc, argv, true);
}

/* ---- ferry migrate ----------------------------------------------------------- */

void cmd_migrate_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry migrate -t PID --to HOST:PORT [options]\n"
		"\n"
		"Move a running process to the host where `ferry page-server --restore`\n"
		"listens: pre-dump rounds while it runs, each sent as it is written, then\n"
		"a short freeze for the final round. The destination restores the process\n"
		"stopped and says so; only then is the original ended and the copy let go.\n"
		"If anything fails before that (connection, key, the destination's\n"
		"restore), the original resumes where it was and ferry says why.\n"
		"\n"
		"  -t, --tree PID           the process to move\n"
		"      --to HOST:PORT       the page server (\"[v6addr]:PORT\" for IPv6)\n"
		"      --auth-key FILE      pre-shared key (both ends; at least 16 bytes)\n"
		"      --downtime-limit MS  freeze target for the final round (default %d)\n"
		"      --max-rounds N       pre-dump rounds at most (default %d)\n"
		"      --auto-converge      throttle a process that dirties faster than it can\n"
		"                           be sent\n"
		"      --compress           zstd-compress the images on the wire (off by default)\n"
		"      --track T            auto, uffd-wp, soft-dirty or hash (as pre-dump)\n"
		"      --layout, --pages, --reader  backends, as for dump\n"
		"      --json               the result as one JSON object\n"
		"  -v, --verbose            more detail on stderr\n"
		"\n"
		"Each round's pages are streamed to the page server as they are read;\n"
		"its metadata follows from a staging directory in /dev/shm (removed\n"
		"afterwards). --reader vmsplice moves the frozen final round's pages\n"
		"through a pipe the process vmsplices into instead of a buffer.\n"
		"The restored process gets new PIDs.\n"
		"Exit status: 0 moved, 1 failed (the original runs on unless it says\n"
		"otherwise), 2 usage error.\n",
		MIGRATE_DOWNTIME_MS, DEFAULT_MAX_ROUNDS);
}

struct mig_ctx {
	struct mig_conn conn;
	const struct dump_cli *c;
	char staging[PATH_MAX];
};

static int mig_round_done(void *arg, unsigned k, const char *dir, struct ferr *err)
{
	struct mig_ctx *m = arg;
	char remote[32];

	snprintf(remote, sizeof(remote), "pre-%u", k);
	return mig_send_round(&m->conn, dir, remote, false, err);
}

static int mig_hand_over(void *arg, struct target *t, struct ferr *err)
{
	struct mig_ctx *m = arg;
	int ret;

	pr_debug("final dump written %.1f ms into the freeze", (now_ns() - t->freeze_start_ns) / 1e6);
	ret = mig_send_round(&m->conn, m->staging, "", true, err);
	pr_debug("final dump sent %.1f ms into the freeze", (now_ns() - t->freeze_start_ns) / 1e6);
	return ret ? ret : mig_handover(&m->conn, t, err);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int run_migrate(struct dump_cli *c, const struct kerndat *kd)
{
	struct iter_opts io = { .base = c->o, .downtime_limit_ns = c->downtime_ms * 1000000ull,
				.max_rounds = c->max_rounds, .auto_converge = c->auto_converge,
				.round_done = mig_round_done, .handover = mig_hand_over };
	struct mig_ctx m = { .c = c };
	struct iter_result r = { 0 };
	struct ferr err;
	const char *base = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	int ret;

	ferr_clear(&err);
	m.conn.fd = -1;
	io.track = choose_tracker(c->track, NULL, kd, c->o.pid, "migrate");
	if (!io.track)
		return EXIT_FAIL;
	snprintf(m.staging, sizeof(m.staging), "%s/ferry-migrate-%d-XXXXXX", base, c->o.pid);
	if (!mkdtemp(m.staging)) {
		fprintf(stderr, "ferry migrate: staging directory %s: %s\n", m.staging,
			strerror(errno));
		return EXIT_FAIL;
	}
	io.base.dir = m.staging;
	io.hook_arg = &m;
	ret = connect_to(c, c->to, &m.conn, &err);
	if (!ret) {
		io.base.sink = mig_stream(&m.conn, m.staging, "");
		if (!c->json)
			printf("migrating process %d to %s (tracker %s, downtime limit %" PRIu64
			       " ms)\n", c->o.pid, c->to, io.track->name, c->downtime_ms);
		ret = iter_run(&io, &r, print_round, c, &err);
		if (ret && !m.conn.ended)
			mig_abort(&m.conn, err.msg);
	}
	mig_close(&m.conn);
	nftw(m.staging, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (ret) {
		fprintf(stderr, "ferry migrate: %s\n", err.msg);
		if (!m.conn.ended)
			fprintf(stderr, "ferry migrate: process %d %s\n", c->o.pid,
				err.code == ESRCH ? "is gone" : "was not moved and runs on here");
		iter_result_free(&r);
		return EXIT_FAIL;
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_u64(&j, "pid", (uint64_t)c->o.pid);
		json_str(&j, "to", c->to);
		json_u64(&j, "remote_pid", (uint64_t)m.conn.remote_pid);
		json_str(&j, "tracker", io.track->name);
		json_u64(&j, "rounds", r.nr);
		json_str(&j, "stop_reason", r.stop_reason);
		json_f64(&j, "downtime_seconds", m.conn.downtime_ns / 1e9);
		json_f64(&j, "handover_seconds", m.conn.handover_ns / 1e9);
		json_u64(&j, "final_pages", r.final.data_pages);
		json_u64(&j, "bytes_sent", m.conn.bytes);
		json_u64(&j, "bytes_on_wire", m.conn.wire_bytes);
		json_bool(&j, "compressed", c->compress);
		json_f64(&j, "seconds", r.seconds);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%5s %10" PRIu64 " %10.1f %8.3f   (the final dump, sent and restored)\n",
		       "final", r.final.data_pages,
		       r.final.data_pages * (double)ferry_page_size() / 1048576.0, r.final.seconds);
		printf("stopped after %zu round%s: %s\n", r.nr, r.nr == 1 ? "" : "s", r.stop_reason);
		printf("moved process %d to %s (process %d there): downtime %.1f ms (hand-over "
		       "%.1f ms), %.3f s in all, %.1f MiB sent", c->o.pid, c->to,
		       (int)m.conn.remote_pid, m.conn.downtime_ns / 1e6, m.conn.handover_ns / 1e6,
		       r.seconds, m.conn.bytes / 1048576.0);
		if (c->compress)
			printf(" (%.1f MiB on the wire, zstd)", m.conn.wire_bytes / 1048576.0);
		printf("\n");
	}
	iter_result_free(&r);
	return EXIT_OK;
}

int cmd_migrate(int argc, char **argv)
{
	struct dump_cli c = { .migrate = true, .iterative = true };
	struct kerndat kd;
	int ret = parse(argc, argv, "migrate", &c);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	kerndat_probe(&kd);
	if (pick_backends(&c, &kd, "migrate"))
		return EXIT_FAIL;
	return run_migrate(&c, &kd);
}
