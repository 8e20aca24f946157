/* The CRIU RPC over one SOCK_SEQPACKET socket: packets in and out, NOTIFY
 * round trips, and the debug record of what a runtime sent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/cancel.h"
#include "common/fdpass.h"
#include "common/log.h"
#include "criu/rpc.h"

const struct kerndat *swrk_kd(struct swrk *s)
{
	if (!s->kd_done) {
		kerndat_probe(&s->kd);
		s->kd_done = true;
	}
	return &s->kd;
}

int rpc_recv(int sk, CriuReq **req, struct ferr *err)
{
	cleanup_free uint8_t *buf = NULL;
	ssize_t len;

	*req = NULL;
	/* MSG_TRUNC with MSG_PEEK: the packet's whole length, not what fits. */
	do
		len = recv(sk, NULL, 0, MSG_PEEK | MSG_TRUNC);
	while (len < 0 && errno == EINTR && !cancel_requested());
	if (len < 0)
		return ferr_sys(err, errno, "read a request");
	if (len == 0) {
		/* The end of the connection, or an empty packet: take it out
		 * and look again. */
		char c;

		len = recv(sk, &c, 1, MSG_DONTWAIT);
		if (len == 0 || (len < 0 && errno != EAGAIN))
			return 0;
		return ferr_new(err, EBADMSG, "an empty request packet");
	}
	if (len > RPC_MSG_MAX) {
		char c;

		if (recv(sk, &c, 1, 0) < 0) /* drop it: the next packet is the next request */
			return ferr_sys(err, errno, "read a request");
		return ferr_new(err, EMSGSIZE, "a request of %zd bytes (at most %d)", len,
				RPC_MSG_MAX);
	}
	buf = malloc((size_t)len);
	if (!buf)
		return ferr_sys(err, ENOMEM, "read a request");
	len = recv(sk, buf, (size_t)len, 0);
	if (len < 0)
		return ferr_sys(err, errno, "read a request");
	*req = criu_req__unpack(NULL, (size_t)len, buf);
	if (!*req)
		return ferr_new(err, EBADMSG, "a request of %zd bytes that is not a criu_req "
				"(truncated, or not CRIU's RPC)", len);
	return 0;
}

/* One response, with fd riding along (SCM_RIGHTS) if it is >= 0. */
static int send_resp(int sk, const CriuResp *resp, int fd, struct ferr *err)
{
	size_t len = criu_resp__get_packed_size(resp);
	cleanup_free uint8_t *buf = malloc(len ? len : 1);
	int ret;

	if (!buf)
		return ferr_sys(err, ENOMEM, "send a response");
	criu_resp__pack(resp, buf);
	ret = fdpass_send(sk, buf, len, &fd, fd >= 0);
	if (ret)
		return ferr_sys(err, -ret, "send a response");
	return 0;
}

int rpc_send(int sk, const CriuResp *resp, struct ferr *err)
{
	return send_resp(sk, resp, -1, err);
}

int rpc_send_error(int sk, CriuReqType t, const struct ferr *e, struct ferr *err)
{
	CriuResp resp = CRIU_RESP__INIT;

	resp.type = t;
	resp.success = false;
	resp.cr_errmsg = (char *)e->msg;
	resp.has_cr_errno = e->code != 0;
	resp.cr_errno = e->code;
	return rpc_send(sk, &resp, err);
}

const char *rpc_type_name(int type, char *buf, size_t len)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		&criu_req_type__descriptor, type);

	if (v)
		return v->name;
	snprintf(buf, len, "type %d", type);
	return buf;
}

