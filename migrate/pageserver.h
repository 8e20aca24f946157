/* The destination of a migration: receives pre-dump rounds and the final
 * dump into DIR, the same image directories a local dump writes, and with a
 * restore function restores the final dump (stopped), tells the source, and
 * lets the process run once the source says its original is gone. */
#ifndef FERRY_MIGRATE_PAGESERVER_H
#define FERRY_MIGRATE_PAGESERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "migrate/net.h"
#include "restore/restore.h"

#define PS_MAX_FILE_DEFAULT (1ull << 40)   /* 1 TiB */
#define PS_MAX_FILES 64                    /* per process of a round */
#define PS_MAX_PROCS 4096                  /* processes of a round (a tree) */
#define PS_PENDING_MAX 8                   /* peers authenticating at once */

struct ps_opts {
	const char *dir;
	uint64_t max_file;                /* bytes of one image file at most */
	/* A pre-dump round is complete in dir (the warm restore builds on it);
	 * an error here only ends the warm restore, not the migration. */
	void (*round)(void *arg, const char *dir);
	/* Restore the dump in dir, leaving the process stopped; NULL: no restore. */
	int (*restore)(void *arg, const char *dir, pid_t *pid, struct ferr *err);
	/* A round (final: the final dump) is in, complete; or NULL. */
	void (*received)(void *arg, const char *round, bool final);
	void *arg;
};

struct ps_result {
	unsigned rounds;                  /* pre-dump rounds received */
	uint64_t bytes, files;
	bool final;                       /* the final dump arrived complete */
	pid_t pid;                        /* restored and running, or 0 */
	bool in_doubt;                    /* restored, left stopped: the source vanished
					     before saying its original is gone */
	bool snapshot;                    /* the final dump is a snapshot: stored, not run */
	bool aborted;                     /* the source said ABORT after the final dump: its
					     original runs on, the final dump was removed */
};

/* Serve one authenticated connection (HELLO on) until the final dump is handed
 * over (res->final), or until the source closes it cleanly after a complete
 * round (0, res->final false: a separate pre-dump command; the next comes on
 * a new connection). res accumulates over connections: zero it once. */
int __must_check ps_serve(struct net_conn *nc, const struct ps_opts *o, struct ps_result *res,
			  struct ferr *err);


/* ---- server.c: `ferry page-server` ---------------------------------------- */

enum ps_event {
	PS_LISTENING,    /* the socket is open: sources may connect */
	PS_RECEIVED,     /* a round (or, final, the final dump) is complete */
	PS_WAITING,      /* a command's rounds are in: waiting for the next one */
};

struct ps_run_opts {
	const char *dir;                  /* created if missing */
	const char *addr;
	uint16_t port;
	const char *key_file;             /* or NULL */
	const char *tls_cert, *tls_key, *tls_cacert;   /* or certificates */
	uint64_t max_file;
	unsigned idle_s;                  /* give up after this long without a connection */
	bool restore;                     /* restore the final dump and hand it over */
	bool cold;                        /* ... only once it is in, not as rounds arrive */
	bool pid_ns;                      /* ... into a new PID namespace (its own PIDs
					     inside while they are taken here) */
	enum rst_file_validation files;   /* what the restore checks of each file */
	/* What happens, for the caller to show (round: PS_RECEIVED's), or NULL. */
	void (*event)(void *arg, enum ps_event ev, const char *round, bool final,
		      const struct ps_result *res);
	void *arg;
};

/* Listen on addr:port and receive rounds into dir, one connection per
 * command, until the final dump is in (and, with restore, handed over); a
 * restore is built while the rounds arrive unless cold. res is zeroed here. */
int __must_check ps_run(const struct ps_run_opts *o, struct ps_result *res, struct ferr *err);

#endif
