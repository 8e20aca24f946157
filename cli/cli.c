/* Helpers every command shares: option parsing, errors, pidfiles. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"

int cli_parse(int argc, char **argv, const char *cmd, const char *shortopts,
	      const struct option *longopts, void (*help)(FILE *out), cli_opt_fn fn, void *ctx,
	      int *first)
{
	int c, ret;

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 'v':
			log_more_verbose();
			break;
		case 'h':
			help(stdout);
			return CLI_HELP_SHOWN;
		case '?':
		case ':':
			return cli_usage_error(cmd, "unknown option");
		default:
			ret = fn(ctx, c, optarg);
			if (ret)
				return ret;
		}
	}
	if (!first && optind < argc)
		return cli_usage_error(cmd, "unexpected argument `%s`", argv[optind]);
	if (first)
		*first = optind;
	return 0;
}

static void vreport(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "ferry %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cmd, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try `ferry help %s`.\n", cmd);
	return EXIT_USAGE;
}

void cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cmd, fmt, ap);
	va_end(ap);
}

/* Written to FILE.tmp and renamed: the temporary file is created afresh
 * (O_EXCL, O_NOFOLLOW), so a link planted under its name in a shared
 * directory is removed, never written through; rename replaces a link at
 * FILE itself without following it. */
int cli_write_pidfile(const char *path, pid_t pid)
{
	char tmp[4096], line[32];
	int fd, n, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (unlink(tmp) < 0 && errno != ENOENT)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = snprintf(line, sizeof(line), "%d\n", (int)pid);
	ok = write(fd, line, (size_t)n) == n;
	if (close(fd) != 0 || !ok || rename(tmp, path) != 0) {
		if (ok)
			unlink(tmp);
		return -1;
	}
	return 0;
}

void cli_pidfile(const char *cmd, const char *path, pid_t pid)
{
	if (path && cli_write_pidfile(path, pid) < 0)
		cli_error(cmd, "process %d runs, but writing %s failed: %s", (int)pid, path,
			  strerror(errno));
}
