/* The source of a migration: sends image directories to a page server over
 * an authenticated connection (docs/PROTOCOL.md) and runs the hand-over. */
#ifndef FERRY_DUMPER_MIGRATE_H
#define FERRY_DUMPER_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/net.h"
#include "dumper/target.h"

enum mig_send_mode {
	MIG_SEND_SENDFILE,    /* file -> socket in the kernel (FERRY_SEND=sendfile) */
	MIG_SEND_BUFFER,      /* read() into a buffer, send() from it (the default) */
};

struct mig_conn {
	int fd;
	enum mig_send_mode mode;
	uint64_t bytes;              /* image bytes sent */
	pid_t remote_pid;            /* the restored process on the destination */
	uint64_t handover_ns;        /* final dump sent to destination running */
	uint64_t downtime_ns;        /* frozen here to running there */
	bool ended;                  /* the original was ended: no way back */
	bool progress;               /* show bytes sent on stderr (a terminal) */
	bool compress;               /* zstd blocks (set before sending) */
	void *zctx;                  /* ZSTD_CCtx */
	uint64_t wire_bytes;         /* image bytes as sent (compressed or not) */
	const char *round;           /* being sent, for the progress line */
	uint64_t round_bytes, round_total;
};

/* Connect to HOST:PORT and authenticate both ends. */
int __must_check mig_connect(struct mig_conn *c, const char *to, const struct net_key *key,
			     struct ferr *err);
void mig_close(struct mig_conn *c);
/* Send every image file of local as round `remote` ("" or "pre-N"),
 * inventory.img last, then the ROUND frame. */
int __must_check mig_send_round(struct mig_conn *c, const char *local, const char *remote,
				bool final, struct ferr *err);
/* After the final round: wait for the destination's restore, end the frozen
 * target, let the destination run it. An error before the target is ended
 * leaves it to the caller to resume. */
int __must_check mig_handover(struct mig_conn *c, struct target *t, struct ferr *err);
/* A final dump sent by `ferry dump --page-server`: the target is already
 * dealt with (ended, or left running with -R), so the page server is told
 * at once to let any copy it restored run. */
int __must_check mig_send_dump(struct mig_conn *c, const char *local, const char *remote,
			       struct ferr *err);
/* Once sent, a round's page data is not needed here: pages.img becomes a
 * hole of its size (the first page, its header, stays). */
void mig_drop_pages(const char *dir);
/* Tell the destination the migration is off (best effort). */
void mig_abort(struct mig_conn *c, const char *why);

#endif
