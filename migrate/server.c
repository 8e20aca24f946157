/* `ferry page-server` as a job: listen, take one connection per command
 * until the final dump, give up after an idle time, and drive the restore
 * of what arrives (warm: built while the rounds come in; cold as fallback). */
#include <limits.h>
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

/* A pre-dump round is in dir: build on it. A failure only ends the warm
 * restore; the final dump is then restored from scratch. */
static void prebuild(void *arg, const char *dir)
{
	struct server *s = arg;
	struct ferr err;
	int ret;

	if (s->cold)
		return;
	ferr_clear(&err);
	ret = s->w ? rst_warm_update(s->w, dir, &err) : rst_warm_begin(&s->w, dir, &err);
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
	struct rst_opts o = { .dir = dir, .stopped = true };
	struct rst_result r;
	int ret = -1;

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

/* Connections until the final dump, each served whole. */
static int serve_all(int lfd, struct server *s, const struct ps_opts *po, struct ps_result *res,
		     struct ferr *err)
{
	for (;;) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)s->o->idle_s * 1000);
		int fd, ret;

		/* A source that went away for good (killed before it could say
		 * ABORT) must not keep the server, and a half-built process,
		 * waiting for ever. */
		if (pr == 0)
			return ferr_new(err, ETIMEDOUT, "no connection for %u s after %u round%s: "
					"giving up", s->o->idle_s, res->rounds,
					res->rounds == 1 ? "" : "s");
		fd = pr < 0 ? -1 : accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return ferr_sys(err, errno, "accept");
		/* Between rounds a source is busy copying; silence this long
		 * is not that. */
		net_set_timeout(fd, s->o->idle_s);
		ret = ps_serve(fd, po, res, err);
		close(fd);
		if (ret || res->final)
			return ret;
		event(s, PS_WAITING, NULL, false);
	}
}

int ps_run(const struct ps_run_opts *o, struct ps_result *res, struct ferr *err)
{
	struct server s = { .o = o, .res = res, .cold = o->cold };
	struct net_key key = { 0 };
	struct ps_opts po = { .dir = o->dir, .key = &key, .max_file = o->max_file,
			      .received = received, .arg = &s };
	char path[PATH_MAX + 32];
	int lfd, ret;

	memset(res, 0, sizeof(*res));
	if (o->key_file && net_key_load(o->key_file, &key, err))
		return -err->code;
	if (mkdir(o->dir, 0700) < 0 && errno != EEXIST)
		return ferr_sys(err, errno, "create %s", o->dir);
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
	ret = serve_all(lfd, &s, &po, res, err);
	close(lfd);
	rst_warm_free(s.w);
	return ret;
}
