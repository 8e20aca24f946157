/* `ferry migrate`: options, one migration (mig_run in migrate/source.c),
 * and its result. */
#include <inttypes.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/dump_cli.h"
#include "cli/events.h"
#include "common/json.h"

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
		"      --to unix:PATH       a page server on this host, by its Unix socket\n"
		"      --auth-key FILE      pre-shared key (both ends; at least 16 bytes; 0600,\n"
		"                           yours): TLS 1.3 with it as the PSK\n"
		"      --tls-cert F --tls-key F --tls-cacert F\n"
		"                           or certificates: ours, our key, and the CA that\n"
		"                           signed the page server's (both ends checked)\n"
		"      --tls-no-cn-verify   do not match the server's certificate to HOST\n"
		"      --downtime-limit MS  freeze target for the final round (default %d)\n"
		"      --max-rounds N       pre-dump rounds at most (default %d)\n"
		"      --auto-converge      throttle a process that dirties faster than it can\n"
		"                           be sent\n"
		"      --compress           zstd-compress the images on the wire (off by default)\n"
		"      --handover-timeout S from the freeze, the destination must have the final\n"
		"                           dump restored within S seconds (default %d), else\n"
		"                           the original resumes here\n"
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
		MIGRATE_DOWNTIME_MS, DEFAULT_MAX_ROUNDS, DEFAULT_HANDOVER_S);
}

static void print_json(const struct dump_cli *c, const struct mig_result *r)
{
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_u64(&j, "pid", (uint64_t)c->o.pid);
	json_str(&j, "to", c->dest.to);
	json_u64(&j, "remote_pid", (uint64_t)r->remote_pid);
	json_str(&j, "tracker", r->tracker);
	json_u64(&j, "rounds", r->iter.nr);
	json_str(&j, "stop_reason", r->iter.stop_reason);
	json_f64(&j, "downtime_seconds", r->downtime_ns / 1e9);
	json_f64(&j, "handover_seconds", r->handover_ns / 1e9);
	json_u64(&j, "final_pages", r->iter.final.data_pages);
	json_u64(&j, "bytes_sent", r->bytes);
	json_u64(&j, "bytes_on_wire", r->wire_bytes);
	json_bool(&j, "compressed", c->dest.compress);
	json_f64(&j, "seconds", r->iter.seconds);
	json_obj_end(&j);
	json_finish(&j);
}

static void print_text(const struct dump_cli *c, const struct mig_result *r)
{
	const struct dump_result *f = &r->iter.final;

	printf("%5s %10" PRIu64 " %10.1f %8.3f   (the final dump, sent and restored)\n", "final",
	       f->data_pages, cli_mib(f->data_pages * (double)ferry_page_size()), f->seconds);
	printf("stopped after %zu round%s: %s\n", r->iter.nr, r->iter.nr == 1 ? "" : "s",
	       r->iter.stop_reason);
	printf("moved process %d to %s (process %d there): downtime %.1f ms (hand-over "
	       "%.1f ms), %.3f s in all, %.1f MiB sent", c->o.pid, c->dest.to, (int)r->remote_pid,
	       r->downtime_ns / 1e6, r->handover_ns / 1e6, r->iter.seconds, cli_mib(r->bytes));
	if (c->dest.compress)
		printf(" (%.1f MiB on the wire, zstd)", cli_mib(r->wire_bytes));
	printf("\n");
}

int cmd_migrate(int argc, char **argv)
{
	struct dump_cli c = { .cmd = "migrate", .migrate = true, .iterative = true };
	struct iter_opts io;
	struct mig_result r;
	struct kerndat kd;
	struct ferr err;
	int ret = dump_cli_setup(argc, argv, &c, cmd_migrate_help, &kd);

	if (ret)
		return ret == CLI_HELP_SHOWN ? EXIT_OK : ret;
	dump_cli_dest(&c);
	io = (struct iter_opts){ .base = c.o, .downtime_limit_ns = c.downtime_ms * 1000000ull,
				 .max_rounds = c.max_rounds, .auto_converge = c.auto_converge };
	c.io = &io;
	ferr_clear(&err);
	ret = mig_run(&io, &c.choice, &kd, &c.dest, &r, dump_cli_round, &c, &err);
	if (ret) {
		cli_event_failed(&err);
		cli_error("migrate", "%s", err.msg);
		if (!r.ended)
			cli_error("migrate", "process %d %s", c.o.pid,
				  err.code == ESRCH ? "is gone" : "was not moved and runs on here");
	} else {
		cli_event_handover(r.remote_pid, r.downtime_ns, r.handover_ns);
		if (c.json)
			print_json(&c, &r);
		else
			print_text(&c, &r);
	}
	mig_result_free(&r);
	return ret ? EXIT_FAIL : EXIT_OK;
}
