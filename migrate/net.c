/* The migration stream's wire layer: see net.h and docs/PROTOCOL.md. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "migrate/net.h"
#include "common/util.h"
#include "proto/migrate.pb-c.h"

struct frame_hdr {
	uint32_t magic;
	uint32_t type;
	uint64_t len;
} __attribute__((packed));

const char *net_type_name(uint32_t type)
{
	static const char *const names[] = { "?",      "HELLO",  "AUTH",  "FILE", "ROUND",
					     "RESULT", "COMMIT", "ABORT", "DONE",  "PAGES" };

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "unknown";
}

int net_key_load(const char *path, struct net_key *key, struct ferr *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	memset(key, 0, sizeof(*key));
	if (fd < 0)
		return ferr_sys(err, errno, "auth key `%s`", path);
	n = read(fd, key->k, sizeof(key->k));
	close(fd);
	if (n < 0)
		return ferr_sys(err, errno, "read auth key `%s`", path);
	while (n > 0 && (key->k[n - 1] == '\n' || key->k[n - 1] == '\r'))
		n--;
	if (n < 16)
		return ferr_new(err, EINVAL, "auth key `%s`: %zd bytes; at least 16 are needed", path,
				n);
	if ((size_t)n == sizeof(key->k))
		return ferr_new(err, EINVAL, "auth key `%s`: more than %zu bytes", path,
				sizeof(key->k) - 1);
	key->len = (size_t)n;
	return 0;
}

int net_split_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (!hl || hl >= cap)
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || !colon[1] || !p || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static int resolve(const char *host, uint16_t port, bool passive, struct addrinfo **res,
		   struct ferr *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	char ps[8];
	int rc;

	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(host, ps, &hints, res);
	if (rc)
		return ferr_new(err, EHOSTUNREACH, "address `%s`: %s", host, gai_strerror(rc));
	return 0;
}

int net_listen(const char *addr, uint16_t port, struct ferr *err)
{
	struct addrinfo *ai;
	int fd, one = 1, ret = resolve(addr, port, true, &ai, err);

	if (ret)
		return ret;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = ferr_sys(err, errno, "socket");
	} else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		   bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		ret = ferr_sys(err, errno, "listen on %s port %u", addr, port);
		close(fd);
	}
	freeaddrinfo(ai);
	return ret ? ret : fd;
}

int net_connect(const char *hostport, struct ferr *err)
{
	char host[256];
	uint16_t port;
	struct addrinfo *ai, *a;
	int fd = -1, ret;

	if (net_split_hostport(hostport, host, sizeof(host), &port))
		return ferr_new(err, EINVAL, "`%s` is not HOST:PORT", hostport);
	ret = resolve(host, port, false, &ai, err);
	if (ret)
		return ret;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		ret = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return ferr_sys(err, ret, "connect to %s", hostport);
	return fd;
}

void net_set_timeout(int fd, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds };
	int one = 1;

	/* Small control frames (RESULT, COMMIT, DONE) are the hand-over's
	 * critical path: no Nagle delay on them. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int send_flags(int fd, const void *buf, size_t len, int flags, struct ferr *err)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ferr_sys(err, errno == EAGAIN ? ETIMEDOUT : errno, "send");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int net_send_all(int fd, const void *buf, size_t len, struct ferr *err)
{
	return send_flags(fd, buf, len, 0, err);
}

int net_recv_all(int fd, void *buf, size_t len, struct ferr *err)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ferr_sys(err, errno == EAGAIN ? ETIMEDOUT : errno, "receive");
		if (n == 0)
			return ferr_new(err, EPIPE, "the peer closed the connection");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_frame(int fd, enum net_type type, const ProtobufCMessage *msg, int flags,
		      struct ferr *err)
{
	uint8_t buf[sizeof(struct frame_hdr) + NET_CTRL_MAX];
	size_t len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	struct frame_hdr h = { .magic = NET_MAGIC, .type = type, .len = len };

	if (len > NET_CTRL_MAX)
		return ferr_new(err, EMSGSIZE, "%s message of %zu bytes", net_type_name(type), len);
	memcpy(buf, &h, sizeof(h));
	if (msg)
		protobuf_c_message_pack(msg, buf + sizeof(h));
	return send_flags(fd, buf, sizeof(h) + len, flags, err);
}

int net_send(int fd, enum net_type type, const ProtobufCMessage *msg, struct ferr *err)
{
	return send_frame(fd, type, msg, 0, err);
}

int net_send_more(int fd, enum net_type type, const ProtobufCMessage *msg, struct ferr *err)
{
	return send_frame(fd, type, msg, MSG_MORE, err);
}

int net_recv_header(int fd, uint32_t *type, uint64_t *len, struct ferr *err)
{
	struct frame_hdr h;
	int ret = net_recv_all(fd, &h, sizeof(h), err);

	if (ret)
		return ret;
	if (h.magic != NET_MAGIC)
		return ferr_new(err, EPROTO, "not a ferry stream (magic 0x%08x)", h.magic);
	if (!h.type || h.type > NET_PAGES)
		return ferr_new(err, EPROTO, "unknown frame type %u", h.type);
	*type = h.type;
	*len = h.len;
	return 0;
}

int net_recv_ctrl(int fd, uint32_t *type, uint8_t *buf, size_t *len, bool *eof, struct ferr *err)
{
	uint64_t l;
	ssize_t n;
	int ret;

	*eof = false;
	/* A clean close between frames is the peer going away, not garbage. */
	n = recv(fd, buf, 1, MSG_PEEK);
	if (n == 0) {
		*eof = true;
		return ferr_new(err, EPIPE, "the peer closed the connection");
	}
	ret = net_recv_header(fd, type, &l, err);
	if (ret)
		return ret;
	if (l > NET_CTRL_MAX)
		return ferr_new(err, EPROTO, "%s frame of %llu bytes (at most %u)",
				net_type_name(*type), (unsigned long long)l, NET_CTRL_MAX);
	*len = (size_t)l;
	return net_recv_all(fd, buf, *len, err);
}

