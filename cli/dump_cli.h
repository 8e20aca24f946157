/* What `ferry dump`, `ferry pre-dump` and `ferry migrate` share: their
 * options (one parser), the backends chosen from them, the round table. */
#ifndef FERRY_CLI_DUMP_CLI_H
#define FERRY_CLI_DUMP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/kerndat.h"
#include "dump/job.h"
#include "migrate/migrate.h"

#define DEFAULT_DOWNTIME_MS 100
#define MIGRATE_DOWNTIME_MS 30 /* see dump_cli_parse() */
#define DEFAULT_MAX_ROUNDS 8
#define DEFAULT_HANDOVER_S 60

struct dump_cli {
	const char *cmd;
	struct dump_opts o;
	struct dump_choice choice;
	bool json, iterative, auto_converge, pre;
	uint64_t downtime_ms;
	unsigned max_rounds;
	bool iter_only_opt;    /* an option that only --iterative takes */
	bool downtime_set;
	bool tree_set;         /* --tree=yes|no given */
	bool migrate;          /* ferry migrate: --to, --auth-key */
	bool page_server;      /* dump/pre-dump --page-server --address --port */
	const char *ps_address, *ps_port;
	char ps_to[300];
	struct mig_dest dest;  /* --to or the page server; --auth-key, --compress */
	const struct iter_opts *io;  /* the iterative run, for the round table */
	struct dump_ext_mnt ext[64];   /* --ext-mount-map MNT:KEY */
	char ext_point[64][256];
};

/* Options parsed and checked, kd probed, backends chosen: 0, CLI_HELP_SHOWN
 * or an exit status (the error printed). */
int dump_cli_setup(int argc, char **argv, struct dump_cli *c, void (*help)(FILE *out),
		   struct kerndat *kd);
/* c->dest's progress hook where stderr is a terminal. */
void dump_cli_dest(struct dump_cli *c);
/* An iter_round_cb printing one row of the round table (arg: the dump_cli). */
void dump_cli_round(const struct iter_round *r, void *arg);

#endif
