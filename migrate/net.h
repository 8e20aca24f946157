/* The migration stream's wire layer (docs/PROTOCOL.md): TCP set-up, frames,
 * and the pre-shared-key handshake. Everything read from the peer is
 * untrusted: frame lengths are bounded before anything is allocated. */
#ifndef FERRY_MIGRATE_NET_H
#define FERRY_MIGRATE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"
#include "common/util.h"

#define NET_MAGIC 0x4d595246u       /* "FRYM" little-endian */
#define NET_VERSION 2              /* 2: pages streamed in PAGES frames */
#define NET_CTRL_MAX (64u << 10)    /* a control frame's message at most */
#define NET_NONCE 32
#define NET_MAC 32                  /* HMAC-SHA256 */
#define NET_KEY_MAX 1024
#define NET_DEFAULT_PORT 27027
#define MIG_ZBLOCK (1u << 20)       /* a zstd block's bytes, decompressed, at most */

enum net_type {
	NET_HELLO = 1,
	NET_AUTH = 2,
	NET_FILE = 3,     /* MigFile, then its raw bytes */
	NET_ROUND = 4,    /* MigRound: a round's files are all sent */
	NET_RESULT = 5,   /* MigResult: the final dump restored (stopped), or why not */
	NET_COMMIT = 6,   /* the original is gone: let the restored process run */
	NET_ABORT = 7,    /* MigResult: the source gives up; kill what was restored */
	NET_DONE = 8,     /* the restored process runs */
	NET_PAGES = 9,    /* MigPages, then a piece of a round's pages.img */
};

struct net_key {
	uint8_t k[NET_KEY_MAX];
	size_t len;                 /* 0: no key */
};

/* The key file's bytes (trailing newline dropped); at least 16 of them. */
int __must_check net_key_load(const char *path, struct net_key *key, struct ferr *err);

/* Listen on ADDR:PORT (IPv4 or IPv6 literal or name); returns the socket. */
int __must_check net_listen(const char *addr, uint16_t port, struct ferr *err);
/* Connect to "HOST:PORT" ("[v6]:PORT" for IPv6); returns the socket. */
int __must_check net_connect(const char *hostport, struct ferr *err);
/* Parse "HOST:PORT" into host (cap bytes) and port. */
int __must_check net_split_hostport(const char *s, char *host, size_t cap, uint16_t *port);
/* Every read and write on fd gives up after seconds of silence; no Nagle. */
void net_set_timeout(int fd, unsigned seconds);

int __must_check net_send_all(int fd, const void *buf, size_t len, struct ferr *err);
int __must_check net_recv_all(int fd, void *buf, size_t len, struct ferr *err);

/* One frame: header and (for control frames) a packed message or nothing. */
int __must_check net_send(int fd, enum net_type type, const ProtobufCMessage *msg,
			  struct ferr *err);
/* The same, for a frame whose raw bytes the caller sends next (MSG_MORE:
 * header and bytes leave in the same segments). */
int __must_check net_send_more(int fd, enum net_type type, const ProtobufCMessage *msg,
			       struct ferr *err);
/* Read one frame's header; *len is the payload length that follows. */
int __must_check net_recv_header(int fd, uint32_t *type, uint64_t *len, struct ferr *err);
/* Read one control frame (payload <= NET_CTRL_MAX) into buf[NET_CTRL_MAX]. A
 * peer that closes cleanly before the header gives -EPIPE with *eof set. */
int __must_check net_recv_ctrl(int fd, uint32_t *type, uint8_t *buf, size_t *len, bool *eof,
			       struct ferr *err);
/* Read a control frame that must be of type want (ABORT is reported). */
int __must_check net_expect(int fd, uint32_t want, uint8_t *buf, size_t *len, struct ferr *err);

/* The handshake; both fail with EACCES on a wrong or missing key. */
int __must_check net_handshake_server(int fd, const struct net_key *key, struct ferr *err);
int __must_check net_handshake_client(int fd, const struct net_key *key, struct ferr *err);

const char *net_type_name(uint32_t type);

#endif
