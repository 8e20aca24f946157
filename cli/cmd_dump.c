/* `ferry dump` and `ferry pre-dump`: options, one dump job (dump/job.h, or
 * migrate/migrate.h with --page-server), and the summary. */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/dump_cli.h"
#include "cli/events.h"
#include "common/json.h"
#include "migrate/migrate.h"

/* The --page-server options, as dump and pre-dump take them. */
#define PAGE_SERVER_HELP \
		"      --page-server        send the pages to `ferry page-server`, as DIR's\n" \
		"                           basename there (dump --iterative: its rounds and\n" \
		"                           DIR itself); DIR keeps the metadata\n" \
		"      --address A --port P the page server (default 127.0.0.1:27027; A may be\n" \
		"                           unix:PATH, a local page server's socket)\n" \
		"      --auth-key FILE      pre-shared key for the page server (TLS 1.3 PSK;\n" \
		"                           the file must be 0600 and yours)\n" \
		"      --tls-cert F --tls-key F --tls-cacert F\n" \
		"                           or certificates: ours, our key, and the CA that\n" \
		"                           signed the page server's (TLS 1.3, both ends checked)\n" \
		"      --tls-no-cn-verify   do not match the page server's certificate to A\n" \
		"      --compress           zstd-compress what is sent\n"

void cmd_dump_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry dump -t PID -D DIR [--leave-running] [--layout auto|procmap|maps]\n"
		"                  [--pages auto|pagemap-scan|pagemap] [--reader B] [--skip-unsupported-fds]\n"
		"                  [--prev-images-dir DIR] [--track auto|uffd-wp|soft-dirty|hash]\n"
		"                  [--freeze-cgroup CG] [--external net[INO]:KEY]\n"
		"                  [--iterative [--downtime-limit MS] [--max-rounds N]\n"
		"                   [--auto-converge]] [-v] [--json]\n"
		"\n"
		"Freeze every thread of process PID, write its complete state (threads,\n"
		"registers, FPU/AVX state, signals, memory layout, populated pages, file\n"
		"descriptors) to the image directory DIR, then end the process, as\n"
		"`criu dump` does. DIR is created if missing; inventory.img is written last,\n"
		"so a dump that fails leaves DIR incomplete and never restorable.\n"
		"\n"
		"  -t, --tree PID           the process to dump (a thread-group leader) and all\n"
		"                           its descendants, frozen together: pipes, Unix sockets\n"
		"                           and shared memory between them are restored as one\n"
		"      --tree=no            only PID, not its descendants\n"
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
		"      --shell-job          a process with a controlling terminal (started from\n"
		"                           a shell) is dumped; its fds on the terminal become\n"
		"                           the restoring ferry's terminal (restore --shell-job)\n"
		"      --orphan-pts         a tree on a pseudo-terminal whose master is outside\n"
		"                           it (a container's console, criu's orphan_pts_master):\n"
		"                           the terminal's index, termios and window size are\n"
		"                           dumped; the restore makes a new pair and hands its\n"
		"                           master over (restore --console-socket)\n"
		"      --file-locks         dump the file locks (flock, POSIX, OFD) the processes\n"
		"                           hold; restore takes them again (without it a\n"
		"                           process holding one is refused, as with criu)\n"
		"      --freeze-cgroup CG   the tree is a container's: freeze cgroup CG (a v1\n"
		"                           freezer cgroup or a cgroup v2 directory) while its\n"
		"                           processes are seized, refuse if they are not exactly\n"
		"                           the tree's, and thaw it before the dump proper\n"
		"      --ext-mount-map MNT:KEY  a tree in a mount namespace of its own (a\n"
		"                           container): the mount at MNT (as the container\n"
		"                           sees it) is the caller's, recorded as KEY only;\n"
		"                           restore --ext-mount-map KEY:PATH binds PATH there\n"
		"      --empty-ns net       a network namespace of its own is not dumped: the\n"
		"                           restore makes an empty one (loopback up), for the\n"
		"                           caller to set up (as runtimes do)\n"
		"      --external net[INO]:KEY  the tree's network namespace (inode INO,\n"
		"                           `stat -L -c %%i /proc/PID/ns/net`) is the caller's:\n"
		"                           not dumped, recorded as KEY; restore --inherit-fd\n"
		"                           fd[N]:KEY joins the one open at fd N (criu's option)\n"
		"      --skip-unsupported-fds  record fds ferry cannot restore (sockets other\n"
		"                           than Unix ones, userfaultfd, ...) and go on;\n"
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
		PAGE_SERVER_HELP
		"      --handover-timeout S with --page-server: the final dump must be on the\n"
		"                           page server's disk within S seconds of the freeze\n"
		"                           (default %d), else the process resumes here\n"
		"      --json               print the summary as one JSON object\n"
		"  -h, --help               this help\n"
		"\n"
		"With --page-server the process stays frozen until the page server has\n"
		"synced the dump to disk, and only then is it ended; with -R the dump is\n"
		"sent as a snapshot the page server never starts.\n"
		"The process is resumed unharmed on every failure: no such process, no\n"
		"permission, already traced, unsupported fds, exit mid-dump, full disk.\n"
		"`ferry restore -D DIR` restores an iterative dump from the same DIR.\n"
		"Exit status: 0 dumped, 1 failed, 2 usage error.\n",
		DEFAULT_DOWNTIME_MS, DEFAULT_MAX_ROUNDS, DEFAULT_HANDOVER_S);
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
		"      --freeze-cgroup CG   checked only (a pre-dump freezes nothing as a whole)\n"
		"      --external net[INO]:KEY  checked only (as for `ferry dump`)\n"
		"  -v, --verbose            progress messages\n"
		PAGE_SERVER_HELP
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
		if (r->tracker)
			json_str(&j, "tracker", r->tracker);
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
		       r->tracker ? r->tracker : "none");
		return;
	}
	printf("dumped process %d to %s: %" PRIu64 " pages (%.1f MiB)", o->pid, o->dir,
	       r->data_pages + r->zero_pages + r->parent_pages, bytes / 1048576.0);
	if (r->parent_pages)
		printf(" + %" PRIu64 " in parent", r->parent_pages);
	printf(", %zu threads, %zu vmas, %.3f s, frozen %.3f s, %s\n", r->threads, r->vmas,
	       r->seconds, r->freeze_ns / 1e9, r->killed ? "process ended" : "process left running");
}

