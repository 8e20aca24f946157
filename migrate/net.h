/* The migration stream's wire layer (docs/PROTOCOL.md): sockets (TCP, or a
 * Unix socket for a local peer), TLS 1.3 on every TCP connection (tls.c),
 * and frames. Everything read from the peer is untrusted: frame lengths are
 * bounded before anything is allocated. */
#ifndef FERRY_MIGRATE_NET_H
#define FERRY_MIGRATE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"
#include "common/util.h"

#define NET_MAGIC 0x4d595246u       /* "FRYM" little-endian */
#define NET_VERSION 3              /* 3: TLS; 2: pages streamed in PAGES frames */
#define NET_CTRL_MAX (64u << 10)    /* a control frame's message at most */
#define NET_KEY_MAX 1024
#define NET_DEFAULT_PORT 27027
#define NET_HANDSHAKE_S 10          /* a peer has this long to authenticate, all told */
#define MIG_ZBLOCK (1u << 20)       /* a zstd block's bytes, decompressed, at most */
#define NET_UNIX_PREFIX "unix:"     /* an address naming a Unix socket's path */

enum net_type {
	NET_HELLO = 1,
	NET_AUTH = 2,     /* version 2's key proof; refused since version 3 */
	NET_FILE = 3,     /* MigFile, then its raw bytes */
	NET_ROUND = 4,    /* MigRound: a round's files are all sent */
	NET_RESULT = 5,   /* MigResult: the final dump stored (and restored, stopped), or why not */
	NET_COMMIT = 6,   /* the original is gone: let the restored process run */
	NET_ABORT = 7,    /* MigResult: the source gives up; kill what was restored */
	NET_DONE = 8,     /* the restored process runs */
	NET_PAGES = 9,    /* MigPages, then a piece of a round's pages.img */
};

/* Who the peer must prove to be: a pre-shared key (TLS 1.3 PSK), or
 * certificates (mutual, against one CA). Neither: only a Unix socket, whose
 * peer the kernel names (root or this user). */
struct net_creds {
	uint8_t psk[32];            /* SHA-256 of the key file's bytes */
	bool has_key;
	const char *cert, *pkey, *cacert;   /* PEM files, all three or none */
	bool no_cn_verify;          /* client: do not match the server's name */
};

struct ssl_st;

/* One connection: the socket, and its TLS session (NULL on a Unix socket
 * without credentials). Every read and write is bounded by idle_s of
 * silence and, when set, by the absolute deadline_ns (CLOCK_MONOTONIC). */
struct net_conn {
	int fd;
	struct ssl_st *ssl;
	unsigned idle_s;
	uint64_t deadline_ns;
	bool no_cancel;             /* past the point of no return: SIGINT/SIGTERM wait */
};

#define NET_CONN_INIT { .fd = -1 }

void net_conn_close(struct net_conn *c);   /* a clean TLS close, then the socket */
DEFINE_CLEANUP_VAL(net_conn, net_conn_close)

/* The key file: owned by the caller, not readable by others (0600), at
 * least 16 bytes (trailing newline dropped); its SHA-256 is the PSK. */
int __must_check net_key_load(const char *path, struct net_creds *cr, struct ferr *err);
/* The credentials of a command: a key file or the three certificate files
 * (or nothing). Refuses both, and a partial set of files. */
int __must_check net_creds_load(struct net_creds *cr, const char *key_file, const char *cert,
				const char *pkey, const char *cacert, struct ferr *err);
static inline bool net_creds_any(const struct net_creds *cr)
{
	return cr->has_key || cr->cert;
}
/* "unix:PATH" names a Unix socket. */
bool net_is_unix(const char *addr);

/* Listen on ADDR:PORT (IPv4 or IPv6 literal or name) or on unix:PATH (the
 * path is created with mode 0600); returns the socket. */
int __must_check net_listen(const char *addr, uint16_t port, struct ferr *err);
/* Connect to "HOST:PORT" ("[v6]:PORT" for IPv6) or "unix:PATH". */
int __must_check net_connect(const char *hostport, struct ferr *err);
/* Parse "HOST:PORT" into host (cap bytes) and port. */
int __must_check net_split_hostport(const char *s, char *host, size_t cap, uint16_t *port);
/* The peer of a Unix socket is root or this process's user. */
int __must_check net_unix_peer_ok(int fd, struct ferr *err);
/* Every read and write on c gives up after seconds of silence; no Nagle. */
void net_set_timeout(struct net_conn *c, unsigned seconds);

/* tls.c: the TLS 1.3 handshake on c->fd, authenticating both ends by cr,
 * done by deadline_ns at the latest. The client names the server host it
 * dialled (checked against its certificate unless no_cn_verify). A wrong
 * key or certificate fails with EACCES. */
int __must_check net_tls_client(struct net_conn *c, const struct net_creds *cr,
				const char *host, uint64_t deadline_ns, struct ferr *err);
/* The server's handshake in steps, for many pending peers at once: start
 * makes c->ssl (c->fd is made non-blocking); step returns 0 when the peer is
 * authenticated (c->fd blocking again), -EAGAIN with *events to poll for,
 * or an error. */
int __must_check net_tls_server_start(struct net_conn *c, const struct net_creds *cr,
				      struct ferr *err);
int net_tls_server_step(struct net_conn *c, short *events, struct ferr *err);
/* Whether this build can speak TLS 1.3 with PSK (for `ferry check`). */
bool net_tls_available(void);

int __must_check net_send_all(struct net_conn *c, const void *buf, size_t len, struct ferr *err);
int __must_check net_recv_all(struct net_conn *c, void *buf, size_t len, struct ferr *err);

/* One frame: header and (for control frames) a packed message or nothing. */
int __must_check net_send(struct net_conn *c, enum net_type type, const ProtobufCMessage *msg,
			  struct ferr *err);
/* Read one frame's header; *len is the payload length that follows. */
int __must_check net_recv_header(struct net_conn *c, uint32_t *type, uint64_t *len,
				 struct ferr *err);
/* Read one control frame (payload <= NET_CTRL_MAX) into buf[NET_CTRL_MAX]. A
 * peer that closes cleanly before the header gives -EPIPE with *eof set. */
int __must_check net_recv_ctrl(struct net_conn *c, uint32_t *type, uint8_t *buf, size_t *len,
			       bool *eof, struct ferr *err);
/* Read a control frame that must be of type want (ABORT is reported). */
int __must_check net_expect(struct net_conn *c, uint32_t want, uint8_t *buf, size_t *len,
			    struct ferr *err);

/* HELLO both ways, after the handshake: both speak NET_VERSION. */
int __must_check net_hello_server(struct net_conn *c, struct ferr *err);
int __must_check net_hello_client(struct net_conn *c, struct ferr *err);

const char *net_type_name(uint32_t type);

#endif
