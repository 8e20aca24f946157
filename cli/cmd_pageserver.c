/* `ferry page-server`: options, one page-server job (ps_run in
 * migrate/server.c), and what it did. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/json.h"
#include "migrate/pageserver.h"

void cmd_page_server_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry page-server -D DIR [--address ADDR] [--port PORT]\n"
		"                         (--auth-key FILE | --tls-cert F --tls-key F --tls-cacert F)\n"
		"                         [--restore [--cold] [--pid-ns] [--file-validation MODE]] [--json]\n"
		"\n"
		"Wait for one `ferry migrate` and write what it sends into DIR: its pre-dump\n"
		"rounds as DIR/pre-1, DIR/pre-2, ..., its final dump as DIR itself, the\n"
		"same image directories a local `ferry dump --iterative` writes. With\n"
		"--restore the final dump is restored at once (stopped), the source is\n"
		"told, and the process runs as soon as the source has ended its original.\n"
		"Then the server exits. `ferry pre-dump` and `ferry dump` with\n"
		"--page-server send here too, one connection per command: each round\n"
		"goes to DIR/<basename of its -D> (DIR itself for dump --iterative's\n"
		"final dump), and the server waits for connections until a final dump.\n"
		"\n"
		"  -D, --images-dir DIR     where the images go (created if missing)\n"
		"      --address ADDR       listen address (default 127.0.0.1), or unix:PATH:\n"
		"                           a Unix socket (created 0600) that needs no key and\n"
		"                           takes only root and this user as peers\n"
		"      --port PORT          TCP port (default %d)\n"
		"      --auth-key FILE      pre-shared key (0600, yours): TLS 1.3 with it as\n"
		"                           the PSK, every byte encrypted and authenticated\n"
		"      --tls-cert F --tls-key F --tls-cacert F\n"
		"                           or certificates: ours, our key, and the CA whose\n"
		"                           signature a client's certificate must carry\n"
		"      --restore            restore the final dump and hand the process over;\n"
		"                           the process is built while the rounds arrive, so\n"
		"                           that only the last round's changes remain to do\n"
		"      --cold               with --restore: restore only once the final dump\n"
		"                           is in (slower; for comparison)\n"
		"      --pid-ns             with --restore: into a new PID namespace, where the\n"
		"                           processes get their dumped PIDs even while those\n"
		"                           are taken here (a process tree needs its PIDs)\n"
		"      --file-validation MODE  with --restore: what is checked of each file\n"
		"                           behind the process, as `ferry restore` does:\n"
		"                           content (default), size or none\n"
		"      --max-file-size N    refuse image files larger than N bytes (default 1 TiB)\n"
		"      --pidfile FILE       write the restored process's PID to FILE\n"
		"      --json               the result as one JSON object\n"
		"  -v, --verbose            more detail on stderr\n"
		"\n"
		"A TCP page server never listens without a key or certificates, loopback\n"
		"included. A peer that does not authenticate within 10 s is dropped and\n"
		"the server goes on waiting. The stream is not trusted either: file names\n"
		"are checked (nothing outside DIR),\n"
		"sizes bounded, anything malformed ends the connection with an error.\n"
		"If the source vanishes after the restore but before saying its original\n"
		"is gone, the restored process is left stopped and the server says so.\n"
		"Exit status: 0 done, 1 failed, 2 usage error.\n",
		NET_DEFAULT_PORT);
}

struct ps_cli {
	struct ps_run_opts o;
	const char *pidfile;
	bool json;
};

static int ps_opt(void *ctx, int c, char *arg)
{
	struct ps_cli *p = ctx;
	unsigned long v;
	char *end;

	switch (c) {
	case 'D':
		p->o.dir = arg;
		break;
	case 'a':
		p->o.addr = arg;
		break;
	case 'p':
		v = strtoul(arg, &end, 10);
		if (*end || !*arg || !v || v > 65535)
			return cli_usage_error("page-server", "--port needs 1-65535, not `%s`", arg);
		p->o.port = (uint16_t)v;
		break;
	case 'k':
		p->o.key_file = arg;
		break;
	case 'n':
		return cli_usage_error("page-server", "--no-auth is gone: a TCP page server needs "
				       "--auth-key or certificates; use --address unix:PATH for a "
				       "local peer without a key");
	case 'C':
		p->o.tls_cert = arg;
		break;
	case 'K':
		p->o.tls_key = arg;
		break;
	case 'X':
		p->o.tls_cacert = arg;
		break;
	case 'r':
		p->o.restore = true;
		break;
	case 'c':
		p->o.cold = true;
		break;
	case 'N':
		p->o.pid_ns = true;
		break;
	case 'F':
		if (rst_file_validation_parse(arg, &p->o.files))
			return cli_usage_error("page-server", "--file-validation is content, size "
					       "or none, not `%s`", arg);
		break;
	case 'm':
		p->o.max_file = strtoull(arg, &end, 10);
		if (*end || !*arg || !p->o.max_file)
			return cli_usage_error("page-server", "--max-file-size needs bytes");
		break;
	case 'P':
		p->pidfile = arg;
		break;
	case 'i':
		v = strtoul(arg, &end, 10);
		if (*end || !*arg || !v || v > 86400)
			return cli_usage_error("page-server", "--idle-timeout needs seconds "
					       "(1-86400), not `%s`", arg);
		p->o.idle_s = (unsigned)v;
		break;
	case 'j':
		p->json = true;
		break;
	}
	return 0;
}

static void show_event(void *arg, enum ps_event ev, const char *round, bool final,
		       const struct ps_result *res)
{
	const struct ps_cli *p = arg;

	if (p->json)
		return;
	if (ev == PS_LISTENING && net_is_unix(p->o.addr))
		printf("page-server: listening on %s, images to %s\n", p->o.addr, p->o.dir);
	else if (ev == PS_LISTENING)
		printf("page-server: listening on %s port %u, images to %s, %s required\n",
		       p->o.addr, p->o.port, p->o.dir, p->o.key_file ? "key" : "certificate");
	else if (ev == PS_RECEIVED)
		printf("page-server: %s %s received\n", final ? "final dump" : "round", round);
	else
		printf("page-server: %u round%s so far; waiting for the next connection\n",
		       res->rounds, res->rounds == 1 ? "" : "s");
	fflush(stdout);
}

static void print_json(int ret, const struct ps_result *res)
{
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_bool(&j, "ok", !ret);
	json_u64(&j, "rounds", res->rounds);
	json_u64(&j, "files", res->files);
	json_u64(&j, "bytes", res->bytes);
	json_bool(&j, "final", res->final);
	json_i64(&j, "pid", res->pid);
	json_bool(&j, "in_doubt", res->in_doubt);
	json_obj_end(&j);
	json_finish(&j);
}

int cmd_page_server(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "auth-key", required_argument, NULL, 'k' },
		{ "no-auth", no_argument, NULL, 'n' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "tls-cacert", required_argument, NULL, 'X' },
		{ "restore", no_argument, NULL, 'r' },
		{ "cold", no_argument, NULL, 'c' },
		{ "pid-ns", no_argument, NULL, 'N' },
		{ "file-validation", required_argument, NULL, 'F' },
		{ "max-file-size", required_argument, NULL, 'm' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ps_cli p = { .o = { .addr = "127.0.0.1", .port = NET_DEFAULT_PORT,
				   .max_file = PS_MAX_FILE_DEFAULT, .idle_s = 300 } };
	struct ps_result res;
	struct ferr err;
	int ret = cli_parse(argc, argv, "page-server", "D:vh", opts, cmd_page_server_help, ps_opt,
			    &p, NULL);

	if (ret)
		return ret == CLI_HELP_SHOWN ? EXIT_OK : ret;
	if (!p.o.dir)
		return cli_usage_error("page-server", "-D DIR is required");
	if (!p.o.key_file && !p.o.tls_cert && !net_is_unix(p.o.addr))
		return cli_usage_error("page-server", "listening on %s without --auth-key or "
				       "certificates lets anyone send a process here: give a key "
				       "(or the --tls-* files), or listen on unix:PATH", p.o.addr);
	p.o.event = show_event;
	p.o.arg = &p;
	ferr_clear(&err);
	ret = ps_run(&p.o, &res, &err);
	if (res.pid)
		cli_pidfile("page-server", p.pidfile, res.pid);
	if (p.json)
		print_json(ret, &res);
	if (ret) {
		cli_error("page-server", "%s", err.msg);
		return EXIT_FAIL;
	}
	if (!p.json)
		printf("page-server: %u rounds and the final dump, %" PRIu64 " files, %.1f MiB\n",
		       res.rounds, res.files, cli_mib(res.bytes));
	if (!p.json && res.pid)
		printf("page-server: restored process %d runs\n", (int)res.pid);
	return EXIT_OK;
}
