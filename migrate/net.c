/* The migration stream's wire layer: sockets, the connection's reads and
 * writes (through TLS where it has a session), frames. See net.h and
 * docs/PROTOCOL.md. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cancel.h"
#include "common/util.h"
#include "migrate/net.h"
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

void net_conn_close(struct net_conn *c)
{
	if (c->ssl) {
		/* close_notify: the peer can tell a clean end from a cut. */
		if (!SSL_in_init(c->ssl))
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* A secret file (key, private key): ours, and no one else's to read. */
static int private_file(int fd, const char *what, const char *path, struct ferr *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return ferr_sys(err, errno, "%s `%s`", what, path);
	if (!S_ISREG(st.st_mode))
		return ferr_new(err, EINVAL, "%s `%s` is not a regular file", what, path);
	if (st.st_uid != geteuid())
		return ferr_new(err, EPERM, "%s `%s` belongs to uid %u, not to this user (%u)",
				what, path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 077)
		return ferr_new(err, EPERM, "%s `%s` is readable by others (mode %04o): it must "
				"be 0600", what, path, (unsigned)(st.st_mode & 07777));
	return 0;
}

int net_key_load(const char *path, struct net_creds *cr, struct ferr *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint8_t k[NET_KEY_MAX];
	unsigned mdlen = sizeof(cr->psk);
	EVP_MD_CTX *md;
	ssize_t n;
	int ret;

	if (fd < 0)
		return ferr_sys(err, errno, "auth key `%s`", path);
	ret = private_file(fd, "auth key", path, err);
	if (ret)
		return ret;
	n = read(fd, k, sizeof(k));
	if (n < 0)
		return ferr_sys(err, errno, "read auth key `%s`", path);
	while (n > 0 && (k[n - 1] == '\n' || k[n - 1] == '\r'))
		n--;
	if (n < 16)
		return ferr_new(err, EINVAL, "auth key `%s`: %zd bytes; at least 16 are needed", path,
				n);
	if ((size_t)n == sizeof(k))
		return ferr_new(err, EINVAL, "auth key `%s`: more than %zu bytes", path,
				sizeof(k) - 1);
	/* A fixed-size PSK whatever the file holds, bound to ferry's use. */
	md = EVP_MD_CTX_new();
	ret = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	      EVP_DigestUpdate(md, "ferry-migrate-psk-v1", 20) &&
	      EVP_DigestUpdate(md, k, (size_t)n) && EVP_DigestFinal_ex(md, cr->psk, &mdlen);
	EVP_MD_CTX_free(md);
	OPENSSL_cleanse(k, sizeof(k));
	if (!ret)
		return ferr_new(err, EIO, "auth key `%s`: SHA-256 failed", path);
	cr->has_key = true;
	return 0;
}

int net_creds_load(struct net_creds *cr, const char *key_file, const char *cert,
		   const char *pkey, const char *cacert, struct ferr *err)
{
	const char *files[] = { cert, pkey, cacert };
	int given = !!cert + !!pkey + !!cacert;

	memset(cr, 0, sizeof(*cr));
	if (key_file && given)
		return ferr_new(err, EINVAL, "--auth-key or the --tls-* files, not both");
	if (given && given != 3)
		return ferr_new(err, EINVAL, "--tls-cert, --tls-key and --tls-cacert go together");
	if (key_file)
		return net_key_load(key_file, cr, err);
	for (int i = 0; i < given; i++)
		if (access(files[i], R_OK) < 0)
			return ferr_sys(err, errno, "TLS file `%s`", files[i]);
	if (pkey) {
		cleanup_close int fd = open(pkey, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0)
			return ferr_sys(err, errno, "TLS key `%s`", pkey);
		if (private_file(fd, "TLS key", pkey, err))
			return -err->code;
	}
	cr->cert = cert;
	cr->pkey = pkey;
	cr->cacert = cacert;
	return 0;
}

bool net_is_unix(const char *addr)
{
	return !strncmp(addr, NET_UNIX_PREFIX, strlen(NET_UNIX_PREFIX));
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

static int unix_addr(const char *addr, struct sockaddr_un *sa, struct ferr *err)
{
	const char *path = addr + strlen(NET_UNIX_PREFIX);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa->sun_path))
		return ferr_new(err, EINVAL, "`%s`: a Unix socket path of 1-%zu bytes", addr,
				sizeof(sa->sun_path) - 1);
	memcpy(sa->sun_path, path, strlen(path));
	return 0;
}

static int listen_unix(const char *addr, struct ferr *err)
{
	struct sockaddr_un sa;
	int fd, ret = unix_addr(addr, &sa, err);
	mode_t old;

	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferr_sys(err, errno, "socket");
	/* Only this user (and root) may even connect. */
	old = umask(077);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0;
	umask(old);
	if (ret) {
		ret = ferr_sys(err, errno, "listen on %s", addr);
		close(fd);
		return ret;
	}
	return fd;
}

