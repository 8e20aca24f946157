/* `ferry page-server` as a job: listen, take one connection per command
 * until the final dump, give up after an idle time, and drive the restore
 * of what arrives (warm: built while the rounds come in; cold as fallback). */
#include <dirent.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/img.h"
#include "migrate/pageserver.h"
#include "restore/restore.h"

struct server {
	const struct ps_run_opts *o;
	const struct ps_result *res;
	struct rst_warm *w;   /* the process built so far from the rounds */
	bool cold;            /* no (more) warm building: restore from scratch */
};

static void event(struct server *s, enum ps_event ev, const char *round, bool final)
{
	if (s->o->event)
		s->o->event(s->o->arg, ev, round, final, s->res);
}

static void received(void *arg, const char *round, bool final)
{
	event(arg, PS_RECEIVED, round, final);
}

/* Does the round in dir hold a tree's other processes (pid-N)? */
static bool has_members(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d)))
		found = e->d_type == DT_DIR && !strncmp(e->d_name, "pid-", 4);
	if (d)
		closedir(d);
	return found;
}

/* A process tree is restored from scratch once its final dump is in: the
 * warm restore builds one process. */
static void tree_goes_cold(struct server *s, const char *dir)
{
	if (s->cold || !has_members(dir))
		return;
	pr_info("%s holds a process tree: it is restored once the final dump is in", dir);
	rst_warm_free(s->w);
	s->w = NULL;
	s->cold = true;
}

/* A pre-dump round is in dir: build on it. A failure only ends the warm
 * restore; the final dump is then restored from scratch. */
static void prebuild(void *arg, const char *dir)
{
	struct server *s = arg;
	struct ferr err;
	int ret;

	tree_goes_cold(s, dir);
	if (s->cold)
		return;
	ferr_clear(&err);
	ret = s->w ? rst_warm_update(s->w, dir, &err) : rst_warm_begin(&s->w, dir, s->o->files, &err);
	if (ret) {
		pr_warn("%s; the final dump will be restored from scratch", err.msg);
		rst_warm_free(s->w);
		s->w = NULL;
		s->cold = true;
	}
}

static int restore_stopped(void *arg, const char *dir, pid_t *pid, struct ferr *err)
{
	struct server *s = arg;
	struct rst_opts o = { .dir = dir, .stopped = true, .files = s->o->files,
			      .pid_ns = s->o->pid_ns };
	struct rst_result r;
	int ret = -1;

	tree_goes_cold(s, dir);
	if (s->w) {
		ret = rst_warm_finish(s->w, &o, &r, err);
		rst_warm_free(s->w);
		s->w = NULL;
		if (ret) {
			/* Whatever went wrong with building on the rounds, the
			 * images may still restore the usual way. */
			pr_warn("%s; restoring %s from scratch", err->msg, dir);
			s->cold = true;
			ferr_clear(err);
		}
	}
	if (ret)
		ret = rst_restore(&o, &r, err);
	if (!ret) {
		*pid = r.pid;
		pr_info("restored process %d (%s): %.1f ms", r.pid, s->cold ? "cold" : "warm",
			r.total_ns / 1e6);
	}
	return ret;
}

/* A connection still proving who it is. */
struct pending {
	struct net_conn c;
	uint64_t deadline_ns;
	short events;
};

static void drop(struct pending *p, int *n, int i, const char *why)
{
	pr_warn("refused a connection: %s", why);
	net_conn_close(&p[i].c);
	p[i] = p[--*n];
}

/* One authenticated connection, served whole. */
static int serve_one(struct net_conn *c, struct server *s, const struct ps_opts *po,
		     struct ps_result *res, struct ferr *err)
{
	int ret;

	/* Between rounds a source is busy copying; silence this long is not
	 * that. */
	net_set_timeout(c, s->o->idle_s);
	ret = ps_serve(c, po, res, err);
	net_conn_close(c);
	return ret;
}

/* Connections until the final dump. A peer that fails to authenticate, or
 * does not within NET_HANDSHAKE_S, is logged and dropped; the server goes on
 * (and so does any process it has built). At most PS_PENDING_MAX peers may
 * be authenticating at once; one more is refused at once. */
