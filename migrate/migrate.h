/* The source of a migration: sends image directories to a page server over
 * an authenticated connection (docs/PROTOCOL.md) and runs the hand-over. */
#ifndef FERRY_MIGRATE_MIGRATE_H
#define FERRY_MIGRATE_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "migrate/net.h"
#include "proc/target.h"
#include "images/img.h"

struct mig_conn {
	int fd;
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
	uint64_t round_bytes;         /* of the round being sent */
	/* Page data streamed as each round is dumped (PAGES frames). */
	struct img_pages_sink sink;
	bool streaming;
	const char *root;            /* a writer in this directory sends as root_remote, */
	const char *root_remote;     /* one in a directory below it by that one's name */
	char remote[72];             /* the round being streamed */
	pthread_mutex_t mu;          /* one frame at a time from the page workers */
	int sink_err;                /* the stream broke: every later piece fails */
	struct ferr sink_msg;
};

/* Connect to HOST:PORT and authenticate both ends. */
int __must_check mig_connect(struct mig_conn *c, const char *to, const struct net_key *key,
			     struct ferr *err);
void mig_close(struct mig_conn *c);
/* Stream the page data of every round dumped from now on: the caller puts
 * the returned sink in dump_opts. A round written to root goes as
 * root_remote, one written to root/NAME as NAME (pre-N). pages.img stays
 * behind as its header and a hole of its size. */
struct img_pages_sink *mig_stream(struct mig_conn *c, const char *root, const char *root_remote);
/* Send every image file of local as round `remote` ("" or "pre-N"),
 * inventory.img last, then the ROUND frame. A streamed pages.img is only
 * announced complete. */
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
/* Tell the destination the migration is off (best effort). */
void mig_abort(struct mig_conn *c, const char *why);

#endif
