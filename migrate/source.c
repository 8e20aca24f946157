/* The source's jobs: `ferry migrate` (iterative pre-copy and hand-over) and
 * pre-dump/dump --page-server, built on the dump jobs and the sending side
 * (send.c). Nothing here prints: progress goes to the caller's hooks. */
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "migrate/migrate.h"

int mig_open(struct mig_conn *c, const struct mig_dest *d, struct ferr *err)
{
	struct net_creds cr;
	int ret;

	memset(c, 0, sizeof(*c));
	c->nc.fd = -1;
	ret = net_creds_load(&cr, d->auth_key, d->tls_cert, d->tls_key, d->tls_cacert, err);
	cr.no_cn_verify = d->tls_no_cn_verify;
	if (!ret)
		ret = mig_connect(c, d->to, &cr, err);
	OPENSSL_cleanse(&cr, sizeof(cr));
	c->compress = d->compress;
	c->progress = d->progress;
	c->progress_arg = d->progress_arg;
	return ret;
}

static void take_counts(struct mig_result *r, const struct mig_conn *c)
{
	r->remote_pid = c->remote_pid;
	r->bytes = c->bytes;
	r->wire_bytes = c->wire_bytes;
	r->downtime_ns = c->downtime_ns;
	r->handover_ns = c->handover_ns;
	r->ended = c->ended;
}

/* A job on the source: the connection, and where its final dump is. */
struct mig_job {
	struct mig_conn conn;
	const char *local, *remote;
	unsigned handover_s;
	char staging[PATH_MAX];
};

/* round_done: round k in dir goes as pre-k. */
static int send_pre(void *arg, unsigned k, const char *dir, struct ferr *err)
{
	struct mig_job *m = arg;
	char remote[32];

	snprintf(remote, sizeof(remote), "pre-%u", k);
	return mig_send_round(&m->conn, dir, remote, MIG_PRE, err);
}

/* handover: the final dump is written and the target frozen. Send it,
 * have the destination store (and restore) it, end the target, let the
 * copy run; all within handover_s of the freeze, else the target resumes. */
static int send_final(void *arg, const struct dump_frozen *f, struct ferr *err)
{
	struct mig_job *m = arg;
	struct target *t = f->root;
	int ret;

	m->conn.nc.deadline_ns = t->freeze_start_ns + m->handover_s * 1000000000ull;
	pr_debug("final dump written %.1f ms into the freeze", (now_ns() - t->freeze_start_ns) / 1e6);
	ret = mig_send_round(&m->conn, m->local, m->remote, MIG_FINAL, err);
	pr_debug("final dump sent %.1f ms into the freeze", (now_ns() - t->freeze_start_ns) / 1e6);
	if (!ret)
		ret = mig_handover(&m->conn, f, err);
	m->conn.nc.deadline_ns = 0;
	if (ret && err->code == ETIMEDOUT && !m->conn.ended)
		ferr_wrap(err, "the hand-over took more than %u s (--handover-timeout)",
			  m->handover_s);
	return ret;
}

/* member_done: a tree's other process's images go as soon as written. */
static int send_member(void *arg, const char *dir, struct ferr *err)
{
	struct mig_job *m = arg;

	return mig_send_member(&m->conn, dir, err);
}

/* Every round of o sent as written: pages as read, a tree's processes one
 * by one. */
static void stream_to(struct dump_opts *o, struct mig_job *m, const char *remote)
{
	o->sink = mig_stream(&m->conn, o->dir, remote);
	o->member_done = send_member;
	o->member_arg = m;
}