static int notify(struct swrk_req *q, const char *script, pid_t pid, int fd, struct ferr *err)
{
	CriuResp resp = CRIU_RESP__INIT;
	CriuNotify n = CRIU_NOTIFY__INIT;
	CriuReq *ans = NULL;
	bool ok;
	int ret;

	resp.type = CRIU_REQ_TYPE__NOTIFY;
	resp.success = true;
	resp.notify = &n;
	n.script = (char *)script;
	n.has_pid = pid > 0;
	n.pid = pid;
	pr_info("notify %s%s%s", script, pid > 0 ? " (with the restored pid)" : "",
		fd >= 0 ? " (with an fd)" : "");
	ret = send_resp(q->s->sk, &resp, fd, err);
	if (!ret)
		ret = rpc_recv(q->s->sk, &ans, err);
	if (ret)
		return ferr_wrap(err, "the %s callback", script);
	if (!ans)
		return ferr_new(err, ECONNRESET, "the runtime hung up during the %s callback",
				script);
	ok = ans->type == CRIU_REQ_TYPE__NOTIFY && ans->has_notify_success && ans->notify_success;
	if (ans->type != CRIU_REQ_TYPE__NOTIFY)
		ret = ferr_new(err, EPROTO, "the runtime answered the %s callback with a request "
			       "of type %d, not NOTIFY", script, ans->type);
	else if (!ok)
		ret = ferr_new(err, ECANCELED, "the runtime reported that its %s callback failed",
			       script);
	criu_req__free_unpacked(ans, NULL);
	return ret;
}

int rpc_notify(struct swrk_req *q, const char *script, pid_t pid, struct ferr *err)
{
	return q->notify ? notify(q, script, pid, -1, err) : 0;
}

int rpc_notify_fd(struct swrk_req *q, const char *script, int fd, struct ferr *err)
{
	/* As in criu: without callbacks the fd has no way to the runtime. */
	if (!q->notify)
		return ferr_new(err, EINVAL, "the %s callback carries an fd the runtime must get, "
				"and notify_scripts is not set", script);
	return notify(q, script, 0, fd, err);
}

/* ---- what a request set, one option a line ------------------------------- */

static void log_value(char *out, size_t len, const ProtobufCFieldDescriptor *f, const void *v)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		snprintf(out, len, "%s", *(const protobuf_c_boolean *)v ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_INT32:
		snprintf(out, len, "%d", *(const int32_t *)v);
		break;
	case PROTOBUF_C_TYPE_UINT32:
		snprintf(out, len, "%#x", *(const uint32_t *)v);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(
			f->descriptor, *(const int *)v);

		snprintf(out, len, "%s", e ? e->name : "?");
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		snprintf(out, len, "\"%s\"", *(char *const *)v);
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)v;
		size_t used = 0;

		out[0] = '\0';
		for (unsigned i = 0; m && i < m->descriptor->n_fields && used < len; i++) {
			const ProtobufCFieldDescriptor *g = &m->descriptor->fields[i];
			char val[256];

			if (g->label != PROTOBUF_C_LABEL_REQUIRED && g->quantifier_offset &&
			    !*(const protobuf_c_boolean *)((const char *)m + g->quantifier_offset))
				continue;
			if (g->type == PROTOBUF_C_TYPE_STRING &&
			    !*(char *const *)((const char *)m + g->offset))
				continue;
			log_value(val, sizeof(val), g, (const char *)m + g->offset);
			used += (size_t)snprintf(out + used, len - used, "%s%s=%s", used ? " " : "{",
						 g->name, val);
		}
		if (used < len)
			snprintf(out + used, len - used, used ? "}" : "{}");
		break;
	}
	default:
		snprintf(out, len, "(%d bytes)", (int)f->type);
	}
}

static void log_field(const char *msg, const ProtobufCFieldDescriptor *f, const void *m)
{
	const char *p = (const char *)m + f->offset;
	char val[512];

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
		size_t sz = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE ?
			sizeof(void *) : 4;

		for (size_t i = 0; i < n; i++) {
			log_value(val, sizeof(val), f, *(char *const *)p + i * sz);
			pr_debug("%s %s[%zu] = %s", msg, f->name, i, val);
		}
		return;
	}
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
	    !*(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset))
		return;
	if ((f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) &&
	    !*(void *const *)p)
		return;
	log_value(val, sizeof(val), f, p);
	pr_debug("%s %s = %s", msg, f->name, val);
}

void rpc_log_request(const CriuReq *req)
{
	char buf[32];

	pr_debug("request %s%s", rpc_type_name(req->type, buf, sizeof(buf)),
		 req->has_keep_open && req->keep_open ? " (keep_open)" : "");
	for (unsigned i = 0; i < criu_req__descriptor.n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &criu_req__descriptor.fields[i];

		if (f->id == 1 || f->id == 2)
			continue;
		log_field("  req", f, req);
	}
	for (unsigned i = 0; req->opts && i < criu_opts__descriptor.n_fields; i++)
		log_field("  opt", &criu_opts__descriptor.fields[i], req->opts);
}