int net_expect(int fd, uint32_t want, uint8_t *buf, size_t *len, struct ferr *err)
{
	uint32_t type;
	bool eof;
	int ret = net_recv_ctrl(fd, &type, buf, len, &eof, err);

	if (ret)
		return ret;
	if (type == NET_ABORT && want != NET_ABORT) {
		Ferry__MigResult *r = ferry__mig_result__unpack(NULL, *len, buf);
		ret = ferr_new(err, ECONNABORTED, "the peer gave up: %s",
			       r && r->message ? r->message : "no reason given");
		if (r)
			ferry__mig_result__free_unpacked(r, NULL);
		return ret;
	}
	if (type != want)
		return ferr_new(err, EPROTO, "expected %s, got %s", net_type_name(want),
				net_type_name(type));
	return 0;
}

/* HMAC-SHA256(key, label | a | b) */
static int mac(const struct net_key *key, const char *label, const uint8_t *a, const uint8_t *b,
	       uint8_t out[NET_MAC])
{
	uint8_t msg[32 + 2 * NET_NONCE];
	size_t ll = strlen(label);
	unsigned outl = NET_MAC;

	memcpy(msg, label, ll);
	memcpy(msg + ll, a, NET_NONCE);
	memcpy(msg + ll + NET_NONCE, b, NET_NONCE);
	return HMAC(EVP_sha256(), key->k, (int)key->len, msg, ll + 2 * NET_NONCE, out, &outl) ? 0
											       : -1;
}

static bool mac_ok(const struct net_key *key, const char *label, const uint8_t *a,
		   const uint8_t *b, const ProtobufCBinaryData *got)
{
	uint8_t want[NET_MAC];

	return got->len == NET_MAC && !mac(key, label, a, b, want) &&
	       !CRYPTO_memcmp(want, got->data, NET_MAC);
}