static int serve_all(int lfd, struct server *s, const struct ps_opts *po,
		     const struct net_creds *cr, struct ps_result *res, struct ferr *err)
{
	struct pending p[PS_PENDING_MAX];
	uint64_t idle_end = now_ns() + s->o->idle_s * 1000000000ull;
	int n = 0, ret = 0;

	for (;;) {
		struct pollfd pfd[1 + PS_PENDING_MAX] = { { .fd = lfd, .events = POLLIN } };
		uint64_t now = now_ns(), wake = idle_end;
		struct ferr e;
		int fd, i;

		/* A source that went away for good (killed before it could say
		 * ABORT) must not keep the server, and a half-built process,
		 * waiting for ever. */
		if (now >= idle_end) {
			ret = ferr_new(err, ETIMEDOUT, "no connection for %u s after %u round%s: "
				       "giving up", s->o->idle_s, res->rounds,
				       res->rounds == 1 ? "" : "s");
			break;
		}
		for (i = 0; i < n; i++) {
			if (now >= p[i].deadline_ns) {
				drop(p, &n, i--, "it did not authenticate in time");
				continue;
			}
			if (p[i].deadline_ns < wake)
				wake = p[i].deadline_ns;
			pfd[1 + i] = (struct pollfd){ .fd = p[i].c.fd, .events = p[i].events };
		}
		if (poll(pfd, 1 + n, (int)((wake - now) / 1000000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			ret = ferr_sys(err, errno, "poll");
			break;
		}
		/* Steps first: pfd[1 + i] matches p[i] until p changes. */
		for (i = n - 1; i >= 0; i--) {
			struct net_conn c;

			if (!pfd[1 + i].revents)
				continue;
			ferr_clear(&e);
			ret = net_tls_server_step(&p[i].c, &p[i].events, &e);
			if (ret == -EAGAIN)
				continue;
			if (ret) {
				drop(p, &n, i, e.msg);
				continue;
			}
			c = p[i].c;
			p[i] = p[--n];
			ret = serve_one(&c, s, po, res, err);
			if (ret || res->final)
				goto out;
			event(s, PS_WAITING, NULL, false);
			idle_end = now_ns() + s->o->idle_s * 1000000000ull;
		}
		ret = 0;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			ret = ferr_sys(err, errno, "accept");
			break;
		}
		ferr_clear(&e);
		if (!net_creds_any(cr)) {
			/* A Unix socket: the kernel names the peer. */
			struct net_conn c = { .fd = fd };

			if (net_unix_peer_ok(fd, &e)) {
				pr_warn("refused a connection: %s", e.msg);
				close(fd);
				continue;
			}
			ret = serve_one(&c, s, po, res, err);
			if (ret || res->final)
				break;
			event(s, PS_WAITING, NULL, false);
			idle_end = now_ns() + s->o->idle_s * 1000000000ull;
			continue;
		}
		if (n == PS_PENDING_MAX) {
			pr_warn("refused a connection: %d others are still authenticating",
				PS_PENDING_MAX);
			close(fd);
			continue;
		}
		p[n] = (struct pending){ .c = { .fd = fd },
					 .deadline_ns = now_ns() + NET_HANDSHAKE_S * 1000000000ull,
					 .events = POLLIN };
		if (net_tls_server_start(&p[n].c, cr, &e)) {
			n++;
			drop(p, &n, n - 1, e.msg);
			continue;
		}
		n++;
	}
out:
	while (n)
		net_conn_close(&p[--n].c);
	return ret;
}

int ps_run(const struct ps_run_opts *o, struct ps_result *res, struct ferr *err)
{
	/* A warm restore builds one process outside any new namespace. */
	struct server s = { .o = o, .res = res, .cold = o->cold || o->pid_ns };
	struct ps_opts po = { .dir = o->dir, .max_file = o->max_file, .received = received,
			      .arg = &s };
	struct net_creds cr;
	char path[PATH_MAX + 32];
	int lfd, dfd, ret;

	memset(res, 0, sizeof(*res));
	if (net_creds_load(&cr, o->key_file, o->tls_cert, o->tls_key, o->tls_cacert, err))
		return -err->code;
	if (!net_creds_any(&cr) && !net_is_unix(o->addr))
		return ferr_new(err, EACCES, "a page server on TCP needs credentials (--auth-key "
				"or the --tls-* files); only a unix: socket goes without");
	/* Another user must not be able to plant or swap files where
	 * received images land. */
	ret = img_own_dir(o->dir, &dfd, err);
	if (ret)
		return ret;
	close(dfd);
	if (o->restore) {
		po.restore = restore_stopped;
		po.round = prebuild;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = net_listen(o->addr, o->port, err);
	if (lfd < 0)
		return lfd;
	/* An old dump in DIR must not look like this migration's result. */
	snprintf(path, sizeof(path), "%s/" IMG_INVENTORY_NAME, o->dir);
	if (unlink(path) < 0 && errno != ENOENT) {
		ret = ferr_sys(err, errno, "remove old %s", path);
		close(lfd);
		return ret;
	}
	event(&s, PS_LISTENING, NULL, false);
	ret = serve_all(lfd, &s, &po, &cr, res, err);
	close(lfd);
	if (net_is_unix(o->addr))
		unlink(o->addr + strlen(NET_UNIX_PREFIX));
	OPENSSL_cleanse(&cr, sizeof(cr));
	rst_warm_free(s.w);
	return ret;
}
