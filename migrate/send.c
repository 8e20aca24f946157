/* The sending side of a migration (see migrate.h). */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/cancel.h"
#include "common/fault.h"
#include "common/log.h"
#include "migrate/migrate.h"
#include "images/img.h"
#include "proto/migrate.pb-c.h"

int mig_connect(struct mig_conn *c, const char *to, const struct net_creds *cr, struct ferr *err)
{
	char host[256];
	uint16_t port;
	int ret;

	memset(c, 0, sizeof(*c));
	c->nc.fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	if (!net_creds_any(cr) && !net_is_unix(to))
		return ferr_new(err, EACCES, "no credentials for %s: give --auth-key (or the "
				"--tls-* files); only a unix: socket goes without", to);
	/* A write to a peer that went away must fail, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	c->nc.fd = net_connect(to, err);
	if (c->nc.fd < 0)
		return c->nc.fd;
	/* A destination that stops answering must not hold the source (and a
	 * frozen target) for ever. */
	net_set_timeout(&c->nc, 120);
	ret = 0;
	if (net_creds_any(cr)) {
		if (net_is_unix(to))
			snprintf(host, sizeof(host), "localhost");
		else if (net_split_hostport(to, host, sizeof(host), &port))
			ret = ferr_new(err, EINVAL, "`%s` is not HOST:PORT", to);
		if (!ret)
			ret = net_tls_client(&c->nc, cr, host, now_ns() + NET_HANDSHAKE_S * 1000000000ull,
					     err);
	}
	if (!ret)
		ret = net_hello_client(&c->nc, err);
	if (ret) {
		net_conn_close(&c->nc);
		return ferr_wrap(err, "%s", to);
	}
	return 0;
}

void mig_close(struct mig_conn *c)
{
	net_conn_close(&c->nc);
	ZSTD_freeCCtx(c->zctx);
	c->zctx = NULL;
	pthread_mutex_destroy(&c->mu);
}

/* A large round's bytes as they go, every 4 MiB or so, to whoever asked. */
static void show_progress(const struct mig_conn *c)
{
	if (c->progress && c->round_bytes > (64u << 20) && c->round_bytes % (4u << 20) < MIG_ZBLOCK)
		c->progress(c->progress_arg, c->round, c->round_bytes, false);
}

/* The destination's RESULT: 0 if it says ok (its restored process, if
 * any, in c->remote_pid), else `failed` and its reason. */
static int expect_result(struct mig_conn *c, const char *failed, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
	Ferry__MigResult *r;
	size_t len;
	int ret = net_expect(&c->nc, NET_RESULT, buf, &len, err);

	if (ret)
		return ret;
	r = ferry__mig_result__unpack(NULL, len, buf);
	if (!r)
		return ferr_new(err, EPROTO, "malformed RESULT from the page server");
	if (!r->ok)
		ret = ferr_new(err, EREMOTEIO, "%s: %s", failed,
			       r->message ? r->message : "no reason given");
	else
		c->remote_pid = r->has_pid ? r->pid : 0;
	ferry__mig_result__free_unpacked(r, NULL);
	return ret;
}

/* n <= MIG_ZBLOCK bytes as one zstd block (see MigFile). One sender at a
 * time: the page workers hold c->mu, files go when they are done. */
static int send_zblock(struct mig_conn *c, const void *raw, size_t n, struct ferr *err)
{
	static uint8_t z[8 + ZSTD_COMPRESSBOUND(MIG_ZBLOCK)];
	uint32_t hdr[2];
	size_t k;

	if (!c->zctx && !(c->zctx = ZSTD_createCCtx()))
		return ferr_sys(err, ENOMEM, "zstd context");
	k = ZSTD_compressCCtx(c->zctx, z + 8, sizeof(z) - 8, raw, n, 1);
	if (ZSTD_isError(k))
		return ferr_new(err, EIO, "zstd: %s", ZSTD_getErrorName(k));
	hdr[0] = (uint32_t)k;
	hdr[1] = (uint32_t)n;
	memcpy(z, hdr, sizeof(hdr));
	c->wire_bytes += 8 + k;
	return net_send_all(&c->nc, z, 8 + k, err);
}

/* len bytes of an image as they are, or (--compress) as zstd blocks of at
 * most MIG_ZBLOCK bytes each (see MigFile). */