int net_listen(const char *addr, uint16_t port, struct ferr *err)
{
	struct addrinfo *ai;
	int fd, one = 1, ret;

	if (net_is_unix(addr))
		return listen_unix(addr, err);
	ret = resolve(addr, port, true, &ai, err);
	if (ret)
		return ret;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = ferr_sys(err, errno, "socket");
	} else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		   bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		ret = ferr_sys(err, errno, "listen on %s port %u", addr, port);
		close(fd);
	}
	freeaddrinfo(ai);
	return ret ? ret : fd;
}

static int connect_unix(const char *addr, struct ferr *err)
{
	struct sockaddr_un sa;
	int fd, ret = unix_addr(addr, &sa, err);

	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferr_sys(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = ferr_sys(err, errno, "connect to %s", addr);
		close(fd);
		return ret;
	}
	return fd;
}

int net_connect(const char *hostport, struct ferr *err)
{
	char host[256];
	uint16_t port;
	struct addrinfo *ai, *a;
	int fd = -1, ret;

	if (net_is_unix(hostport))
		return connect_unix(hostport, err);
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

int net_unix_peer_ok(int fd, struct ferr *err)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return ferr_sys(err, errno, "SO_PEERCRED");
	if (uc.uid != 0 && uc.uid != geteuid())
		return ferr_new(err, EACCES, "a peer of uid %u (pid %d) is neither root nor this "
				"user: refused", (unsigned)uc.uid, (int)uc.pid);
	return 0;
}

