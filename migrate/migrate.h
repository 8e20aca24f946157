/* The source of a migration: sends image directories to a page server over
 * an authenticated connection (docs/PROTOCOL.md) and runs the hand-over. */
#ifndef FERRY_MIGRATE_MIGRATE_H
#define FERRY_MIGRATE_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "dump/job.h"
#include "migrate/net.h"
#include "proc/target.h"
#include "images/img.h"

struct mig_conn {
	struct net_conn nc;
	uint64_t bytes;              /* image bytes sent */
	pid_t remote_pid;            /* the restored process on the destination */
	uint64_t handover_ns;        /* final dump sent to destination running */
	uint64_t downtime_ns;        /* frozen here to running there */
	bool ended;                  /* the original was ended: no way back */
	/* A large round's bytes sent so far (done: the round is sent), or NULL. */
	void (*progress)(void *arg, const char *round, uint64_t bytes, bool done);
	void *progress_arg;
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

/* Connect to HOST:PORT (or unix:PATH) and authenticate both ends by cr
 * (TLS 1.3); without credentials only a Unix socket is used. */
int __must_check mig_connect(struct mig_conn *c, const char *to, const struct net_creds *cr,
			     struct ferr *err);
void mig_close(struct mig_conn *c);
/* Stream the page data of every round dumped from now on: the caller puts
 * the returned sink in dump_opts. A round written to root goes as
 * root_remote, one written to root/NAME as NAME (pre-N). pages.img stays
 * behind as its header and a hole of its size. */
struct img_pages_sink *mig_stream(struct mig_conn *c, const char *root, const char *root_remote);
enum mig_round {
	MIG_PRE,         /* a pre-dump round: the destination stores it, says so */
	MIG_FINAL,       /* the final dump: stored, synced, restored (--restore); then
			    mig_handover */
	MIG_SNAPSHOT,    /* a final dump of a process that runs on here: stored and
			    synced, never started there */
};

/* Send every image file of local as round `remote` ("" or "pre-N"),
 * inventory.img last, then the ROUND frame. A streamed pages.img is only
 * announced complete. A pre-dump round and a snapshot wait for the
 * destination's word that it has them. */
int __must_check mig_send_round(struct mig_conn *c, const char *local, const char *remote,
				enum mig_round kind, struct ferr *err);
/* A tree's other process's images, complete in local (below the stream's
 * root): sent at once, before the next process's pages, named by their path
 * under the root (pre-N/pid-PID); the round's ROUND frame comes with its
 * root's images. */
int __must_check mig_send_member(struct mig_conn *c, const char *local, struct ferr *err);
/* After the final round: wait for the destination's restore, end the frozen
 * target, let the destination run it. An error before the target is ended
 * leaves it to the caller to resume. */
int __must_check mig_handover(struct mig_conn *c, const struct dump_frozen *f, struct ferr *err);
/* Tell the destination the migration is off (best effort). */
void mig_abort(struct mig_conn *c, const char *why);


/* ---- source.c: whole jobs on the source side ------------------------------ */

/* Where to send, and how. */
struct mig_dest {
	const char *to;              /* HOST:PORT ("[v6addr]:PORT") */
	const char *auth_key;        /* key file, or NULL */
	const char *tls_cert, *tls_key, *tls_cacert;   /* or certificates */
	bool tls_no_cn_verify;
	bool compress;               /* zstd blocks on the wire */
	unsigned handover_s;         /* the final dump sent and the destination's word
					in, from the freeze on, or the target resumes */
	/* Progress of large rounds (see struct mig_conn), or NULL. */
	void (*progress)(void *arg, const char *round, uint64_t bytes, bool done);
	void *progress_arg;
};

/* What a migration or a dump sent to a page server did. */
struct mig_result {
	struct iter_result iter;     /* the rounds (mig_run, mig_dump_iterative) */
	struct dump_result round;    /* the round (mig_dump_round) */
	const char *tracker;
	pid_t remote_pid;
	uint64_t bytes, wire_bytes, downtime_ns, handover_ns;
	bool ended;                  /* the original was ended: no way back */
};

/* Connect to d->to and authenticate with d's key (if any). */
int __must_check mig_open(struct mig_conn *c, const struct mig_dest *d, struct ferr *err);

/* `ferry migrate`: iterative pre-copy of io->base.pid to d, each round
 * streamed as it is dumped, the final one through a staging directory, and
 * the hand-over. On an error the original runs on unless r->ended. */
int __must_check mig_run(struct iter_opts *io, const struct dump_choice *c,
			 const struct kerndat *kd, const struct mig_dest *d,
			 struct mig_result *r, iter_round_cb cb, void *arg, struct ferr *err);
/* A dump's name on the page server: the basename of its -D (in buf), so
 * that relative parent paths (../p1) resolve there as here. */
const char *mig_remote_name(const char *dir, char *buf, size_t size);
/* pre-dump/dump --page-server: one round (dump_job_round), its pages sent
 * as read, its metadata after it; o->dir's basename names it there. A final
 * dump holds the target frozen until the page server has it on disk, then
 * ends it; with o->leave_running it is sent as a snapshot, never started
 * there. */
int __must_check mig_dump_round(struct dump_opts *o, const struct dump_choice *c,
				const struct kerndat *kd, const struct mig_dest *d,
				struct mig_result *r, struct ferr *err);
/* dump --iterative --page-server: every round sent (pre-N, then the final
 * dump as the server's DIR), the final one as mig_dump_round's. */
int __must_check mig_dump_iterative(struct iter_opts *io, const struct dump_choice *c,
				    const struct kerndat *kd, const struct mig_dest *d,
				    struct mig_result *r, iter_round_cb cb, void *arg,
				    struct ferr *err);
void mig_result_free(struct mig_result *r);

#endif