static int send_bytes(struct mig_conn *c, const uint8_t *p, size_t len, struct ferr *err)
{
	int ret = 0;

	for (size_t at = 0; !ret && at < len;) {
		size_t n = len - at < MIG_ZBLOCK ? len - at : MIG_ZBLOCK;

		if (c->compress) {
			ret = send_zblock(c, p + at, n, err);
		} else {
			ret = net_send_all(&c->nc, p + at, n, err);
			c->wire_bytes += n;
		}
		at += n;
	}
	return ret;
}

/* A file's size bytes, read a block at a time. */
static int send_body(struct mig_conn *c, int in, uint64_t size, const char *path,
		     struct ferr *err)
{
	static uint8_t buf[MIG_ZBLOCK];
	uint64_t off = 0;

	while (off < size) {
		size_t n = size - off < MIG_ZBLOCK ? (size_t)(size - off) : MIG_ZBLOCK;
		ssize_t got = pread(in, buf, n, (off_t)off);

		if (got != (ssize_t)n)
			return ferr_sys(err, got < 0 ? errno : EIO, "read %s", path);
		if (send_bytes(c, buf, n, err))
			return ferr_wrap(err, "%s", path);
		off += n;
		c->round_bytes += n;
		show_progress(c);
	}
	c->bytes += size;
	return 0;
}

#define ABORT_WAIT_NS (1000ull * 1000000) /* for the server to act on an ABORT */

