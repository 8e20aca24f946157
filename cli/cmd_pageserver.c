/* ferry page-server: the destination of `ferry migrate`. */
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "migrate/net.h"
#include "cli/cli.h"
#include "migrate/pageserver.h"
#include "images/img.h"
#include "restore/restore.h"

void cmd_page_server_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry page-server -D DIR [--address ADDR] [--port PORT]\n"
		"                         [--auth-key FILE] [--restore] [--json]\n"
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
		"      --address ADDR       listen address (default 127.0.0.1; without\n"
		"                           --auth-key only a loopback address is accepted\n"
		"                           unless --no-auth is given)\n"
		"      --port PORT          TCP port (default %d)\n"
		"      --auth-key FILE      pre-shared key: both ends prove it (HMAC-SHA256)\n"
		"      --no-auth            allow a non-loopback address without a key\n"
		"      --restore            restore the final dump and hand the process over;\n"
		"                           the process is built while the rounds arrive, so\n"
		"                           that only the last round's changes remain to do\n"
		"      --cold               with --restore: restore only once the final dump\n"
		"                           is in (slower; for comparison)\n"
		"      --max-file-size N    refuse image files larger than N bytes (default 1 TiB)\n"
		"      --pidfile FILE       write the restored process's PID to FILE\n"
		"      --json               the result as one JSON object\n"
		"  -v, --verbose            more detail on stderr\n"
		"\n"
		"The stream is not trusted: file names are checked (nothing outside DIR),\n"
		"sizes bounded, anything malformed ends the connection with an error.\n"
		"If the source vanishes after the restore but before saying its original\n"
		"is gone, the restored process is left stopped and the server says so.\n"
		"Exit status: 0 done, 1 failed, 2 usage error.\n",
		NET_DEFAULT_PORT);
}

/* The process is built while the rounds arrive (warm); if that fails, the
 * final dump is restored from scratch (cold), as it is with --cold. */
struct warm_ctx {
	struct rst_warm *w;
	bool off;
};

static void prebuild(void *arg, const char *dir)
{
	struct warm_ctx *c = arg;
	struct ferr err;
	int ret;

	if (c->off)
		return;
	ferr_clear(&err);
	ret = c->w ? rst_warm_update(c->w, dir, &err) : rst_warm_begin(&c->w, dir, &err);
	if (ret) {
		pr_warn("%s; the final dump will be restored from scratch", err.msg);
		rst_warm_free(c->w);
		c->w = NULL;
		c->off = true;
	}
}

static int restore_stopped(void *arg, const char *dir, pid_t *pid, struct ferr *err)
{
	struct warm_ctx *c = arg;
	struct rst_opts o = { .dir = dir, .stopped = true };
	struct rst_result r;
	int ret;

	ret = -1;
	if (c->w) {
		ret = rst_warm_finish(c->w, &o, &r, err);
		rst_warm_free(c->w);
		c->w = NULL;
		if (ret) {
			/* Whatever went wrong with building on the rounds, the
			 * images may still restore the usual way. */
			pr_warn("%s; restoring %s from scratch", err->msg, dir);
			c->off = true;
			ferr_clear(err);
		}
	}
	if (ret)
		ret = rst_restore(&o, &r, err);
	if (!ret) {
		*pid = r.pid;
		pr_info("restored process %d (%s): %.1f ms", r.pid, c->off ? "cold" : "warm",
			r.total_ns / 1e6);
	}
	return ret;
}

static bool loopback(const char *a)
{
	return !strcmp(a, "127.0.0.1") || !strcmp(a, "::1") || !strcmp(a, "localhost") ||
	       !strncmp(a, "127.", 4);
}

