/* ferry's entry point: global options and dispatch to subcommands. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/cancel.h"
#include "common/log.h"
#include "cli/cli.h"
#include "restore/restore.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.0.0-dev"
#endif

static const struct ferry_cmd commands[] = {
	{ "check", "probe the kernel and say what ferry can do here", cmd_check, cmd_check_help },
	{ "pre-dump", "copy a running process's memory and keep tracking its writes", cmd_pre_dump,
	  cmd_pre_dump_help },
	{ "dump", "freeze a process and write its complete state to images", cmd_dump, cmd_dump_help },
	{ "restore", "bring a dumped process back to life", cmd_restore, cmd_restore_help },
	{ "migrate", "move a running process to another host's page server", cmd_migrate,
	  cmd_migrate_help },
	{ "page-server", "receive a migration (or dumps) and restore it", cmd_page_server,
	  cmd_page_server_help },
	{ "show", "decode an image directory (like crit show)", cmd_show, cmd_show_help },
	{ "swrk", "serve CRIU's RPC on a socket, for container runtimes (runc --criu)", cmd_swrk,
	  cmd_swrk_help },
};

/* Commands that act on a live target and undo it when interrupted: for
 * them SIGINT, SIGTERM and SIGHUP ask the engine to stop (docs/SECURITY.md, "Signals").
 * The others keep the default action, so that an interrupted restore or
 * page server ends as before (its half-built child with it). */
static bool cancellable(const struct ferry_cmd *cmd)
{
	static const char *const names[] = { "dump", "pre-dump", "migrate", "swrk" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(cmd->name, names[i]) == 0)
			return true;
	return false;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: ferry [-v|-q] COMMAND [OPTIONS]\n"
		"       ferry help COMMAND\n"
		"\n"
		"ferry checkpoints a running Linux process to image files and restores it,\n"
		"or moves it to another host with iterative pre-copy.\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\n"
		"Global options:\n"
		"  -v, --verbose  more messages (repeat for debug)\n"
		"  --connect PATH run the command as a job of the ferryd listening at PATH\n"
		"                 (or $FERRY_SOCKET), with this caller's credentials, working\n"
		"                 directory and stdio; `jobs` lists the jobs, `status ID`\n"
		"                 shows one, `cancel ID` stops one, `follow ID` prints a\n"
		"                 job's events and exits with its status\n"
		"  -q, --quiet    errors only\n"
		"  -V, --version  print the version\n"
		"  -h, --help     this help\n"
		"\n"
		"Exit status: 0 success, 1 failure, 2 usage error, 128+N interrupted by\n"
		"signal N (dump, pre-dump, migrate and swrk undo what they did to the process).\n"
		"See ferry(1) and docs/ for the image format and each command.\n");
}

static const struct ferry_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	/* The reaper `restore --pid-ns` leaves as pid 1 of its namespace. */
	if (argc == 2 && strcmp(argv[1], "__pidns-init") == 0)
		rst_pidns_init();

	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "connect", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = getenv("FERRY_SOCKET");
	int level = LOG_WARN, c;
	const struct ferry_cmd *cmd;

	/* Global options stop at the first non-option: the subcommand. */
	while ((c = getopt_long(argc, argv, "+vqVh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			level++;
			break;
		case 'q':
			level = LOG_ERROR;
			break;
		case 'C':
			sock = optarg;
			break;
		case 'V':
			printf("ferry %s\n", FERRY_VERSION);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	log_set_level(level > LOG_DEBUG ? LOG_DEBUG : (enum log_level)level);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 >= argc) {
			usage(stdout);
			return EXIT_OK;
		}
		cmd = find_cmd(argv[optind + 1]);
		if (!cmd) {
			fprintf(stderr, "ferry: unknown command `%s`\n", argv[optind + 1]);
			return EXIT_USAGE;
		}
		cmd->help(stdout);
		return EXIT_OK;
	}
	/* Through the service: the job gets the same words, verbosity first. */
	if (sock && *sock) {
		if (level != LOG_WARN)
			argv[--optind] = level > LOG_WARN ? (char *)"-v" : (char *)"-q";
		if (level > LOG_INFO && optind > 0)
			argv[--optind] = (char *)"-v";
		return cli_connect(sock, argc - optind, argv + optind);
	}
	cmd = find_cmd(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "ferry: unknown command `%s`; `ferry --help` lists them\n", argv[optind]);
		return EXIT_USAGE;
	}
	argv += optind;
	argc -= optind;
	optind = 0; /* getopt_long restarts for the subcommand */
	if (cancellable(cmd))
		cancel_install();
	c = cmd->run(argc, argv);
	if (c != EXIT_OK && cancel_requested()) {
		/* The command said what failed; this says why, and what is left. */
		fprintf(stderr, "ferry %s: interrupted by SIG%s: what ferry did to the process "
			"was undone; no inventory was written\n", cmd->name,
			sigabbrev_np(cancel_signal()));
		return 128 + cancel_signal();
	}
	return c;
}
