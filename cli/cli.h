/* Subcommands of the ferry binary. Each lives in its own cmd_*.c. */
#ifndef FERRY_CLI_CLI_H
#define FERRY_CLI_CLI_H

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

/* Write pid to path (through path.tmp and a rename: never half a file). */
int cli_write_pidfile(const char *path, pid_t pid);

/* Report a usage error for cmd and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
