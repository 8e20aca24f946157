/* `ferry swrk FD`: CRIU's RPC on an inherited socket, for container
 * runtimes (criu/swrk.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "criu/swrk.h"

void cmd_swrk_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry swrk FD\n"
		"\n"
		"Serve CRIU's RPC (criu_req / criu_resp of CRIU's rpc.proto) on the\n"
		"SOCK_SEQPACKET socket FD, as `criu swrk FD` does: container runtimes start\n"
		"their CRIU binary that way, so `runc --criu /path/to/ferry checkpoint ...`\n"
		"runs ferry. Requests are served one after another until the runtime\n"
		"closes the socket: VERSION, CHECK, FEATURE_CHECK, DUMP, PRE_DUMP\n"
		"(parent_img relative to the images directory; the tracker outlives this\n"
		"process) and RESTORE (rst_sibling: the restored process becomes the\n"
		"runtime's child); any other type is answered as failed. Each request's\n"
		"log goes to its log_file in its work directory, errors as CRIU's \"Error\"\n"
		"lines, which runtimes quote to their users.\n"
		"\n"
		"A process in namespaces of its own (a container) is refused before\n"
		"anything is frozen: ferry does not dump namespaces yet. Options ferry\n"
		"cannot honour are refused by name (tcp_established, ps, lazy_pages, ...);\n"
		"docs/CONTAINERS.md lists each option and what ferry does with it.\n"
		"\n"
		"  -v, --verbose            more messages on stderr (-vv: every option of\n"
		"                           every request)\n"
		"  -h, --help               this help\n"
		"\n"
		"Exit status: 0 once the runtime closed the socket, 1 if FD is not a\n"
		"usable socket or the connection failed, 2 usage error.\n");
}

int cmd_swrk(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferr err;
	char *end;
	int first, ret;
	long fd;

	ret = cli_parse(argc, argv, "swrk", "vh", opts, cmd_swrk_help, NULL, NULL, &first);
	if (ret)
		return ret == CLI_HELP_SHOWN ? EXIT_OK : ret;
	if (first != argc - 1)
		return cli_usage_error("swrk", "needs exactly one argument: the socket's fd");
	fd = strtol(argv[first], &end, 10);
	if (*end || !*argv[first] || fd < 0 || fd > 65535)
		return cli_usage_error("swrk", "FD must be a file descriptor number, not `%s`",
				       argv[first]);
	ferr_clear(&err);
	if (swrk_serve((int)fd, &err)) {
		cli_error("swrk", "%s", err.msg);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
