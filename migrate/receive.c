/* The page server: one migration over one connection (see pageserver.h and
 * docs/PROTOCOL.md). The stream is untrusted: names are checked against a
 * fixed pattern (no path can leave DIR), sizes are bounded, and anything
 * malformed drops the connection with a clean error. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "images/img.h"
#include "migrate/pageserver.h"
#include "proc/tree.h"
#include "proto/migrate.pb-c.h"

#define RECV_CHUNK (1u << 20)

/* One plain path component: it starts with a letter or digit, so it is
 * never "." or "..". */
static bool valid_component(const char *d, size_t n)
{
	if (!n || n > 64 || !((d[0] >= 'a' && d[0] <= 'z') || (d[0] >= 'A' && d[0] <= 'Z') ||
			      (d[0] >= '0' && d[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = d[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* "" (DIR itself), a round's directory ("pre-3" from migrate, a pre-dump's
 * -D basename), or a tree's other process's in it or in DIR (NAME/pid-N,
 * pid-N): nothing that can leave DIR. */
static bool valid_dir(const char *d)
{
	const char *slash = strchr(d, '/');

	if (!*d)
		return true;
	if (!slash)
		return valid_component(d, strlen(d));
	return valid_component(d, (size_t)(slash - d)) && img_pid_dir_name(slash + 1,
									   strlen(slash + 1));
}

/* A plain image file name: [A-Za-z0-9_-][A-Za-z0-9_.-]* ending in ".img". */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 5 || n > 64 || s[0] == '.' || strcmp(s + n - 4, ".img"))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* DIR/d made, its round's directory first (a tree's processes come before
 * their round's root). */
static int round_dir(const struct ps_opts *o, const char *d, char *path, size_t cap,
		     struct ferr *err)
{
	const char *slash = strchr(d, '/');

	if (slash) {
		snprintf(path, cap, "%s/%.*s", o->dir, (int)(slash - d), d);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return ferr_sys(err, errno, "create %s", path);
	}
	snprintf(path, cap, "%s%s%s", o->dir, *d ? "/" : "", d);
	if (*d && mkdir(path, 0700) < 0 && errno != EEXIST)
		return ferr_sys(err, errno, "create %s", path);
	return 0;
}

/* size bytes as they are, into out at offset at. */
static int recv_raw(struct net_conn *nc, int out, uint64_t at, uint64_t size, uint8_t *buf, const char *part,
		    struct ferr *err)
{
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < RECV_CHUNK ? (size_t)(size - off) : RECV_CHUNK;
		int ret = net_recv_all(nc, buf, n, err);

		if (ret)
			return ret;
		if (pwrite_all(out, buf, n, at + off) < 0)
			return ferr_sys(err, errno, "write %s", part);
		off += n;
	}
	return 0;
}

/* size bytes sent as zstd blocks, into out at offset at: each header
 * checked against what is left and the block size before anything is read
 * or decompressed. */
static int recv_zstd(struct net_conn *nc, int out, uint64_t at, uint64_t size, uint8_t *buf,
		     const char *part, struct ferr *err)
{
	static uint8_t z[ZSTD_COMPRESSBOUND(MIG_ZBLOCK)];
	uint64_t off = 0;

	while (off < size) {
		uint32_t hdr[2];
		size_t got;
		int ret = net_recv_all(nc, hdr, sizeof(hdr), err);

		if (ret)
			return ret;
		if (!hdr[1] || hdr[1] > MIG_ZBLOCK || hdr[1] > size - off || !hdr[0] ||
		    hdr[0] > sizeof(z))
			return ferr_new(err, EPROTO, "bad zstd block (%u bytes for %u, %llu left)",
					hdr[0], hdr[1], (unsigned long long)(size - off));
		ret = net_recv_all(nc, z, hdr[0], err);
		if (ret)
			return ret;
		got = ZSTD_decompress(buf, MIG_ZBLOCK, z, hdr[0]);
		if (ZSTD_isError(got) || got != hdr[1])
			return ferr_new(err, EPROTO, "zstd block does not decompress to %u bytes%s%s",
					hdr[1], ZSTD_isError(got) ? ": " : "",
					ZSTD_isError(got) ? ZSTD_getErrorName(got) : "");
		if (pwrite_all(out, buf, got, at + off) < 0)
			return ferr_sys(err, errno, "write %s", part);
		off += got;
	}
	return 0;
}

/* A round's pages.img as it arrives in PAGES frames: DIR[/dir]/pages.img.part
 * until the FILE frame for it says it is complete. One round at a time. */
struct stream {
	char dir[72];
	char part[PATH_MAX + 90];
	int fd;                     /* -1: none open */
	uint64_t end;               /* the highest byte written, plus one */
	/* The files of the round under way that are in place: a round that
	 * does not complete is removed as a whole, never left half there. */
	char **landed;
	unsigned nr_landed;
};

static int landed(struct stream *st, const char *path, struct ferr *err)
{
	char **n = realloc(st->landed, (st->nr_landed + 1) * sizeof(*n));

	if (n)
		st->landed = n;
	if (!n || !(n[st->nr_landed] = strdup(path))) {
		unlink(path);
		return ferr_sys(err, ENOMEM, "file list");
	}
	st->nr_landed++;
	return 0;
}

/* The round under way is complete: its files stay. */
static void round_keep(struct stream *st)
{
	while (st->nr_landed)
		free(st->landed[--st->nr_landed]);
}

/* The round under way failed: what of it had landed goes. */
static void round_drop(struct stream *st)
{
	while (st->nr_landed) {
		unlink(st->landed[--st->nr_landed]);
		free(st->landed[st->nr_landed]);
	}
}

static void stream_drop(struct stream *st)
{
	if (st->fd >= 0) {
		close(st->fd);
		unlink(st->part);
	}
	st->fd = -1;
	st->end = 0;
}

static int recv_pages(struct net_conn *nc, const struct ps_opts *o, const uint8_t *msg, size_t len,
		      uint8_t *buf, struct stream *st, struct ps_result *res, struct ferr *err)
{
	Ferry__MigPages *m = ferry__mig_pages__unpack(NULL, len, msg);
	char dir[PATH_MAX];
	int ret = 0;

	if (!m)
		return ferr_new(err, EPROTO, "malformed PAGES message");
	if (!valid_dir(m->dir)) {
		ret = ferr_new(err, EPROTO, "refused round name `%.80s`", m->dir);
	} else if (!m->size || m->offset > o->max_file || m->size > o->max_file - m->offset) {
		ret = ferr_new(err, EFBIG, "%s/pages.img: %llu bytes at %llu, beyond the %llu "
			       "allowed", m->dir, (unsigned long long)m->size,
			       (unsigned long long)m->offset, (unsigned long long)o->max_file);
	} else {
		if (st->fd >= 0 && strcmp(st->dir, m->dir)) {
			/* A process of a tree that exited in the middle of its
			 * round: the source goes on with the next, and that
			 * round of it stays incomplete (no pages.img, no
			 * inventory), as it would on the source's own disk. */
			pr_info("the pages of `%s` stopped before their end (its process exited?): "
				"that round of it is left incomplete", st->dir);
			stream_drop(st);
		}
		if (st->fd < 0) {
			ret = round_dir(o, m->dir, dir, sizeof(dir), err);
			snprintf(st->dir, sizeof(st->dir), "%s", m->dir);
			snprintf(st->part, sizeof(st->part), "%s/pages.img.part", dir);
		}
		if (!ret && st->fd < 0) {
			st->fd = open(st->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
				      0600);
			if (st->fd < 0)
				ret = ferr_sys(err, errno, "create %s", st->part);
		}
	}
	if (!ret)
		ret = m->has_zstd && m->zstd
			      ? recv_zstd(nc, st->fd, m->offset, m->size, buf, st->part, err)
			      : recv_raw(nc, st->fd, m->offset, m->size, buf, st->part, err);
	if (!ret && m->offset + m->size > st->end)
		st->end = m->offset + m->size;
	if (!ret)
		res->bytes += m->size;
	ferry__mig_pages__free_unpacked(m, NULL);
	return ret;
}

/* The FILE frame of a streamed pages.img: complete it at its size. */
static int end_stream(const Ferry__MigFile *f, const char *path, struct stream *st,
		      struct ferr *err)
{
	if (strcmp(f->name, "pages.img") || st->fd < 0 || strcmp(st->dir, f->dir))
		return ferr_new(err, EPROTO, "%s is announced as streamed but no pages came for it",
				f->name);
	if (f->size < st->end)
		return ferr_new(err, EPROTO, "pages.img of %llu bytes, but pages came up to %llu",
				(unsigned long long)f->size, (unsigned long long)st->end);
	if (ftruncate(st->fd, (off_t)f->size) < 0 || close(st->fd) < 0) {
		st->fd = -1;
		return ferr_sys(err, errno, "write %s", st->part);
	}
	st->fd = -1;
	if (rename(st->part, path) < 0)
		return ferr_sys(err, errno, "rename %s", st->part);
	st->end = 0;
	return landed(st, path, err);
}

/* One FILE frame's message and its raw bytes, into DIR[/pre-N]/name. */
static int recv_file(struct net_conn *nc, const struct ps_opts *o, const uint8_t *msg, size_t len,
		     uint8_t *buf, struct stream *st, struct ps_result *res, struct ferr *err)
{
	Ferry__MigFile *f = ferry__mig_file__unpack(NULL, len, msg);
	char dir[PATH_MAX], path[PATH_MAX + 80], part[PATH_MAX + 90];
	int out = -1, ret = 0;

	if (!f)
		return ferr_new(err, EPROTO, "malformed FILE message");
	if (!valid_dir(f->dir) || !valid_name(f->name)) {
		ret = ferr_new(err, EPROTO, "refused file name `%.80s/%.80s`", f->dir, f->name);
		goto out;
	}
	if (f->size > o->max_file) {
		ret = ferr_new(err, EFBIG, "%s/%s: %llu bytes, more than the %llu allowed", f->dir,
			       f->name, (unsigned long long)f->size,
			       (unsigned long long)o->max_file);
		goto out;
	}
	ret = round_dir(o, f->dir, dir, sizeof(dir), err);
	if (ret)
		goto out;
	snprintf(path, sizeof(path), "%s/%s", dir, f->name);
	if (f->has_streamed && f->streamed) {
		ret = end_stream(f, path, st, err);
		if (ret)
			ferr_wrap(err, "%s%s%s", f->dir, *f->dir ? "/" : "", f->name);
		else
			res->files++;
		goto out;
	}
	if (st->fd >= 0) {
		ret = ferr_new(err, EPROTO, "%s%s%s sent while the pages of `%s` are incomplete",
			       f->dir, *f->dir ? "/" : "", f->name, st->dir);
		goto out;
	}
	snprintf(part, sizeof(part), "%s.part", path);
	out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		ret = ferr_sys(err, errno, "create %s", part);
		goto out;
	}
	ret = f->has_zstd && f->zstd ? recv_zstd(nc, out, 0, f->size, buf, part, err)
				     : recv_raw(nc, out, 0, f->size, buf, part, err);
	if (!ret && close(out) < 0)
		ret = ferr_sys(err, errno, "write %s", part);
	out = -1;
	if (!ret && rename(part, path) < 0)
		ret = ferr_sys(err, errno, "rename %s", part);
	if (ret) {
		unlink(part);
		ferr_wrap(err, "%s%s%s", f->dir, *f->dir ? "/" : "", f->name);
	} else {
		ret = landed(st, path, err);
		res->bytes += f->size;
		res->files++;
	}
out:
	if (out >= 0)
		close(out);
	ferry__mig_file__free_unpacked(f, NULL);
	return ret;
}

static int send_result(struct net_conn *nc, bool ok, const char *msg, pid_t pid, struct ferr *err)
{
	Ferry__MigResult r = FERRY__MIG_RESULT__INIT;

	r.ok = ok;
	r.message = (char *)msg;
	r.has_pid = pid > 0;
	r.pid = pid;
	return net_send(nc, NET_RESULT, &r.base, err);
}

/* Everything written under dir (its file system) on stable storage. */
static int sync_dir(const char *dir, struct ferr *err)
{
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || syncfs(fd) < 0)
		return ferr_sys(err, errno, "sync %s", dir);
	return 0;
}

/* The restored process and, a tree, every process under it get sig: all
 * of them stopped, so the list cannot change meanwhile. */
static int signal_tree(pid_t pid, int sig)
{
	cleanup_free pid_t *pids = NULL;
	struct ferr e;
	size_t n = 0;
	int ret = 0;

	if (ptree_scan(pid, &pids, &n, &e))
		return kill(pid, sig);
	for (size_t i = 0; i < n; i++)
		if (kill(pids[i], sig) < 0 && errno != ESRCH)
			ret = -1;
	return ret;
}

/* The final dump is here: restore it stopped, report, and wait for the
 * source's word. COMMIT: run it. ABORT or an error: kill it. The source gone
 * without a word: it may or may not have ended its original, so the process
 * is left stopped, neither lost nor running twice, and the operator told. */
static int finish(struct net_conn *nc, const struct ps_opts *o, const char *dir, bool snapshot,
		  uint8_t *buf, struct ps_result *res, struct ferr *err)
{
	struct ferr rerr;
	pid_t pid = 0;
	uint32_t type;
	size_t len;
	bool eof;
	int ret;

	res->final = true;
	/* A destination that never answers: the source's hand-over bound. */
	if (fault_hit("stall-before-result"))
		sleep(20);
	/* The source ends its process on our word: every file of the chain
	 * and the directories must be on stable storage first. */
	if (sync_dir(o->dir, &rerr)) {
		ret = send_result(nc, false, rerr.msg, 0, err);
		return ret ? ret : ferr_new(err, rerr.code, "%s", rerr.msg);
	}
	/* A snapshot of a process that runs on at the source: kept, never
	 * started here. */
	if (snapshot) {
		res->snapshot = true;
		return send_result(nc, true, NULL, 0, err);
	}
	if (o->restore) {
		ferr_clear(&rerr);
		if (o->restore(o->arg, dir, &pid, &rerr)) {
			pr_warn("restore of %s failed: %s", dir, rerr.msg);
			ret = send_result(nc, false, rerr.msg, 0, err);
			return ret ? ret : ferr_new(err, rerr.code ? rerr.code : EIO,
						    "restore failed: %s", rerr.msg);
		}
	}
	ret = send_result(nc, true, NULL, pid, err);
	pr_debug("restored %d, told the source", (int)pid);
	if (!ret)
		ret = net_recv_ctrl(nc, &type, buf, &len, &eof, err);
	pr_debug("the source says %s", ret ? "nothing" : net_type_name(type));
	if (!ret && type == NET_COMMIT) {
		if (pid && signal_tree(pid, SIGCONT) < 0)
			return ferr_sys(err, errno, "resume restored process %d", pid);
		res->pid = pid;
		return net_send(nc, NET_DONE, NULL, err);
	}
	/* An explicit ABORT: the source's original runs on, so the final dump
	 * here goes (ps_serve removes it); the source gone without a word
	 * may have ended its original: the dump then stays. */
	res->aborted = !ret && type == NET_ABORT;
	if (!pid)
		return ret ? ret : ferr_new(err, ECONNABORTED, "the source aborted the migration");
	if (!ret || (type == NET_ABORT)) {
		signal_tree(pid, SIGKILL);
		return ferr_new(err, ECONNABORTED, "the source aborted the hand-over; restored "
				"process %d killed", pid);
	}
	res->in_doubt = true;
	res->pid = pid;
	return ferr_wrap(err, "the source vanished during the hand-over: restored process %d (and "
			 "any process under it) is left STOPPED (SIGCONT them if the original is "
			 "gone, else SIGKILL them)", pid);
}

int ps_serve(struct net_conn *nc, const struct ps_opts *o, struct ps_result *res, struct ferr *err)
{
	uint8_t *buf = malloc(RECV_CHUNK > NET_CTRL_MAX ? RECV_CHUNK : NET_CTRL_MAX);
	uint8_t *msg = malloc(NET_CTRL_MAX);
	char rdir[PATH_MAX];
	unsigned files = 0, rounds_here = 0;
	cleanup_free struct stream *stp = calloc(1, sizeof(*stp));
	bool pages = false;
	int ret;

	if (!buf || !msg || !stp) {
		free(buf);
		free(msg);
		return ferr_sys(err, ENOMEM, "receive buffers");
	}
	stp->fd = -1;
	ret = net_hello_server(nc, err);
	while (!ret) {
		uint32_t type;
		size_t len;
		bool eof, snapshot;

		ret = net_recv_ctrl(nc, &type, msg, &len, &eof, err);
		if (ret && eof && !files && !pages && rounds_here) {
			/* Between rounds: a pre-dump command is done; the next
			 * one (or the final dump) comes on a new connection. */
			ret = 0;
			break;
		}
		if (ret) {
			if (eof)
				ferr_wrap(err, "the source went away before the final dump");
			break;
		}
		if (type == NET_FILE) {
			if (++files > PS_MAX_FILES * PS_MAX_PROCS)
				ret = ferr_new(err, EPROTO, "more than %d files in one round",
					       PS_MAX_FILES * PS_MAX_PROCS);
			else
				ret = recv_file(nc, o, msg, len, buf, stp, res, err);
		} else if (type == NET_PAGES) {
			pages = true;
			ret = recv_pages(nc, o, msg, len, buf, stp, res, err);
		} else if (type == NET_ROUND) {
			Ferry__MigRound *r = ferry__mig_round__unpack(NULL, len, msg);
			bool final;

			if (!r || !valid_dir(r->dir)) {
				ret = ferr_new(err, EPROTO, "malformed ROUND message");
				if (r)
					ferry__mig_round__free_unpacked(r, NULL);
				break;
			}
			if (stp->fd >= 0) {
				ret = ferr_new(err, EPROTO, "round `%s` ends with its pages.img "
					       "incomplete", stp->dir);
				ferry__mig_round__free_unpacked(r, NULL);
				break;
			}
			final = r->has_final && r->final;
			snapshot = final && r->has_snapshot && r->snapshot;
			pr_debug("round %s complete", *r->dir ? r->dir : "(final)");
			snprintf(rdir, sizeof(rdir), "%s%s%s", o->dir, *r->dir ? "/" : "", r->dir);
			if (o->received)
				o->received(o->arg, *r->dir ? r->dir : "(DIR)", final);
			ferry__mig_round__free_unpacked(r, NULL);
			files = 0;
			pages = false;
			if (!final) {
				round_keep(stp);   /* complete: it stays */
				res->rounds++;
				rounds_here++;
				if (o->round)
					o->round(o->arg, rdir);
				/* Each round goes to disk as it comes, so that the
				 * sync before the final answer, inside the source's
				 * freeze, finds only the final round to write. */
				ret = sync_dir(o->dir, err);
				/* The source starts its next round only now: its
				 * dirty set then covers the time this one took here. */
				if (!ret)
					ret = send_result(nc, true, NULL, 0, err);
				continue;
			}
			ret = finish(nc, o, rdir, snapshot, msg, res, err);
			if (!res->aborted)
				round_keep(stp);   /* the final dump stays */
			break;
		} else if (type == NET_ABORT) {
			ret = ferr_new(err, ECONNABORTED, "the source aborted the migration");
		} else {
			ret = ferr_new(err, EPROTO, "unexpected %s frame", net_type_name(type));
		}
	}
	stream_drop(stp);
	if (ret && (!res->final || res->aborted))
		round_drop(stp);
	round_keep(stp);
	free(stp->landed);
	free(buf);
	free(msg);
	return ret;
}
