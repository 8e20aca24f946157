/* The sending side of a migration (see migrate.h). */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zstd.h>

#include "common/fault.h"
#include "common/log.h"
#include "dumper/migrate.h"
#include "images/img.h"
#include "proto/migrate.pb-c.h"

#define SEND_CHUNK (1u << 20)

int mig_connect(struct mig_conn *c, const char *to, const struct net_key *key, struct ferr *err)
{
	const char *mode = getenv("FERRY_SEND");
	int ret;

	memset(c, 0, sizeof(*c));
	c->progress = isatty(STDERR_FILENO);
	/* A buffer beat sendfile() in every b_migrate.sh run (PERFORMANCE.md). */
	c->mode = mode && !strcmp(mode, "sendfile") ? MIG_SEND_SENDFILE : MIG_SEND_BUFFER;
	c->fd = net_connect(to, err);
	if (c->fd < 0)
		return c->fd;
	/* A destination that stops answering must not hold the source (and a
	 * frozen target) for ever. */
	net_set_timeout(c->fd, 120);
	ret = net_handshake_client(c->fd, key, err);
	if (ret) {
		close(c->fd);
		c->fd = -1;
		return ferr_wrap(err, "%s", to);
	}
	return 0;
}

void mig_close(struct mig_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	ZSTD_freeCCtx(c->zctx);
	c->zctx = NULL;
}

/* On a terminal, a large round's bytes as they go. */
static void show_progress(const struct mig_conn *c)
{
	if (c->progress && c->round_total > (64u << 20))
		fprintf(stderr, "\r  sending %s: %.0f of %.0f MiB%s ", c->round,
			c->round_bytes / 1048576.0, c->round_total / 1048576.0,
			c->compress ? " (zstd)" : "");
}

/* The destination's RESULT: 0 if it says ok (its restored process, if
 * any, in c->remote_pid), else `failed` and its reason. */
