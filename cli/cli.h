/* The command line: one cmd_*.c per command, each parsing its options,
 * calling one engine function and printing the result with the helpers
 * below. Nothing under cli/ is called by the engine. */
#ifndef FERRY_CLI_CLI_H
#define FERRY_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* Exit statuses shared by every subcommand. */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct ferry_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*help)(FILE *out);
};

int cmd_check(int argc, char **argv);
void cmd_check_help(FILE *out);
int cmd_dump(int argc, char **argv);
void cmd_dump_help(FILE *out);
int cmd_pre_dump(int argc, char **argv);
void cmd_pre_dump_help(FILE *out);
int cmd_restore(int argc, char **argv);
void cmd_restore_help(FILE *out);
int cmd_migrate(int argc, char **argv);
void cmd_migrate_help(FILE *out);
int cmd_page_server(int argc, char **argv);
void cmd_page_server_help(FILE *out);
int cmd_show(int argc, char **argv);
void cmd_show_help(FILE *out);
int cmd_swrk(int argc, char **argv);
void cmd_swrk_help(FILE *out);

/* connect.c: COMMAND ARGS run as a job of the ferryd listening at path
 * (`ferry --connect PATH ...`); `jobs` and `cancel ID` ask it about jobs.
 * Returns the job's exit status. */
int cli_connect(const char *path, int argc, char **argv);

/* ---- cli.c: what every command shares ------------------------------------- */

/* One option of a command (getopt's return and optarg): 0 to go on, or an
 * exit status (cli_usage_error's). */
typedef int (*cli_opt_fn)(void *ctx, int opt, char *arg);

#define CLI_HELP_SHOWN (-1)

/* Parse a command's options: -v/--verbose (one level more each) and
 * -h/--help (help to stdout, CLI_HELP_SHOWN) here, an unknown option as a
 * usage error, every other through fn. With first NULL no arguments may
 * follow the options; else *first is the index of the first (the command
 * checks them). Returns 0, CLI_HELP_SHOWN or an exit status. */
int cli_parse(int argc, char **argv, const char *cmd, const char *shortopts,
	      const struct option *longopts, void (*help)(FILE *out), cli_opt_fn fn, void *ctx,
	      int *first);

/* Report a usage error for cmd and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "ferry CMD: ..." on stderr, as every command reports a failure. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write pid to path (through path.tmp and a rename: never half a file). */
int cli_write_pidfile(const char *path, pid_t pid);
/* Write pid to path if path is set, saying so on stderr if that fails. */
void cli_pidfile(const char *cmd, const char *path, pid_t pid);

/* Bytes as MiB, for the summaries. */
static inline double cli_mib(double bytes)
{
	return bytes / 1048576.0;
}

#endif