int cmd_page_server(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "auth-key", required_argument, NULL, 'k' },
		{ "no-auth", no_argument, NULL, 'n' },
		{ "restore", no_argument, NULL, 'r' },
		{ "cold", no_argument, NULL, 'c' },
		{ "max-file-size", required_argument, NULL, 'm' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ps_opts o = { .max_file = PS_MAX_FILE_DEFAULT };
	const char *addr = "127.0.0.1", *keyfile = NULL, *pidfile = NULL;
	unsigned long port = NET_DEFAULT_PORT, idle = 300;
	bool no_auth = false, json = false, restore = false;
	struct net_key key = { 0 };
	struct warm_ctx warm = { 0 };
	struct ps_result res;
	struct ferr err;
	char *end, path[PATH_MAX + 32];
	int c, lfd, fd, ret;

	while ((c = getopt_long(argc, argv, "D:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			o.dir = optarg;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = strtoul(optarg, &end, 10);
			if (*end || !*optarg || !port || port > 65535)
				return cli_usage_error("page-server", "--port needs 1-65535, not `%s`",
						       optarg);
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'n':
			no_auth = true;
			break;
		case 'r':
			restore = true;
			break;
		case 'c':
			warm.off = true;
			break;
		case 'm':
			o.max_file = strtoull(optarg, &end, 10);
			if (*end || !*optarg || !o.max_file)
				return cli_usage_error("page-server", "--max-file-size needs bytes");
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'i':
			idle = strtoul(optarg, &end, 10);
			if (*end || !*optarg || !idle || idle > 86400)
				return cli_usage_error("page-server", "--idle-timeout needs seconds "
						       "(1-86400), not `%s`", optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'v':
			log_set_level(log_get_level() < LOG_INFO ? LOG_INFO : LOG_DEBUG);
			break;
		case 'h':
			cmd_page_server_help(stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("page-server", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("page-server", "unexpected argument `%s`", argv[optind]);
	if (!o.dir)
		return cli_usage_error("page-server", "-D DIR is required");
	if (!keyfile && !no_auth && !loopback(addr))
		return cli_usage_error("page-server", "listening on %s without --auth-key lets "
				       "anyone send a process here: give a key, or --no-auth", addr);
	ferr_clear(&err);
	if (keyfile && net_key_load(keyfile, &key, &err)) {
		fprintf(stderr, "ferry page-server: %s\n", err.msg);
		return EXIT_FAIL;
	}
	if (mkdir(o.dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "ferry page-server: create %s: %s\n", o.dir, strerror(errno));
		return EXIT_FAIL;
	}
	o.key = &key;
	o.restore = restore ? restore_stopped : NULL;
	o.round = restore ? prebuild : NULL;
	o.arg = &warm;
	o.quiet = json;
	signal(SIGPIPE, SIG_IGN);
	lfd = net_listen(addr, (uint16_t)port, &err);
	if (lfd < 0) {
		fprintf(stderr, "ferry page-server: %s\n", err.msg);
		return EXIT_FAIL;
	}
	if (!json)
		printf("page-server: listening on %s port %lu, images to %s%s\n", addr, port, o.dir,
		       keyfile ? ", key required" : "");
	fflush(stdout);
	/* An old dump in DIR must not look like this migration's result. */
	snprintf(path, sizeof(path), "%s/" IMG_INVENTORY_NAME, o.dir);
	if (unlink(path) < 0 && errno != ENOENT) {
		fprintf(stderr, "ferry page-server: remove old %s: %s\n", path, strerror(errno));
		return EXIT_FAIL;
	}
	memset(&res, 0, sizeof(res));
	for (;;) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)idle * 1000);

		/* A source that went away for good (killed before it could say
		 * ABORT) must not keep the server, and a half-built process,
		 * waiting for ever. */
		if (pr == 0) {
			ret = ferr_new(&err, ETIMEDOUT, "no connection for %lu s after %u round%s: "
				       "giving up", idle, res.rounds, res.rounds == 1 ? "" : "s");
			break;
		}
		fd = pr < 0 ? -1 : accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			ret = ferr_sys(&err, errno, "accept");
			break;
		}
		/* Between rounds a source is busy copying; silence this long
		 * is not that. */
		net_set_timeout(fd, (unsigned)idle);
		ret = ps_serve(fd, &o, &res, &err);
		close(fd);
		if (ret || res.final)
			break;
		if (!json)
			printf("page-server: %u round%s so far; waiting for the next connection\n",
			       res.rounds, res.rounds == 1 ? "" : "s");
		fflush(stdout);
	}
	close(lfd);
	rst_warm_free(warm.w);
	if (res.pid && pidfile && cli_write_pidfile(pidfile, res.pid) < 0)
		fprintf(stderr, "ferry page-server: process %d runs, but writing %s failed: %s\n",
			(int)res.pid, pidfile, strerror(errno));
	if (json) {
		printf("{\"ok\":%s,\"rounds\":%u,\"files\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"final\":%s,\"pid\":%d,\"in_doubt\":%s}\n", ret ? "false" : "true",
		       res.rounds, res.files, res.bytes, res.final ? "true" : "false", (int)res.pid,
		       res.in_doubt ? "true" : "false");
	}
	if (ret) {
		fprintf(stderr, "ferry page-server: %s\n", err.msg);
		return EXIT_FAIL;
	}
	if (!json)
		printf("page-server: %u rounds and the final dump, %" PRIu64 " files, %.1f MiB\n",
		       res.rounds, res.files, res.bytes / 1048576.0);
	if (!json && res.pid)
		printf("page-server: restored process %d runs\n", (int)res.pid);
	return EXIT_OK;
}