/* ---- ferry migrate ------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

int mig_run(struct iter_opts *io, const struct dump_choice *c, const struct kerndat *kd,
	    const struct mig_dest *d, struct mig_result *r, iter_round_cb cb, void *arg,
	    struct ferr *err)
{
	const char *base = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	struct mig_job m = { .remote = "", .handover_s = d->handover_s };
	int ret;

	memset(r, 0, sizeof(*r));
	m.conn.nc.fd = -1;
	io->track = dump_choose_tracker(c->track, NULL, kd, io->base.pid, err);
	if (!io->track)
		return -err->code;
	r->tracker = io->track->name;
	/* The final round's metadata is written here and sent from here while
	 * the process is frozen; its pages go straight to the socket. */
	snprintf(m.staging, sizeof(m.staging), "%s/ferry-migrate-%d-XXXXXX", base, io->base.pid);
	if (!mkdtemp(m.staging))
		return ferr_sys(err, errno, "staging directory %s", m.staging);
	m.local = io->base.dir = m.staging;
	io->round_done = send_pre;
	io->handover = send_final;
	io->hook_arg = &m;
	ret = mig_open(&m.conn, d, err);
	if (!ret) {
		stream_to(&io->base, &m, "");
		pr_info("migrating process %d to %s with --track %s", io->base.pid, d->to,
			io->track->name);
		ret = iter_run(io, &r->iter, cb, arg, err);
		if (ret && !m.conn.ended)
			mig_abort(&m.conn, err->msg);
	}
	take_counts(r, &m.conn);
	mig_close(&m.conn);
	nftw(m.staging, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	io->base.dir = NULL;
	return ret;
}

/* ---- pre-dump/dump --page-server ------------------------------------------ */

const char *mig_remote_name(const char *dir, char *buf, size_t size)
{
	char *b;

	snprintf(buf, size, "%s", dir);
	while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/')
		buf[strlen(buf) - 1] = '\0';
	b = strrchr(buf, '/');
	return b ? b + 1 : buf;
}

/* Connected (and authenticated) before anything is dumped. */
static int job_open(struct mig_job *m, const struct mig_dest *d, const char *local,
		    const char *remote, struct ferr *err)
{
	int ret;

	m->local = local;
	m->remote = remote;
	m->handover_s = d->handover_s;
	ret = mig_open(&m->conn, d, err);
	if (ret) {
		mig_close(&m->conn);
		return ferr_wrap(err, "page server");
	}
	return 0;
}

/* After the rounds: a pre-dump or a snapshot still has to go; a final
 * dump went in the hand-over. A failure loses nothing: the process runs. */
static int job_close(struct mig_job *m, const struct mig_dest *d, int ret, enum mig_round last,
		     struct mig_result *r, struct ferr *err)
{
	if (!ret && last != MIG_FINAL) {
		ret = mig_send_round(&m->conn, m->local, m->remote, last, err);
		if (ret)
			ferr_wrap(err, "page server %s", d->to);
	}
	if (ret && !m->conn.ended)
		mig_abort(&m->conn, err->msg);
	take_counts(r, &m->conn);
	mig_close(&m->conn);
	return ret;
}

int mig_dump_round(struct dump_opts *o, const struct dump_choice *c, const struct kerndat *kd,
		   const struct mig_dest *d, struct mig_result *r, struct ferr *err)
{
	char buf[PATH_MAX];
	struct mig_job m;
	struct dump_handover h = { send_final, &m };
	enum mig_round last = o->pre ? MIG_PRE : o->leave_running ? MIG_SNAPSHOT : MIG_FINAL;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = job_open(&m, d, o->dir, mig_remote_name(o->dir, buf, sizeof(buf)), err);
	if (ret)
		return ret;
	stream_to(o, &m, m.remote);
	ret = dump_job_round(o, c, kd, &h, &r->round, err);
	o->sink = NULL;
	o->member_done = NULL;
	return job_close(&m, d, ret, last, r, err);
}

int mig_dump_iterative(struct iter_opts *io, const struct dump_choice *c,
		       const struct kerndat *kd, const struct mig_dest *d, struct mig_result *r,
		       iter_round_cb cb, void *arg, struct ferr *err)
{
	struct mig_job m;
	enum mig_round last = io->base.leave_running ? MIG_SNAPSHOT : MIG_FINAL;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = job_open(&m, d, io->base.dir, "", err);
	if (ret)
		return ret;
	io->round_done = send_pre;
	io->handover = last == MIG_FINAL ? send_final : NULL;
	io->hook_arg = &m;
	stream_to(&io->base, &m, "");
	ret = dump_job_iterative(io, c, kd, &r->iter, cb, arg, err);
	io->base.sink = NULL;
	io->base.member_done = NULL;
	return job_close(&m, d, ret, last, r, err);
}

void mig_result_free(struct mig_result *r)
{
	iter_result_free(&r->iter);
}