int net_handshake_server(int fd, const struct net_key *key, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
	uint8_t ns[NET_NONCE], out[NET_MAC];
	Ferry__MigHello hello = FERRY__MIG_HELLO__INIT, *c;
	Ferry__MigAuth auth = FERRY__MIG_AUTH__INIT;
	size_t len;
	int ret;

	if (RAND_bytes(ns, sizeof(ns)) != 1)
		return ferr_new(err, EIO, "no random bytes for the handshake");
	hello.version = NET_VERSION;
	hello.nonce = (ProtobufCBinaryData){ sizeof(ns), ns };
	hello.has_auth = true;
	hello.auth = key->len > 0;
	ret = net_send(fd, NET_HELLO, &hello.base, err);
	if (!ret)
		ret = net_expect(fd, NET_HELLO, buf, &len, err);
	if (ret)
		return ret;
	c = ferry__mig_hello__unpack(NULL, len, buf);
	if (!c)
		return ferr_new(err, EPROTO, "malformed HELLO");
	if (c->version != NET_VERSION || c->nonce.len != NET_NONCE) {
		ret = ferr_new(err, EPROTO, "peer speaks version %u (this is %u)", c->version,
			       NET_VERSION);
	} else if (key->len && (!c->has_mac ||
				!mac_ok(key, "ferry-client", ns, c->nonce.data, &c->mac))) {
		ret = ferr_new(err, EACCES, "the client did not prove the key: refused");
	} else if (key->len) {
		mac(key, "ferry-server", c->nonce.data, ns, out);
		auth.mac = (ProtobufCBinaryData){ sizeof(out), out };
		ret = net_send(fd, NET_AUTH, &auth.base, err);
	}
	ferry__mig_hello__free_unpacked(c, NULL);
	return ret;
}

int net_handshake_client(int fd, const struct net_key *key, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
	uint8_t nc[NET_NONCE], ns[NET_NONCE], out[NET_MAC];
	Ferry__MigHello hello = FERRY__MIG_HELLO__INIT, *s;
	Ferry__MigAuth *a;
	bool server_auth;
	size_t len;
	int ret = net_expect(fd, NET_HELLO, buf, &len, err);

	if (ret)
		return ret;
	s = ferry__mig_hello__unpack(NULL, len, buf);
	if (!s)
		return ferr_new(err, EPROTO, "malformed HELLO from the server");
	if (s->version != NET_VERSION || s->nonce.len != NET_NONCE) {
		ferry__mig_hello__free_unpacked(s, NULL);
		return ferr_new(err, EPROTO, "server speaks version %u (this is %u)", s->version,
				NET_VERSION);
	}
	memcpy(ns, s->nonce.data, NET_NONCE);
	server_auth = s->has_auth && s->auth;
	ferry__mig_hello__free_unpacked(s, NULL);
	if (server_auth && !key->len)
		return ferr_new(err, EACCES, "the server requires a key (--auth-key)");
	if (!server_auth && key->len)
		return ferr_new(err, EACCES, "the server has no key: refusing to send to an "
				"unauthenticated peer");
	if (RAND_bytes(nc, sizeof(nc)) != 1)
		return ferr_new(err, EIO, "no random bytes for the handshake");
	hello.version = NET_VERSION;
	hello.nonce = (ProtobufCBinaryData){ sizeof(nc), nc };
	if (key->len) {
		mac(key, "ferry-client", ns, nc, out);
		hello.has_mac = true;
		hello.mac = (ProtobufCBinaryData){ sizeof(out), out };
	}
	ret = net_send(fd, NET_HELLO, &hello.base, err);
	if (ret || !key->len)
		return ret;
	ret = net_expect(fd, NET_AUTH, buf, &len, err);
	if (ret) {
		if (err->code == EPIPE)
			return ferr_new(err, EACCES, "the server closed the connection: wrong key?");
		return ret;
	}
	a = ferry__mig_auth__unpack(NULL, len, buf);
	if (!a)
		return ferr_new(err, EPROTO, "malformed AUTH");
	ret = mac_ok(key, "ferry-server", nc, ns, &a->mac)
		      ? 0
		      : ferr_new(err, EACCES, "the server did not prove the key: refused");
	ferry__mig_auth__free_unpacked(a, NULL);
	return ret;
}
