/* The request loop of `ferry swrk`, and the requests that only ask:
 * VERSION, CHECK, FEATURE_CHECK. Every other type is answered with an
 * explicit failure naming it, and the connection goes on. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "criu/jobs.h"
#include "criu/opts.h"
#include "criu/swrk.h"
#include "proc/backend.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.0.0-dev"
#endif

static int do_version(struct swrk_req *q, struct ferr *err)
{
	CriuResp resp = CRIU_RESP__INIT;
	CriuVersion v = CRIU_VERSION__INIT;

	v.major_number = SWRK_CRIU_MAJOR;
	v.minor_number = SWRK_CRIU_MINOR;
	v.has_sublevel = true;
	v.sublevel = 0;
	v.name = (char *)"ferry " FERRY_VERSION;
	resp.type = CRIU_REQ_TYPE__VERSION;
	resp.success = true;
	resp.version = &v;
	return rpc_send(q->s->sk, &resp, err);
}

/* Can ferry track a running process's writes here (a pre-dump's tracker
 * other than page hashes, which compare but do not track)? */
static bool can_track(const struct kerndat *kd)
{
	const struct backend_family *f = backend_family("tracker");

	for (size_t i = 0; f && i < f->n; i++)
		if (strcmp(f->list[i].name, "hash") && backend_usable(&f->list[i], kd))
			return true;
	return false;
}

static int do_feature_check(struct swrk_req *q, struct ferr *err)
{
	CriuResp resp = CRIU_RESP__INIT;
	CriuFeatures feat = CRIU_FEATURES__INIT;
	const struct kerndat *kd = swrk_kd(q->s);

	/* CRIU answers every feature, asked or not; false where not asked. */
	feat.has_mem_track = feat.has_lazy_pages = feat.has_pidfd_store = true;
	if (q->req->features) {
		const CriuFeatures *in = q->req->features;

		feat.mem_track = in->has_mem_track && in->mem_track && can_track(kd);
		feat.lazy_pages = false; /* no post-copy restore yet */
		feat.pidfd_store = in->has_pidfd_store && in->pidfd_store &&
				   kd_has(kd, KD_PIDFD_OPEN) && kd_has(kd, KD_PIDFD_GETFD);
	}
	pr_info("features: mem_track %s, lazy_pages false, pidfd_store %s",
		feat.mem_track ? "true" : "false", feat.pidfd_store ? "true" : "false");
	resp.type = CRIU_REQ_TYPE__FEATURE_CHECK;
	resp.success = true;
	resp.features = &feat;
	return rpc_send(q->s->sk, &resp, err);
}

static int do_check(struct swrk_req *q, struct ferr *err)
{
	CriuResp resp = CRIU_RESP__INIT;
	const struct kerndat *kd = swrk_kd(q->s);
	int missing = kerndat_missing_essential(kd);
	struct ferr e;

	if (missing >= 0) {
		ferr_new(&e, ENOTSUP, "ferry cannot dump or restore here: %s is missing (%s)",
			 kd_features[missing].key, kd->note[missing]);
		pr_err("%s", e.msg);
		return rpc_send_error(q->s->sk, CRIU_REQ_TYPE__CHECK, &e, err);
	}
	pr_info("check: every feature ferry needs is here");
	resp.type = CRIU_REQ_TYPE__CHECK;
	resp.success = true;
	return rpc_send(q->s->sk, &resp, err);
}

static int refuse_type(struct swrk_req *q, struct ferr *err)
{
	char buf[32];
	struct ferr e;
	int t = q->req->type;

	if (t == CRIU_REQ_TYPE__NOTIFY)
		ferr_new(&e, EPROTO, "a NOTIFY answer came outside a callback");
	else
		ferr_new(&e, EOPNOTSUPP, "request %s is not supported by ferry (it serves "
			 "VERSION, CHECK, FEATURE_CHECK, DUMP, PRE_DUMP and RESTORE)",
			 rpc_type_name(t, buf, sizeof(buf)));
	pr_err("%s", e.msg);
	/* CRIU answers an invalid request with type EMPTY; a known one that is
	 * not served keeps its type, so the runtime sees what was refused. */
	return rpc_send_error(q->s->sk, t == CRIU_REQ_TYPE__NOTIFY ? CRIU_REQ_TYPE__EMPTY : t, &e,
			      err);
}

/* One request: its directories and log set up, served, the log closed. */
static int serve_one(struct swrk *s, const CriuReq *req, struct ferr *err)
{
	static const CriuOpts none = CRIU_OPTS__INIT;
	struct swrk_req q = { .s = s, .req = req, .o = req->opts ? req->opts : &none };
	bool moves = req->type == CRIU_REQ_TYPE__DUMP || req->type == CRIU_REQ_TYPE__PRE_DUMP ||
		     req->type == CRIU_REQ_TYPE__RESTORE;
	struct ferr e;
	int ret;

	ferr_clear(&e);
	if ((moves || req->type == CRIU_REQ_TYPE__CHECK) && swrk_req_begin(&q, moves, &e)) {
		rpc_log_request(req);
		pr_err("%s", e.msg);
		ret = rpc_send_error(s->sk, req->type, &e, err);
		swrk_req_end(&q);
		return ret;
	}
	rpc_log_request(req);
	switch (req->type) {
	case CRIU_REQ_TYPE__VERSION:
		ret = do_version(&q, err);
		break;
	case CRIU_REQ_TYPE__FEATURE_CHECK:
		ret = do_feature_check(&q, err);
		break;
	case CRIU_REQ_TYPE__CHECK:
		ret = do_check(&q, err);
		break;
	case CRIU_REQ_TYPE__DUMP:
	case CRIU_REQ_TYPE__PRE_DUMP:
		ret = swrk_dump(&q, req->type == CRIU_REQ_TYPE__PRE_DUMP, err);
		break;
	case CRIU_REQ_TYPE__RESTORE:
		ret = swrk_restore(&q, err);
		break;
	default:
		ret = refuse_type(&q, err);
	}
	swrk_req_end(&q);
	return ret;
}

int swrk_serve(int sk, struct ferr *err)
{
	struct swrk s = { .sk = sk };
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int type;

	len = sizeof(type);
	if (getsockopt(sk, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return ferr_sys(err, errno, "fd %d is not a socket", sk);
	if (type != SOCK_SEQPACKET)
		return ferr_new(err, EPROTOTYPE, "fd %d is not a SOCK_SEQPACKET socket (CRIU's RPC "
				"is one message per packet)", sk);
	len = sizeof(cr);
	if (getsockopt(sk, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return ferr_sys(err, errno, "the peer of fd %d", sk);
	s.peer = cr.pid;
	/* Nothing ferry starts (a restored process, a keeper) keeps it open. */
	fcntl(sk, F_SETFD, FD_CLOEXEC);
	pr_debug("serving CRIU's RPC on fd %d for process %d", sk, s.peer);
	for (;;) {
		CriuReq *req;
		struct ferr e;
		int ret;

		ferr_clear(&e);
		ret = rpc_recv(sk, &req, &e);
		if (ret == -EBADMSG || ret == -EMSGSIZE) {
			/* One bad packet: said so, and the next one is read. */
			pr_err("%s", e.msg);
			ret = rpc_send_error(sk, CRIU_REQ_TYPE__EMPTY, &e, err);
			if (ret)
				return ret;
			continue;
		}
		if (ret) {
			*err = e;
			return ret;
		}
		if (!req)
			return 0;
		ret = serve_one(&s, req, err);
		criu_req__free_unpacked(req, NULL);
		if (ret)
			return ret;
	}
}