void dump_cli_round(const struct iter_round *r, void *arg)
{
	const struct dump_cli *c = arg;

	cli_event_round(r);
	if (c->json)
		return;
	if (r->n == 1 && c->migrate)
		printf("migrating process %d to %s (tracker %s, downtime limit %" PRIu64 " ms)\n",
		       c->o.pid, c->dest.to, c->io->track->name, c->downtime_ms);
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


static int dump_opt(void *ctx, int ch, char *arg)
{
	struct dump_cli *c = ctx;
	const char *cmd = c->cmd;
	char *end;

	switch (ch) {
	case 't':
		/* -t PID names the tree's root (criu's option); --tree=no and
		 * --tree=yes say whether its descendants come too. */
		if (!strcmp(arg, "no") || !strcmp(arg, "yes")) {
			c->o.tree = arg[0] == 'y';
			c->tree_set = true;
			break;
		}
		c->o.pid = (pid_t)strtol(arg, &end, 10);
		if (*end || c->o.pid <= 0)
			return cli_usage_error(cmd, "-t needs a process id (or --tree=no|yes), not `%s`",
					       arg);
		break;
	case 'D':
		c->o.dir = arg;
		break;
	case 'R':
		c->o.leave_running = true;
		break;
	case 'L':
		c->choice.layout = arg;
		break;
	case 'P':
		c->choice.pages = arg;
		break;
	case 'r':
		c->choice.reader = arg;
		break;
	case 'S':
		c->o.skip_unsupported_fds = true;
		break;
	case 'l':
		c->o.file_locks = true;
		break;
	case 'J':
		c->o.shell_job = true;
		break;
	case 'F':
		c->o.freeze_cgroup = arg;
		break;
	case 'O':
		c->o.orphan_pts = true;
		break;
	case 'E': {
		const char *colon = strchr(arg, ':');
		struct dump_ext_mnt *e = &c->ext[c->o.ns.nr_ext];

		if (c->o.ns.nr_ext == ARRAY_SIZE(c->ext))
			return cli_usage_error(cmd, "at most %zu --ext-mount-map", ARRAY_SIZE(c->ext));
		if (arg[0] != '/' || !colon || !colon[1] ||
		    colon - arg >= (ptrdiff_t)sizeof(c->ext_point[0]))
			return cli_usage_error(cmd, "--ext-mount-map is MNT:KEY, MNT an absolute path "
					       "(under 256 bytes), not `%s`", arg);
		snprintf(c->ext_point[c->o.ns.nr_ext], sizeof(c->ext_point[0]), "%.*s",
			 (int)(colon - arg), arg);
		e->point = c->ext_point[c->o.ns.nr_ext];
		e->key = colon + 1;
		c->o.ns.nr_ext++;
		c->o.ns.ext = c->ext;
		break;
	}
	case 'x': {
		struct ferr e;

		ferr_clear(&e);
		if (c->migrate)
			return cli_usage_error(cmd, "--external goes with dump and pre-dump: the "
					       "destination of a migration has no fd to join");
		if (dump_ns_external(&c->o.ns, arg, &e))
			return cli_usage_error(cmd, "%s", e.msg);
		break;
	}
	case 'e':
		if (strcmp(arg, "net"))
			return cli_usage_error(cmd, "--empty-ns takes net only, not `%s`", arg);
		c->o.ns.empty_net = true;
		break;
	case 'p':
		c->o.parent = arg;
		break;
	case 'T':
		c->choice.track = arg;
		break;
	case 'I':
		c->iterative = true;
		break;
	case 'd':
		c->downtime_ms = strtoull(arg, &end, 10);
		if (*end || !*arg)
			return cli_usage_error(cmd, "--downtime-limit needs milliseconds, not `%s`",
					       arg);
		c->iter_only_opt = true;
		c->downtime_set = true;
		break;
	case 'm':
		c->max_rounds = (unsigned)strtoul(arg, &end, 10);
		if (*end || !*arg || !c->max_rounds || c->max_rounds > IMG_CHAIN_MAX - 1)
			return cli_usage_error(cmd, "--max-rounds needs a number from 1 to %d",
					       IMG_CHAIN_MAX - 1);
		c->iter_only_opt = true;
		break;
	case 'A':
		c->auto_converge = true;
		c->iter_only_opt = true;
		break;
	case 'j':
		c->json = true;
		break;
	case 'o':
		if (!c->migrate)
			return cli_usage_error(cmd, "--to goes with ferry migrate");
		c->dest.to = arg;
		break;
	case 'k':
		c->dest.auth_key = arg;
		break;
	case 'g':
		c->page_server = true;
		break;
	case 'a':
		c->ps_address = arg;
		break;
	case 'q':
		c->ps_port = arg;
		break;
	case 'z':
		c->dest.compress = true;
		break;
	case 'C':
		c->dest.tls_cert = arg;
		break;
	case 'K':
		c->dest.tls_key = arg;
		break;
	case 'X':
		c->dest.tls_cacert = arg;
		break;
	case 'N':
		c->dest.tls_no_cn_verify = true;
		break;
	case 'H':
		c->dest.handover_s = (unsigned)strtoul(arg, &end, 10);
		if (*end || !*arg || !c->dest.handover_s || c->dest.handover_s > 3600)
			return cli_usage_error(cmd, "--handover-timeout needs seconds (1-3600), "
					       "not `%s`", arg);
		break;
	}
	return 0;
}

/* The options of dump, pre-dump and migrate, parsed and checked. Returns 0,
 * CLI_HELP_SHOWN or an exit status. */
static int dump_cli_parse(int argc, char **argv, struct dump_cli *c, void (*help)(FILE *out))
{
	static const struct option opts[] = {
		{ "tree", required_argument, NULL, 't' },
		{ "images-dir", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, 'R' },
		{ "layout", required_argument, NULL, 'L' },
		{ "pages", required_argument, NULL, 'P' },
		{ "reader", required_argument, NULL, 'r' },
		{ "skip-unsupported-fds", no_argument, NULL, 'S' },
		{ "file-locks", no_argument, NULL, 'l' },
		{ "shell-job", no_argument, NULL, 'J' },
		{ "freeze-cgroup", required_argument, NULL, 'F' },
		{ "orphan-pts", no_argument, NULL, 'O' },
		{ "ext-mount-map", required_argument, NULL, 'E' },
		{ "empty-ns", required_argument, NULL, 'e' },
		{ "external", required_argument, NULL, 'x' },
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
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "tls-cacert", required_argument, NULL, 'X' },
		{ "tls-no-cn-verify", no_argument, NULL, 'N' },
		{ "handover-timeout", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = c->cmd;
	int ret;

	c->choice = (struct dump_choice){ "auto", "auto", "auto", "auto" };
	c->o.tree = true;
	c->dest.handover_s = DEFAULT_HANDOVER_S;
	c->downtime_ms = DEFAULT_DOWNTIME_MS;
	c->max_rounds = DEFAULT_MAX_ROUNDS;
	ret = cli_parse(argc, argv, cmd, "t:D:Rvh", opts, help, dump_opt, c, NULL);
	if (ret)
		return ret;
	if (c->migrate) {
		/* The final round's freeze also holds its sending and the
		 * destination's last step, which the prediction cannot see. */
		if (!c->downtime_set)
			c->downtime_ms = MIGRATE_DOWNTIME_MS;
		if (!c->o.pid || !c->dest.to)
			return cli_usage_error(cmd, "-t PID and --to HOST:PORT are required");
		if (c->o.leave_running || c->o.parent || c->o.dir)
			return cli_usage_error(cmd, "takes neither -D, --prev-images-dir nor "
					       "--leave-running (the process moves)");
		return 0;
	}
	if (!c->o.pid || !c->o.dir)
		return cli_usage_error(cmd, "-t PID and -D DIR are required");
	if ((c->ps_address || c->ps_port || c->dest.auth_key || c->dest.compress ||
	     c->dest.tls_cert || c->dest.tls_key || c->dest.tls_cacert) && !c->page_server)
		return cli_usage_error(cmd, "--address, --port, --auth-key, the --tls-* files and "
				       "--compress go with --page-server");
	if (c->page_server) {
		const char *a = c->ps_address ? c->ps_address : "127.0.0.1";

		if (net_is_unix(a))
			snprintf(c->ps_to, sizeof(c->ps_to), "%s", a);
		else
			snprintf(c->ps_to, sizeof(c->ps_to), strchr(a, ':') ? "[%s]:%s" : "%s:%s",
				 a, c->ps_port ? c->ps_port : "27027");
		c->dest.to = c->ps_to;
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
	if (!c->pre && !c->iterative && !c->o.parent && strcmp(c->choice.track, "auto"))
		return cli_usage_error(cmd, "--track goes with --prev-images-dir or --iterative");
	return 0;
}

/* The options parsed, the backends chosen: 0, or the exit status. */
int dump_cli_setup(int argc, char **argv, struct dump_cli *c, void (*help)(FILE *out),
		   struct kerndat *kd)
{
	struct ferr err;
	int ret = dump_cli_parse(argc, argv, c, help);

	if (ret)
		return ret == CLI_HELP_SHOWN ? CLI_HELP_SHOWN : ret;
	kerndat_probe(kd);
	c->o.pre = c->pre;
	ferr_clear(&err);
	if (dump_choose_backends(&c->o, &c->choice, kd, &err)) {
		cli_error(c->cmd, "%s", err.msg);
		return EXIT_FAIL;
	}
	return 0;
}

void dump_cli_progress(void *arg, const char *round, uint64_t bytes, bool done)
{
	const struct dump_cli *c = arg;

	cli_event_bytes(round, bytes, done);
	if (!isatty(STDERR_FILENO))
		return;
	if (done)
		fprintf(stderr, "\r\033[K");
	else
		fprintf(stderr, "\r\033[K  sending %s: %.0f MiB%s ", round, cli_mib(bytes),
			c->dest.compress ? " (zstd)" : "");
}

/* Where page data goes: to a page server, with the progress of large rounds
 * shown on a terminal. */
void dump_cli_dest(struct dump_cli *c)
{
	if (isatty(STDERR_FILENO) || cli_events_on()) {
		c->dest.progress = dump_cli_progress;
		c->dest.progress_arg = c;
	}
}

/* A failed dump: what went wrong, and what became of the process. */
static void report_failure(const struct dump_cli *c, const struct ferr *err)
{
	cli_event_failed(err);
	cli_error(c->cmd, "%s", err->msg);
	cli_error(c->cmd, "no complete %s was written to %s; process %d %s",
		  c->pre ? "pre-dump" : "dump", c->o.dir, c->o.pid,
		  err->code == ESRCH ? "is gone" : "was left running");
}

static void print_sent(const struct dump_cli *c, const char *remote, const struct mig_result *r)
{
	/* The pages live on the page server only; DIR keeps the metadata. */
	if (!c->json)
		printf("sent to the page server at %s as %s (%.1f MiB); the pages are kept "
		       "there only\n", c->ps_to, *remote ? remote : "its DIR", cli_mib(r->bytes));
}

static int run_iterative(struct dump_cli *c, const struct kerndat *kd)
{
	struct iter_opts io = { .base = c->o, .downtime_limit_ns = c->downtime_ms * 1000000ull,
				.max_rounds = c->max_rounds, .auto_converge = c->auto_converge };
	struct mig_result r;
	struct ferr err;
	int ret;

	ferr_clear(&err);
	memset(&r, 0, sizeof(r));
	c->io = &io;
	if (c->page_server)
		ret = mig_dump_iterative(&io, &c->choice, kd, &c->dest, &r, dump_cli_round, c, &err);
	else
		ret = dump_job_iterative(&io, &c->choice, kd, &r.iter, dump_cli_round, c, &err);
	if (ret) {
		report_failure(c, &err);
	} else {
		print_iter(c, &io, &r.iter);
		if (c->page_server)
			print_sent(c, "", &r);
	}
	iter_result_free(&r.iter);
	return ret ? EXIT_FAIL : EXIT_OK;
}

/* One round, pre-dump or final, maybe on top of --prev-images-dir. */
static int run_one(struct dump_cli *c, const struct kerndat *kd)
{
	char buf[PATH_MAX];
	struct mig_result r;
	struct ferr err;
	int ret;

	ferr_clear(&err);
	memset(&r, 0, sizeof(r));
	if (c->page_server)
		ret = mig_dump_round(&c->o, &c->choice, kd, &c->dest, &r, &err);
	else
		ret = dump_job_round(&c->o, &c->choice, kd, NULL, &r.round, &err);
	if (!ret)
		print_summary(c, &r.round);
	if (!ret && c->page_server)
		print_sent(c, mig_remote_name(c->o.dir, buf, sizeof(buf)), &r);
	if (ret)
		report_failure(c, &err);
	return ret ? EXIT_FAIL : EXIT_OK;
}

static int dump_main(int argc, char **argv, bool pre)
{
	struct dump_cli c = { .pre = pre, .cmd = pre ? "pre-dump" : "dump" };
	struct kerndat kd;
	int ret = dump_cli_setup(argc, argv, &c, pre ? cmd_pre_dump_help : cmd_dump_help, &kd);

	if (ret)
		return ret == CLI_HELP_SHOWN ? EXIT_OK : ret;
	dump_cli_dest(&c);
	return c.iterative ? run_iterative(&c, &kd) : run_one(&c, &kd);
}

int cmd_dump(int argc, char **argv)
{
	return dump_main(argc, argv, false);
}

int cmd_pre_dump(int argc, char **argv)
{
	return dump_main(argc, argv, true);
}
