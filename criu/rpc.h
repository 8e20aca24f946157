/* The CRIU RPC's transport and the state of one `ferry swrk` connection:
 * one protobuf message per SOCK_SEQPACKET packet, criu_req in and criu_resp
 * out, NOTIFY round trips in the middle of a request (docs/CONTAINERS.md). */
#ifndef FERRY_CRIU_RPC_H
#define FERRY_CRIU_RPC_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/kerndat.h"
#include "common/util.h"
#include "proto/criu-rpc.pb-c.h"

/* A request larger than this is refused unread (CRIU's are a few KiB). */
#define RPC_MSG_MAX (1 << 20)

/* One connection. */
struct swrk {
	int sk;
	pid_t peer;             /* the runtime (SO_PEERCRED): its fds by /proc/PEER/fd/N */
	struct kerndat kd;
	bool kd_done;
};

/* The kernel feature probe, run once per connection when first needed. */
const struct kerndat *swrk_kd(struct swrk *s);

/* One request being served: its options and what they resolved to. */
struct swrk_req {
	struct swrk *s;
	const CriuReq *req;
	const CriuOpts *o;      /* never NULL: an empty criu_opts if none came */
	char dir[PATH_MAX];     /* the images directory, as a path */
	bool notify;            /* notify_scripts: callbacks to the runtime */
	FILE *log;              /* log_file in the work directory, or NULL */
};

/* Receive one request: 0 and *req (free it with criu_req__free_unpacked),
 * 0 and *req NULL at the end of the connection, or an error (a packet that
 * is not a criu_req is -EBADMSG: the connection goes on). */
int __must_check rpc_recv(int sk, CriuReq **req, struct ferr *err);
/* Send one response (no fd rides along: see rpc_notify_fd). */
int __must_check rpc_send(int sk, const CriuResp *resp, struct ferr *err);
/* The failure answer to a request of type t: cr_errmsg is err's message,
 * cr_errno its code. */
int __must_check rpc_send_error(int sk, CriuReqType t, const struct ferr *e, struct ferr *err);
/* A request type's name ("DUMP"), or "type N" for one this schema lacks. */
const char *rpc_type_name(int type, char *buf, size_t len);

/* A callback (CRIU's "action script") if the runtime asked for them: send
 * a NOTIFY naming script (with pid if > 0), wait for the runtime's NOTIFY
 * answer. An error if it reports failure or answers anything else. */
int __must_check rpc_notify(struct swrk_req *q, const char *script, pid_t pid, struct ferr *err);
/* The same with an fd riding along (SCM_RIGHTS), as criu sends the new
 * terminal's master with orphan-pts-master; an error without
 * notify_scripts (the fd could not reach the runtime). */
int __must_check rpc_notify_fd(struct swrk_req *q, const char *script, int fd, struct ferr *err);

/* One line on stderr at debug level (and in the log file) per option the
 * request set: what runtimes actually send. */
void rpc_log_request(const CriuReq *req);

#endif