void mig_abort(struct mig_conn *c, const char *why)
{
	Ferry__MigResult r = FERRY__MIG_RESULT__INIT;
	uint64_t end = now_ns() + ABORT_WAIT_NS;
	struct ferr ignored;
	char sink[4096];

	if (c->nc.fd < 0)
		return;
	r.message = (char *)why;
	if (net_send(&c->nc, NET_ABORT, &r.base, &ignored))
		return;
	/* The server removes a final dump it holds, then closes: wait for
	 * that (a second at most), so that once the source has exited no
	 * complete dump of a process that runs on is left there. Whatever
	 * comes first is drained unread (TLS records included). */
	for (uint64_t now = now_ns(); now < end; now = now_ns()) {
		struct pollfd p = { .fd = c->nc.fd, .events = POLLIN };
		ssize_t n = poll(&p, 1, (int)((end - now) / 1000000) + 1);

		if (n > 0)
			n = read(c->nc.fd, sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
}

/* ---- the page stream --------------------------------------------------- */

/* A directory's name on the page server: root as root_remote; below it,
 * its path under root (pre-N, pid-PID, pre-N/pid-PID), after root_remote
 * if that is not "". */
static int remote_name(const struct mig_conn *c, const char *dir, char *buf, size_t size,
		       struct ferr *err)
{
	size_t n = strlen(c->root);
	const char *rel;
	int len;

	if (!strcmp(dir, c->root))
		len = snprintf(buf, size, "%s", c->root_remote);
	else if (!strncmp(dir, c->root, n) && dir[n] == '/' && dir[n + 1]) {
		rel = dir + n + 1;
		len = snprintf(buf, size, "%s%s%s", c->root_remote, *c->root_remote ? "/" : "",
			       rel);
	} else {
		rel = strrchr(dir, '/');
		len = snprintf(buf, size, "%s", rel ? rel + 1 : dir);
	}
	if (len < 0 || (size_t)len >= size)
		return ferr_new(err, ENAMETOOLONG, "round name for `%s`", dir);
	return 0;
}

static int sink_open(struct img_pages_sink *s, const char *dir, struct ferr *err)
{
	struct mig_conn *c = container_of(s, struct mig_conn, sink);
	char name[sizeof(c->remote)];
	int ret = remote_name(c, dir, name, sizeof(name), err);

	if (ret)
		return ret;
	pthread_mutex_lock(&c->mu);
	snprintf(c->remote, sizeof(c->remote), "%s", name);
	c->round = *c->remote ? c->remote : "the final dump";
	c->round_bytes = 0;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* The header of a PAGES frame for len bytes at off; they follow. */
static int pages_header(struct mig_conn *c, uint64_t off, size_t len, struct ferr *err)
{
	Ferry__MigPages m = FERRY__MIG_PAGES__INIT;

	if (fault_hit("drop-connection-mid-round") && c->round_bytes >= (8u << 20)) {
		shutdown(c->nc.fd, SHUT_RDWR);
		return ferr_new(err, ECONNRESET, "connection dropped (FERRY_FAULT)");
	}
	m.dir = c->remote;
	m.offset = off;
	m.size = len;
	m.has_zstd = c->compress;
	m.zstd = c->compress;
	return net_send(&c->nc, NET_PAGES, &m.base, err);
}

/* len bytes from the pipe straight into the socket. */
static int splice_out(struct mig_conn *c, int pipe, size_t len, struct ferr *err)
{
	for (size_t left = len; left;) {
		ssize_t n = splice(pipe, NULL, c->nc.fd, NULL, left, SPLICE_F_MOVE | SPLICE_F_MORE);

		if (n < 0 && errno == EINTR) {
			if (cancel_requested())
				return cancel_check(err);
			continue;
		}
		if (n <= 0)
			return ferr_sys(err, n < 0 ? (errno == EAGAIN ? ETIMEDOUT : errno) : EIO,
					"splice into the connection");
		left -= (size_t)n;
	}
	c->wire_bytes += len;
	return 0;
}

/* One piece of the page stream, from data or (data NULL) from the pipe:
 * pieces go one at a time (c->mu), none after the stream broke, whose first
 * error is kept for every later piece. */
static int send_piece(struct mig_conn *c, uint64_t off, const void *data, int pipe, size_t len,
		      struct ferr *err)
{
	int ret;

	pthread_mutex_lock(&c->mu);
	ret = c->sink_err;
	if (ret) {
		*err = c->sink_msg;
		pthread_mutex_unlock(&c->mu);
		return ret;
	}
	ret = pages_header(c, off, len, err);
	if (!ret)
		ret = data ? send_bytes(c, data, len, err) : splice_out(c, pipe, len, err);
	if (!ret) {
		c->bytes += len;
		c->round_bytes += len;
		show_progress(c);
	} else {
		ferr_wrap(err, "sending the pages of %s", c->round);
		c->sink_err = ret;
		c->sink_msg = *err;
	}
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sink_write(struct img_pages_sink *s, uint64_t off, const void *data, size_t len,
		      struct ferr *err)
{
	return send_piece(container_of(s, struct mig_conn, sink), off, data, -1, len, err);
}

/* The bytes straight from the pipe into the socket. Never with --compress. */
static int sink_splice(struct img_pages_sink *s, uint64_t off, int pipe, size_t len,
		       struct ferr *err)
{
	return send_piece(container_of(s, struct mig_conn, sink), off, NULL, pipe, len, err);
}

struct img_pages_sink *mig_stream(struct mig_conn *c, const char *root, const char *root_remote)
{
	c->sink.open = sink_open;
	c->sink.write = sink_write;
	/* zstd and user-space TLS need the data in memory. */
	c->sink.splice = c->compress || c->nc.ssl ? NULL : sink_splice;
	c->root = root;
	c->root_remote = root_remote;
	c->streaming = true;
	return &c->sink;
}

static int send_file(struct mig_conn *c, const char *local, const char *name, const char *remote,
		     struct ferr *err)
{
	Ferry__MigFile f = FERRY__MIG_FILE__INIT;
	char path[PATH_MAX];
	struct stat st;
	int in, ret;

	snprintf(path, sizeof(path), "%s/%s", local, name);
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return ferr_sys(err, errno, "open %s", path);
	if (fstat(in, &st) < 0) {
		ret = ferr_sys(err, errno, "stat %s", path);
		close(in);
		return ret;
	}
	f.dir = (char *)remote;
	f.name = (char *)name;
	f.size = (uint64_t)st.st_size;
	if (c->streaming && !strcmp(name, "pages.img")) {
		/* Its bytes went as PAGES frames while the round was dumped. */
		f.has_streamed = f.streamed = true;
		ret = net_send(&c->nc, NET_FILE, &f.base, err);
		close(in);
		return ret;
	}
	f.has_zstd = c->compress;
	f.zstd = c->compress;
	ret = net_send(&c->nc, NET_FILE, &f.base, err);
	if (!ret)
		ret = send_body(c, in, f.size, path, err);
	close(in);
	return ret;
}

/* Every image file of local (not its subdirectories) as `remote`,
 * inventory.img last. */
static int send_files(struct mig_conn *c, const char *local, const char *remote,
		      struct ferr *err)
{
	DIR *d = opendir(local);
	struct dirent *e;
	bool inventory = false;
	int ret = 0;

	if (!d)
		return ferr_sys(err, errno, "open %s", local);
	/* A streamed pages.img is completed first: the page server takes no
	 * other file while one is incomplete. */
	if (c->streaming)
		ret = send_file(c, local, "pages.img", remote, err);
	while (!ret && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (e->d_type != DT_REG || n < 5 || strcmp(e->d_name + n - 4, ".img"))
			continue;
		/* The inventory goes last: a round cut short never looks complete. */
		if (!strcmp(e->d_name, IMG_INVENTORY_NAME)) {
			inventory = true;
			continue;
		}
		if (c->streaming && !strcmp(e->d_name, "pages.img"))
			continue;
		ret = send_file(c, local, e->d_name, remote, err);
	}
	closedir(d);
	if (!ret && !inventory)
		ret = ferr_new(err, ENOENT, "%s has no " IMG_INVENTORY_NAME, local);
	if (!ret)
		ret = send_file(c, local, IMG_INVENTORY_NAME, remote, err);
	return ret;
}

int mig_send_member(struct mig_conn *c, const char *local, struct ferr *err)
{
	char remote[sizeof(c->remote)];
	int ret = remote_name(c, local, remote, sizeof(remote), err);

	if (!ret)
		ret = send_files(c, local, remote, err);
	return ret ? ferr_wrap(err, "sending %s", local) : 0;
}

int mig_send_round(struct mig_conn *c, const char *local, const char *remote,
		   enum mig_round kind, struct ferr *err)
{
	Ferry__MigRound r = FERRY__MIG_ROUND__INIT;
	int ret;

	c->round = *remote ? remote : "the final dump";
	if (!c->streaming)
		c->round_bytes = 0;
	ret = send_files(c, local, remote, err);
	if (c->progress && c->round_bytes > (64u << 20))
		c->progress(c->progress_arg, c->round, c->round_bytes, true);
	r.dir = (char *)remote;
	r.has_final = r.final = kind != MIG_PRE;
	r.has_snapshot = r.snapshot = kind == MIG_SNAPSHOT;
	if (!ret)
		ret = net_send(&c->nc, NET_ROUND, &r.base, err);
	/* The destination has stored (and built on) it: next round. A
	 * snapshot is on its disk now. */
	if (!ret && kind != MIG_FINAL)
		ret = expect_result(c, "the page server refused the round", err);
	return ret ? ferr_wrap(err, "sending %s", *remote ? remote : "the final dump") : 0;
}

int mig_handover(struct mig_conn *c, const struct dump_frozen *f, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
	struct target *t = f->root;
	struct pollfd pfd = { .fd = t->pidfd, .events = POLLIN };
	uint64_t t0 = now_ns();
	size_t len;
	int ret = expect_result(c, "the destination could not restore", err);

	if (ret)
		return ferr_wrap(err, "waiting for the destination's restore");
	pr_debug("destination restored process %d after %.1f ms", (int)c->remote_pid,
		 (now_ns() - t0) / 1e6);
	/* The destination holds it, stopped. From here the original must never
	 * run again: it is frozen, and a SIGKILL to a stopped task ends it
	 * before it returns to user space, so the copy may go at once; its
	 * teardown (a second for a large process) is waited for afterwards.
	 * A tree ends whole, each process by its pidfd. */
	ret = dump_frozen_kill(f);
	if (ret)
		return ferr_sys(err, -ret, "end the original process %d", t->pid);
	c->ended = true;
	/* The copy must be let go now, signal or not. */
	c->nc.no_cancel = true;
	ret = net_send(&c->nc, NET_COMMIT, NULL, err);
	if (!ret)
		ret = net_expect(&c->nc, NET_DONE, buf, &len, err);
	c->handover_ns = now_ns() - t0;
	c->downtime_ns = now_ns() - t->freeze_start_ns;
	dump_frozen_release(f);
	if (poll(&pfd, 1, 10000) != 1)
		pr_warn("process %d was sent SIGKILL but has not exited yet", t->pid);
	if (ret)
		/* Past the point of no return: report, do not resume anything. */
		return ferr_wrap(err, "the original is gone but the destination did not confirm "
				 "(its copy, process %d there, may be left stopped)",
				 (int)c->remote_pid);
	return 0;
}
