/* TLS 1.3 on migration connections (OpenSSL): both ends authenticated by a
 * pre-shared key (external PSK, identity "ferry") or by certificates signed
 * by one CA; every byte after the handshake encrypted and integrity-checked.
 * The handshake runs non-blocking against an absolute deadline, so a peer
 * that trickles cannot hold a server, and a server can hold several. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <string.h>

#include "common/cancel.h"
#include "migrate/net.h"

#define PSK_ID "ferry"

bool net_tls_available(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	bool ok = ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);

	SSL_CTX_free(ctx);
	return ok;
}

/* The session a PSK handshake resumes: TLS_AES_128_GCM_SHA256 keyed by it. */
static SSL_SESSION *psk_session(SSL *ssl, const struct net_creds *cr)
{
	static const unsigned char aes128gcm[] = { 0x13, 0x01 };
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm);
	SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;

	if (s && (!SSL_SESSION_set1_master_key(s, cr->psk, sizeof(cr->psk)) ||
		  !SSL_SESSION_set_cipher(s, cipher) ||
		  !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
		SSL_SESSION_free(s);
		s = NULL;
	}
	return s;
}

static int psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		   SSL_SESSION **sess)
{
	SSL_SESSION *s = psk_session(ssl, SSL_get_app_data(ssl));

	*sess = NULL;
	if (!s)
		return 0;
	if (md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
		SSL_SESSION_free(s);
		return 1;
	}
	*id = (const unsigned char *)PSK_ID;
	*idlen = strlen(PSK_ID);
	*sess = s;
	return 1;
}

static int psk_find(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	*sess = NULL;
	if (idlen != strlen(PSK_ID) || memcmp(id, PSK_ID, idlen))
		return 1;   /* not ours: the handshake fails for want of a PSK */
	*sess = psk_session(ssl, SSL_get_app_data(ssl));
	return *sess ? 1 : 0;
}

static int tls_error(struct ferr *err, int code, const char *what)
{
	unsigned long q = ERR_get_error();
	const char *r = q ? ERR_reason_error_string(q) : NULL;

	ERR_clear_error();
	return ferr_new(err, code, "%s%s%s", what, r ? ": " : "", r ? r : "");
}

/* The socket under the session. Records go out through a 1 MiB buffer:
 * written one by one, every 16 KiB record would cost a send() of its own;
 * net_send_all() flushes the buffer after each write. */
static int set_bios(SSL *ssl, int fd)
{
	BIO *rbio = BIO_new_socket(fd, BIO_NOCLOSE);
	BIO *wsock = BIO_new_socket(fd, BIO_NOCLOSE);
	BIO *wbuf = BIO_new(BIO_f_buffer());

	if (!rbio || !wsock || !wbuf || BIO_set_write_buffer_size(wbuf, 1 << 20) <= 0) {
		BIO_free(rbio);
		BIO_free(wsock);
		BIO_free(wbuf);
		return -1;
	}
	SSL_set_bio(ssl, rbio, BIO_push(wbuf, wsock));
	return 0;
}

static SSL *new_ssl(const struct net_creds *cr, bool server, int fd, struct ferr *err)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	SSL *ssl = NULL;

	if (!ctx) {
		tls_error(err, ENOMEM, "TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(ctx, 0);   /* one connection per command: no resumption */
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	/* SHA-256 suites only: the PSK is bound to the hash of the suite its
	 * session names, so a SHA-384 suite chosen first would pass it over.
	 * AES-128-GCM first: the fastest where the CPU has AES instructions. */
	if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256")) {
		tls_error(err, EINVAL, "TLS cipher suites");
		goto out;
	}
	if (cr->cert) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cr->cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, cr->pkey, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			tls_error(err, EINVAL, "TLS certificate or key");
			goto out;
		}
		if (SSL_CTX_load_verify_locations(ctx, cr->cacert, NULL) != 1) {
			tls_error(err, EINVAL, "TLS CA certificate");
			goto out;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	ssl = SSL_new(ctx);
	if (!ssl || set_bios(ssl, fd)) {
		tls_error(err, ENOMEM, "TLS session");
		SSL_free(ssl);
		ssl = NULL;
		goto out;
	}
	/* Read as much as the socket has, not one record header at a time. */
	SSL_set_read_ahead(ssl, 1);
	SSL_set_app_data(ssl, (void *)cr);
	if (cr->has_key) {
		if (server)
			SSL_set_psk_find_session_callback(ssl, psk_find);
		else
			SSL_set_psk_use_session_callback(ssl, psk_use);
	}
out:
	SSL_CTX_free(ctx);   /* the session holds its own reference */
	return ssl;
}

static int set_blocking(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	return fcntl(fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* One step of the handshake: 0 done, -EAGAIN (with events), or an error. */
static int step(struct net_conn *c, bool server, short *events, struct ferr *err)
{
	int rc = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
	int e;

	if (rc == 1) {
		set_blocking(c->fd, true);
		return 0;
	}
	e = SSL_get_error(c->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return -EAGAIN;
	}
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
		return ferr_new(err, EACCES, "TLS handshake: the peer closed the connection "
				"(a wrong key or certificate on one side?)");
	return tls_error(err, EACCES, server ? "TLS handshake: the client did not authenticate "
				      "(wrong key or certificate?)"
				    : "TLS handshake with the server failed (wrong key or "
				      "certificate?)");
}

int net_tls_server_start(struct net_conn *c, const struct net_creds *cr, struct ferr *err)
{
	int ret = set_blocking(c->fd, false);

	if (ret)
		return ferr_sys(err, -ret, "O_NONBLOCK");
	c->ssl = new_ssl(cr, true, c->fd, err);
	return c->ssl ? 0 : -err->code;
}

int net_tls_server_step(struct net_conn *c, short *events, struct ferr *err)
{
	return step(c, true, events, err);
}

/* The server's certificate must name host: an IP address (its IP SAN) or a
 * DNS name (SAN or CN, also sent as SNI). */
static int check_name(SSL *ssl, const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
	return SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1 ? 0 : -1;
}

int net_tls_client(struct net_conn *c, const struct net_creds *cr, const char *host,
		   uint64_t deadline_ns, struct ferr *err)
{
	short events = 0;
	int ret = set_blocking(c->fd, false);

	if (ret)
		return ferr_sys(err, -ret, "O_NONBLOCK");
	c->ssl = new_ssl(cr, false, c->fd, err);
	if (!c->ssl)
		return -err->code;
	if (cr->cert && !cr->no_cn_verify && check_name(c->ssl, host))
		return tls_error(err, EINVAL, "TLS: the server's name");
	while ((ret = step(c, false, &events, err)) == -EAGAIN) {
		struct pollfd p = { .fd = c->fd, .events = events };
		uint64_t now = now_ns();

		if (now >= deadline_ns)
			return ferr_new(err, ETIMEDOUT, "TLS handshake: no answer in %d s",
					NET_HANDSHAKE_S);
		if (poll(&p, 1, (int)((deadline_ns - now) / 1000000) + 1) < 0) {
			if (errno != EINTR)
				return ferr_sys(err, errno, "poll");
			if (cancel_check(err))
				return -err->code;
		}
	}
	return ret;
}