static int expect_result(struct mig_conn *c, const char *failed, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
	Ferry__MigResult *r;
	size_t len;
	int ret = net_expect(c->fd, NET_RESULT, buf, &len, err);

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

/* One file as zstd blocks of at most MIG_ZBLOCK bytes each (see MigFile). */
static int send_zstd(struct mig_conn *c, int in, uint64_t size, const char *path,
		     struct ferr *err)
{
	static uint8_t raw[MIG_ZBLOCK], z[8 + ZSTD_COMPRESSBOUND(MIG_ZBLOCK)];
	uint64_t off = 0;

	if (!c->zctx && !(c->zctx = ZSTD_createCCtx()))
		return ferr_sys(err, ENOMEM, "zstd context");
	while (off < size) {
		size_t n = size - off < MIG_ZBLOCK ? (size_t)(size - off) : MIG_ZBLOCK, k;
		ssize_t got = pread(in, raw, n, (off_t)off);
		uint32_t hdr[2];
		int ret;

		if (got != (ssize_t)n)
			return ferr_sys(err, got < 0 ? errno : EIO, "read %s", path);
		k = ZSTD_compressCCtx(c->zctx, z + 8, sizeof(z) - 8, raw, n, 1);
		if (ZSTD_isError(k))
			return ferr_new(err, EIO, "zstd: %s", ZSTD_getErrorName(k));
		hdr[0] = (uint32_t)k;
		hdr[1] = (uint32_t)n;
		memcpy(z, hdr, sizeof(hdr));
		ret = net_send_all(c->fd, z, 8 + k, err);
		if (ret)
			return ferr_wrap(err, "%s", path);
		off += n;
		c->wire_bytes += 8 + k;
		c->round_bytes += n;
		show_progress(c);
	}
	c->bytes += size;
	return 0;
}

void mig_abort(struct mig_conn *c, const char *why)
{
	Ferry__MigResult r = FERRY__MIG_RESULT__INIT;
	struct ferr ignored;

	if (c->fd < 0)
		return;
	r.message = (char *)why;
	(void)!net_send(c->fd, NET_ABORT, &r.base, &ignored);
}

static int send_body(struct mig_conn *c, int in, uint64_t size, const char *path,
		     struct ferr *err)
{
	static uint8_t buf[SEND_CHUNK];
	uint64_t off = 0;

	while (off < size) {
		size_t n = size - off < SEND_CHUNK ? (size_t)(size - off) : SEND_CHUNK;
		ssize_t k;

		if (fault_hit("drop-connection-mid-round") && off >= size / 2 && size > SEND_CHUNK) {
			shutdown(c->fd, SHUT_RDWR);
			return ferr_new(err, ECONNRESET, "connection dropped (FERRY_FAULT)");
		}
		if (c->mode == MIG_SEND_SENDFILE) {
			off_t o = (off_t)off;

			k = sendfile(c->fd, in, &o, n);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return ferr_sys(err, errno == EAGAIN ? ETIMEDOUT : errno, "send %s",
						path);
			if (k == 0)
				return ferr_new(err, EIO, "%s shrank while being sent", path);
		} else {
			int ret;

			k = pread(in, buf, n, (off_t)off);
			if (k <= 0)
				return ferr_sys(err, k < 0 ? errno : EIO, "read %s", path);
			ret = net_send_all(c->fd, buf, (size_t)k, err);
			if (ret)
				return ferr_wrap(err, "%s", path);
		}
		off += (uint64_t)k;
		c->round_bytes += (uint64_t)k;
		c->wire_bytes += (uint64_t)k;
		show_progress(c);
	}
	c->bytes += size;
	return 0;
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
	f.has_zstd = c->compress;
	f.zstd = c->compress;
	ret = net_send(c->fd, NET_FILE, &f.base, err);
	if (!ret)
		ret = c->compress ? send_zstd(c, in, f.size, path, err)
				  : send_body(c, in, f.size, path, err);
	close(in);
	return ret;
}

int mig_send_round(struct mig_conn *c, const char *local, const char *remote, bool final,
		   struct ferr *err)
{
	Ferry__MigRound r = FERRY__MIG_ROUND__INIT;
	DIR *d = opendir(local);
	struct dirent *e;
	bool inventory = false;
	int ret = 0;

	if (!d)
		return ferr_sys(err, errno, "open %s", local);
	c->round = *remote ? remote : "the final dump";
	c->round_bytes = c->round_total = 0;
	while ((e = readdir(d))) {
		struct stat st;

		if (e->d_type == DT_REG && !fstatat(dirfd(d), e->d_name, &st, 0))
			c->round_total += (uint64_t)st.st_size;
	}
	rewinddir(d);
	while (!ret && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (e->d_type != DT_REG || n < 5 || strcmp(e->d_name + n - 4, ".img"))
			continue;
		/* The inventory goes last: a round cut short never looks complete. */
		if (!strcmp(e->d_name, IMG_INVENTORY_NAME)) {
			inventory = true;
			continue;
		}
		ret = send_file(c, local, e->d_name, remote, err);
	}
	closedir(d);
	if (!ret && !inventory)
		ret = ferr_new(err, ENOENT, "%s has no " IMG_INVENTORY_NAME, local);
	if (!ret)
		ret = send_file(c, local, IMG_INVENTORY_NAME, remote, err);
	if (c->progress && c->round_total > (64u << 20))
		fprintf(stderr, "\r\033[K");
	r.dir = (char *)remote;
	r.has_final = final;
	r.final = final;
	if (!ret)
		ret = net_send(c->fd, NET_ROUND, &r.base, err);
	/* The destination has stored (and built on) it: next round. */
	if (!ret && !final)
		ret = expect_result(c, "the page server refused the round", err);
	return ret ? ferr_wrap(err, "sending %s", *remote ? remote : "the final dump") : 0;
}

int mig_handover(struct mig_conn *c, struct target *t, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
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
	 * teardown (a second for a large process) is waited for afterwards. */
	if (syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		return ferr_sys(err, errno, "end the original process %d", t->pid);
	c->ended = true;
	ret = net_send(c->fd, NET_COMMIT, NULL, err);
	if (!ret)
		ret = net_expect(c->fd, NET_DONE, buf, &len, err);
	c->handover_ns = now_ns() - t0;
	c->downtime_ns = now_ns() - t->freeze_start_ns;
	target_release(t);
	if (poll(&pfd, 1, 10000) != 1)
		pr_warn("process %d was sent SIGKILL but has not exited yet", t->pid);
	if (ret)
		/* Past the point of no return: report, do not resume anything. */
		return ferr_wrap(err, "the original is gone but the destination did not confirm "
				 "(its copy, process %d there, may be left stopped)",
				 (int)c->remote_pid);
	return 0;
}

int mig_send_dump(struct mig_conn *c, const char *local, const char *remote, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
	size_t len;
	int ret = mig_send_round(c, local, remote, true, err);

	if (!ret)
		ret = expect_result(c, "the page server could not restore it", err);
	if (!ret)
		ret = net_send(c->fd, NET_COMMIT, NULL, err);
	if (!ret)
		ret = net_expect(c->fd, NET_DONE, buf, &len, err);
	return ret;
}

void mig_drop_pages(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/pages.img", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* A hole of the same size: the directory still opens as the next
	 * round's parent (sizes are checked, data is not read). */
	if (fstat(fd, &st) == 0 && st.st_size > 4096 &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, st.st_size - 4096) < 0)
		pr_warn("%s stays as it is: cannot punch a hole in it: %s", path, strerror(errno));
	close(fd);
}
