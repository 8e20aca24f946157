/* The source's jobs: `ferry migrate` (iterative pre-copy and hand-over) and
 * pre-dump/dump --page-server, built on the dump jobs and the sending side
 * (send.c). Nothing here prints: progress goes to the caller's hooks. */
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "migrate/migrate.h"

int mig_open(struct mig_conn *c, const struct mig_dest *d, struct ferr *err)
{
	struct net_key key = { 0 };
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	ret = d->auth_key ? net_key_load(d->auth_key, &key, err) : 0;
	if (!ret)
		ret = mig_connect(c, d->to, &key, err);
	c->compress = d->compress;
	c->progress = d->progress;
	c->progress_arg = d->progress_arg;
	return ret;
}

int mig_send_pre(void *arg, unsigned k, const char *dir, struct ferr *err)
{
	char remote[32];

	snprintf(remote, sizeof(remote), "pre-%u", k);
	return mig_send_round(arg, dir, remote, false, err);
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

/* ---- ferry migrate ------------------------------------------------------- */

struct mig_job {
	struct mig_conn conn;
	char staging[PATH_MAX];
};

static int hand_over(void *arg, struct target *t, struct ferr *err)
{
	struct mig_job *m = arg;
	int ret;

	pr_debug("final dump written %.1f ms into the freeze", (now_ns() - t->freeze_start_ns) / 1e6);
	ret = mig_send_round(&m->conn, m->staging, "", true, err);
	pr_debug("final dump sent %.1f ms into the freeze", (now_ns() - t->freeze_start_ns) / 1e6);
	return ret ? ret : mig_handover(&m->conn, t, err);
}

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
	struct mig_job m;
	int ret;

	memset(r, 0, sizeof(*r));
	m.conn.fd = -1;
	io->track = dump_choose_tracker(c->track, NULL, kd, io->base.pid, err);
	if (!io->track)
		return -err->code;
	r->tracker = io->track->name;
	/* The final round's metadata is written here and sent from here while
	 * the process is frozen; its pages go straight to the socket. */
	snprintf(m.staging, sizeof(m.staging), "%s/ferry-migrate-%d-XXXXXX", base, io->base.pid);
	if (!mkdtemp(m.staging))
		return ferr_sys(err, errno, "staging directory %s", m.staging);
	io->base.dir = m.staging;
	io->round_done = mig_send_pre;
	io->handover = hand_over;
	io->hook_arg = &m;
	ret = mig_open(&m.conn, d, err);
	if (!ret) {
		/* mig_send_pre takes the connection, the first member of m. */
		io->base.sink = mig_stream(&m.conn, m.staging, "");
		pr_info("migrating process %d to %s with --track %s", io->base.pid, d->to,
			io->track->name);
		ret = iter_run(io, &r->iter, cb, arg, err);
		r->dumped = !ret;
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

/* A dump's name on the page server: its -D basename, so that relative parent
 * paths (../p1) resolve there as here. */
static const char *remote_name(const char *dir, char *buf, size_t size)
{
	char *b;

	snprintf(buf, size, "%s", dir);
	while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/')
		buf[strlen(buf) - 1] = '\0';
	b = strrchr(buf, '/');
	return b ? b + 1 : buf;
}

/* The round just written to dir goes as remote; a final dump is also
 * committed there (the target is already dealt with). The pages live on the
 * page server only; dir keeps the metadata. */
static int send_dumped(struct mig_conn *conn, const struct mig_dest *d, const char *dir,
		       const char *remote, bool pre, struct mig_result *r, struct ferr *err)
{
	int ret = pre ? mig_send_round(conn, dir, remote, false, err)
		      : mig_send_dump(conn, dir, remote, err);

	take_counts(r, conn);
	mig_close(conn);
	return ret ? ferr_wrap(err, "page server %s", d->to) : 0;
}

int mig_dump_round(struct dump_opts *o, const struct dump_choice *c, const struct kerndat *kd,
		   const struct mig_dest *d, struct mig_result *r, struct ferr *err)
{
	char buf[PATH_MAX];
	const char *remote = remote_name(o->dir, buf, sizeof(buf));
	struct mig_conn conn;
	int ret;

	memset(r, 0, sizeof(*r));
	/* Connected (and authenticated) before anything is dumped. */
	ret = mig_open(&conn, d, err);
	if (ret) {
		mig_close(&conn);
		return ferr_wrap(err, "page server");
	}
	o->sink = mig_stream(&conn, o->dir, remote);
	ret = dump_job_round(o, c, kd, &r->round, err);
	o->sink = NULL;
	if (ret) {
		mig_close(&conn);
		return ret;
	}
	r->dumped = true;
	return send_dumped(&conn, d, o->dir, remote, o->pre, r, err);
}

int mig_dump_iterative(struct iter_opts *io, const struct dump_choice *c,
		       const struct kerndat *kd, const struct mig_dest *d, struct mig_result *r,
		       iter_round_cb cb, void *arg, struct ferr *err)
{
	struct mig_conn conn;
	int ret;

	memset(r, 0, sizeof(*r));
	io->track = dump_choose_tracker(c->track, NULL, kd, io->base.pid, err);
	if (!io->track)
		return -err->code;
	ret = mig_open(&conn, d, err);
	if (ret) {
		mig_close(&conn);
		return ferr_wrap(err, "page server");
	}
	io->round_done = mig_send_pre;
	io->hook_arg = &conn;
	io->base.sink = mig_stream(&conn, io->base.dir, "");
	ret = dump_job_iterative(io, c, kd, &r->iter, cb, arg, err);
	io->base.sink = NULL;
	if (ret) {
		mig_abort(&conn, err->msg);
		mig_close(&conn);
		return ret;
	}
	r->dumped = true;
	return send_dumped(&conn, d, io->base.dir, "", false, r, err);
}

void mig_result_free(struct mig_result *r)
{
	iter_result_free(&r->iter);
}