static void set_timeouts(int fd, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void net_set_timeout(struct net_conn *c, unsigned seconds)
{
	int one = 1;

	/* Small control frames (RESULT, COMMIT, DONE) are the hand-over's
	 * critical path: no Nagle delay on them. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->idle_s = seconds;
	set_timeouts(c->fd, seconds);
}

/* Before a read or write with a deadline: at most what is left of it. */
static int arm(struct net_conn *c, struct ferr *err)
{
	uint64_t now, left;
	unsigned s;

	if (!c->deadline_ns)
		return 0;
	now = now_ns();
	if (now >= c->deadline_ns)
		return ferr_new(err, ETIMEDOUT, "out of time");
	left = (c->deadline_ns - now + 999999999ull) / 1000000000ull;
	s = c->idle_s && c->idle_s < left ? c->idle_s : (unsigned)left;
	set_timeouts(c->fd, s);
	return 0;
}

/* A read or write came back EINTR: go on, unless a signal asked the job to
 * stop (and the connection is not past the point where stopping would leave
 * a hand-over half done). */
static int interrupted(const struct net_conn *c, struct ferr *err)
{
	return c->no_cancel ? 0 : cancel_check(err);
}

/* What went wrong in an SSL call, as an errno and a sentence. */
static int ssl_fail(struct net_conn *c, int rc, const char *what, struct ferr *err)
{
	int e = SSL_get_error(c->ssl, rc);
	unsigned long q = ERR_get_error();
	char reason[160];

	ERR_clear_error();
	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		return ferr_new(err, EPIPE, "the peer closed the connection");
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return ferr_new(err, ETIMEDOUT, "%s: timed out", what);
	case SSL_ERROR_SYSCALL:
		if (!q)
			return errno && errno != EPIPE
				       ? ferr_sys(err, errno == EAGAIN ? ETIMEDOUT : errno, "%s", what)
				       : ferr_new(err, EPIPE, "the peer closed the connection");
		break;
	}
	ERR_error_string_n(q, reason, sizeof(reason));
	/* A record that fails its integrity check is an attack or a broken
	 * path, never data. */
	return ferr_new(err, EBADMSG, "%s: TLS: %s", what,
			ERR_reason_error_string(q) ? ERR_reason_error_string(q) : reason);
}

/* What SSL_write left in the write buffer (tls.c), out to the socket. */
static int flush(struct net_conn *c, struct ferr *err)
{
	for (;;) {
		if (BIO_flush(SSL_get_wbio(c->ssl)) > 0)
			return 0;
		if (errno == EINTR) {
			int ret = interrupted(c, err);

			if (ret)
				return ret;
			continue;
		}
		return ferr_sys(err, errno == EAGAIN || !errno ? ETIMEDOUT : errno, "send");
	}
}

int net_send_all(struct net_conn *c, const void *buf, size_t len, struct ferr *err)
{
	const uint8_t *p = buf;
	int ret = arm(c, err);

	while (!ret && len) {
		size_t n = 0;
		ssize_t k;

		if (c->ssl) {
			int rc = SSL_write_ex(c->ssl, p, len, &n);

			if (rc <= 0 && errno == EINTR && SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_WRITE) {
				ret = interrupted(c, err);
				continue;
			}
			if (rc <= 0)
				return ssl_fail(c, rc, "send", err);
		} else {
			k = send(c->fd, p, len, MSG_NOSIGNAL);
			if (k < 0 && errno == EINTR) {
				ret = interrupted(c, err);
				continue;
			}
			if (k < 0)
				return ferr_sys(err, errno == EAGAIN ? ETIMEDOUT : errno, "send");
			n = (size_t)k;
		}
		p += n;
		len -= n;
	}
	return !ret && c->ssl ? flush(c, err) : ret;
}

/* len bytes; *eof (if asked) says the peer closed cleanly before the first. */
static int recv_exact(struct net_conn *c, void *buf, size_t len, bool *eof, struct ferr *err)
{
	uint8_t *p = buf;
	size_t got = 0;
	int ret = arm(c, err);

	while (!ret && got < len) {
		size_t n = 0;
		ssize_t k;

		if (c->ssl) {
			int rc = SSL_read_ex(c->ssl, p + got, len - got, &n);

			if (rc <= 0 && errno == EINTR && SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_READ) {
				ret = interrupted(c, err);
				continue;
			}
			if (rc <= 0) {
				/* Only a close_notify is a clean close: a bare FIN
				 * may be a cut. */
				if (eof && !got && SSL_get_error(c->ssl, rc) == SSL_ERROR_ZERO_RETURN)
					*eof = true;
				return ssl_fail(c, rc, "receive", err);
			}
		} else {
			k = recv(c->fd, p + got, len - got, 0);
			if (k < 0 && errno == EINTR) {
				ret = interrupted(c, err);
				continue;
			}
			if (k < 0)
				return ferr_sys(err, errno == EAGAIN ? ETIMEDOUT : errno, "receive");
			if (k == 0) {
				if (eof && !got)
					*eof = true;
				return ferr_new(err, EPIPE, "the peer closed the connection");
			}
			n = (size_t)k;
		}
		got += n;
	}
	return ret;
}

int net_recv_all(struct net_conn *c, void *buf, size_t len, struct ferr *err)
{
	return recv_exact(c, buf, len, NULL, err);
}

int net_send(struct net_conn *c, enum net_type type, const ProtobufCMessage *msg,
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
	return net_send_all(c, buf, sizeof(h) + len, err);
}

static int recv_header(struct net_conn *c, uint32_t *type, uint64_t *len, bool *eof,
		       struct ferr *err)
{
	struct frame_hdr h;
	int ret = recv_exact(c, &h, sizeof(h), eof, err);

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

int net_recv_header(struct net_conn *c, uint32_t *type, uint64_t *len, struct ferr *err)
{
	return recv_header(c, type, len, NULL, err);
}

int net_recv_ctrl(struct net_conn *c, uint32_t *type, uint8_t *buf, size_t *len, bool *eof,
		  struct ferr *err)
{
	uint64_t l = 0;
	int ret;

	/* A clean close between frames is the peer going away, not garbage. */
	*eof = false;
	ret = recv_header(c, type, &l, eof, err);
	if (ret)
		return ret;
	if (l > NET_CTRL_MAX)
		return ferr_new(err, EPROTO, "%s frame of %llu bytes (at most %u)",
				net_type_name(*type), (unsigned long long)l, NET_CTRL_MAX);
	*len = (size_t)l;
	return net_recv_all(c, buf, *len, err);
}

int net_expect(struct net_conn *c, uint32_t want, uint8_t *buf, size_t *len, struct ferr *err)
{
	uint32_t type;
	bool eof;
	int ret = net_recv_ctrl(c, &type, buf, len, &eof, err);

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

static int send_hello(struct net_conn *c, struct ferr *err)
{
	Ferry__MigHello hello = FERRY__MIG_HELLO__INIT;

	hello.version = NET_VERSION;
	return net_send(c, NET_HELLO, &hello.base, err);
}

static int expect_hello(struct net_conn *c, const char *who, struct ferr *err)
{
	static uint8_t buf[NET_CTRL_MAX];
	Ferry__MigHello *h;
	size_t len;
	int ret = net_expect(c, NET_HELLO, buf, &len, err);

	if (ret)
		return ret;
	h = ferry__mig_hello__unpack(NULL, len, buf);
	if (!h)
		return ferr_new(err, EPROTO, "malformed HELLO from the %s", who);
	ret = h->version == NET_VERSION ? 0
					: ferr_new(err, EPROTO, "the %s speaks version %u (this is %u)",
						   who, h->version, NET_VERSION);
	ferry__mig_hello__free_unpacked(h, NULL);
	return ret;
}

int net_hello_server(struct net_conn *c, struct ferr *err)
{
	int ret = send_hello(c, err);

	return ret ? ret : expect_hello(c, "client", err);
}

int net_hello_client(struct net_conn *c, struct ferr *err)
{
	int ret = expect_hello(c, "server", err);

	return ret ? ret : send_hello(c, err);
}
