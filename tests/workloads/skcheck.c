/* One process holding every kind of pipe and Unix socket ferry restores,
 * each with state, checked from inside after a restore:
 *
 *   pipe       64 KiB pipe made 256 KiB, 100 KiB queued, read end O_NONBLOCK
 *   fifo       a named FIFO (OUT.fifo) open read-write, "fifo-data" queued
 *   seqpacket  a socketpair with three messages queued one way, two the other
 *   dgram      a socketpair, SO_PASSCRED on the receiver, two datagrams queued
 *              with the sender's credentials
 *   half       a stream socketpair whose far end is closed after "tail"
 *              was written: the data, then end of file
 *   listen     listening sockets bound to OUT.sock and to an abstract name
 *   bound      a datagram socket bound to an abstract name, one datagram
 *              queued from an unnamed sender
 *
 * usage: skcheck OUT. Writes OUT.ready with its pid; on SIGUSR1 checks all
 * of it (and that the listeners accept a connection) and writes OUT.check:
 * "ok" or "bad WHAT". */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PIPE_DATA (100u << 10)

static volatile sig_atomic_t check;
static const char *out;
static int p[2], fifo, sq[2], dg[2], half, lpath, labs_, bound, acc, conn;
static char bad[512];

static void onusr1(int sig)
{
	(void)sig;
	check = 1;
}

static void failf(const char *fmt, ...)
{
	va_list ap;

	if (bad[0])
		return;
	va_start(ap, fmt);
	vsnprintf(bad, sizeof(bad), fmt, ap);
	va_end(ap);
}

static socklen_t addr(struct sockaddr_un *a, const char *name, int abstract_)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (abstract_) {
		snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "%s", name);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	}
	snprintf(a->sun_path, sizeof(a->sun_path), "%s", name);
	return (socklen_t)sizeof(*a);
}

static void expect_msg(int fd, const char *want, const char *what)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n))
		failf("%s: got %zd bytes `%.*s`, want `%s`", what, n, n > 0 ? (int)n : 0, buf, want);
}

static void check_pipe(void)
{
	static unsigned char buf[PIPE_DATA + 1];
	ssize_t n;

	if (!(fcntl(p[0], F_GETFL) & O_NONBLOCK))
		failf("pipe read end lost O_NONBLOCK");
	if (fcntl(p[1], F_GETPIPE_SZ) != 256 << 10)
		failf("pipe size %d, want %d", fcntl(p[1], F_GETPIPE_SZ), 256 << 10);
	n = read(p[0], buf, sizeof(buf));
	if (n != PIPE_DATA)
		failf("pipe held %zd bytes, want %u", n, PIPE_DATA);
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != (unsigned char)(i * 13)) {
			failf("pipe byte %zd wrong", i);
			break;
		}
}

static void check_dgram(void)
{
	for (int k = 0; k < 2; k++) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred))];
		} c;
		char buf[64];
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b,
				     .msg_controllen = sizeof(c.b) };
		struct cmsghdr *h;
		ssize_t n = recvmsg(dg[1], &mh, MSG_DONTWAIT);
		char want[32];

		snprintf(want, sizeof(want), "dgram-%d", k);
		if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n)) {
			failf("datagram %d: got %zd bytes", k, n);
			return;
		}
		h = CMSG_FIRSTHDR(&mh);
		if (!h || h->cmsg_type != SCM_CREDENTIALS) {
			failf("datagram %d came without credentials", k);
			return;
		}
		if (((struct ucred *)CMSG_DATA(h))->pid != getpid() ||
		    ((struct ucred *)CMSG_DATA(h))->uid != getuid())
			failf("datagram %d: credentials pid %d uid %d, want %d %d", k,
			      ((struct ucred *)CMSG_DATA(h))->pid, ((struct ucred *)CMSG_DATA(h))->uid,
			      getpid(), getuid());
	}
}

static void check_listener(int l, const char *name, int abstract_)
{
	struct sockaddr_un a;
	socklen_t len = addr(&a, name, abstract_);
	int c = socket(AF_UNIX, SOCK_STREAM, 0), s;

	if (connect(c, (struct sockaddr *)&a, len) < 0) {
		failf("connect to %s%s: %s", abstract_ ? "@" : "", name, strerror(errno));
		close(c);
		return;
	}
	s = accept(l, NULL, NULL);
	if (s < 0)
		failf("accept on %s%s: %s", abstract_ ? "@" : "", name, strerror(errno));
	close(s);
	close(c);
}

/* The connection accepted on the path listener: the accepted end is named
 * after the listener, which the connecting end sees as its peer's name;
 * what each side sent before the dump is there to read. */
static void check_accepted(const char *path)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	char buf[16];

	if (getsockname(acc, (struct sockaddr *)&a, &len) < 0 || len <= sizeof(sa_family_t) ||
	    strcmp(a.sun_path, path))
		failf("accepted socket named `%.*s`, not `%s`",
		      (int)(len > sizeof(sa_family_t) ? len - sizeof(sa_family_t) : 0), a.sun_path, path);
	len = sizeof(a);
	if (getpeername(conn, (struct sockaddr *)&a, &len) < 0 || len <= sizeof(sa_family_t) ||
	    strcmp(a.sun_path, path))
		failf("connected socket's peer is `%.*s`, not `%s`",
		      (int)(len > sizeof(sa_family_t) ? len - sizeof(sa_family_t) : 0), a.sun_path, path);
	if (recv(acc, buf, sizeof(buf), MSG_DONTWAIT) != 5 || memcmp(buf, "hello", 5))
		failf("accepted socket lost what was sent to it");
	if (recv(conn, buf, sizeof(buf), MSG_DONTWAIT) != 5 || memcmp(buf, "world", 5))
		failf("connected socket lost what was sent to it");
}

static void run_checks(void)
{
	char buf[64], name[128], path[4200];
	ssize_t n;

	check_pipe();
	n = read(fifo, buf, sizeof(buf));
	if (n != 9 || memcmp(buf, "fifo-data", 9))
		failf("fifo held %zd bytes", n);
	expect_msg(sq[1], "sq-a", "seqpacket 1");
	expect_msg(sq[1], "sq-bb", "seqpacket 2");
	expect_msg(sq[1], "sq-ccc", "seqpacket 3");
	expect_msg(sq[0], "back-1", "seqpacket back 1");
	expect_msg(sq[0], "back-22", "seqpacket back 2");
	check_dgram();
	n = read(half, buf, sizeof(buf));
	if (n != 4 || memcmp(buf, "tail", 4))
		failf("half-closed stream: %zd bytes", n);
	else if ((n = read(half, buf, sizeof(buf))) != 0)
		failf("half-closed stream: no end of file (%zd)", n);
	expect_msg(bound, "to-bound", "bound datagram");
	snprintf(path, sizeof(path), "%s.sock", out);
	check_accepted(path);
	check_listener(lpath, path, 0);
	snprintf(name, sizeof(name), "ferry-skcheck-%d", getpid());
	check_listener(labs_, name, 1);
}

int main(int argc, char **argv)
{
	sigset_t usr1, waitmask;
	static unsigned char data[PIPE_DATA];
	struct sockaddr_un a;
	char path[4200], name[128];
	int on = 1, fd, hp[2], tmp;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: skcheck OUT\n");
		return 2;
	}
	out = argv[1];
	signal(SIGUSR1, onusr1);
	if (pipe2(p, O_CLOEXEC) || fcntl(p[1], F_SETPIPE_SZ, 256 << 10) < 0)
		return 1;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 13);
	if (write(p[1], data, sizeof(data)) != (ssize_t)sizeof(data))
		return 1;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	snprintf(path, sizeof(path), "%s.fifo", out);
	if (mkfifo(path, 0600) < 0 || (fifo = open(path, O_RDWR | O_CLOEXEC)) < 0 ||
	    write(fifo, "fifo-data", 9) != 9)
		return 1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sq) ||
	    send(sq[0], "sq-a", 4, 0) != 4 || send(sq[0], "sq-bb", 5, 0) != 5 ||
	    send(sq[0], "sq-ccc", 6, 0) != 6 || send(sq[1], "back-1", 6, 0) != 6 ||
	    send(sq[1], "back-22", 7, 0) != 7)
		return 1;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg) ||
	    setsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) ||
	    send(dg[0], "dgram-0", 7, 0) != 7 || send(dg[0], "dgram-1", 7, 0) != 7)
		return 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, hp) || write(hp[1], "tail", 4) != 4)
		return 1;
	close(hp[1]);
	half = hp[0];
	snprintf(path, sizeof(path), "%s.sock", out);
	lpath = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bind(lpath, (struct sockaddr *)&a, addr(&a, path, 0)) || listen(lpath, 8))
		return 1;
	/* One connection accepted on it, with a message queued each way. */
	conn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(conn, (struct sockaddr *)&a, addr(&a, path, 0)) ||
	    (acc = accept4(lpath, NULL, NULL, SOCK_CLOEXEC)) < 0 || write(conn, "hello", 5) != 5 ||
	    write(acc, "world", 5) != 5)
		return 1;
	snprintf(name, sizeof(name), "ferry-skcheck-%d", getpid());
	labs_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bind(labs_, (struct sockaddr *)&a, addr(&a, name, 1)) || listen(labs_, 8))
		return 1;
	snprintf(name, sizeof(name), "ferry-skcheck-bound-%d", getpid());
	bound = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	tmp = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (bind(bound, (struct sockaddr *)&a, addr(&a, name, 1)) ||
	    sendto(tmp, "to-bound", 8, 0, (struct sockaddr *)&a, addr(&a, name, 1)) != 8)
		return 1;
	close(tmp);
	snprintf(path, sizeof(path), "%s.ready", out);
	f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f, "%d\n", getpid());
	fclose(f);
	/* SIGUSR1 blocked but while waiting for it: a signal between the test
	 * of `check` and the wait cannot be lost (with pause() it could be,
	 * when it came as the restored process restarted its pause). */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &waitmask);
	sigdelset(&waitmask, SIGUSR1);
	for (;;) {
		while (!check)
			sigsuspend(&waitmask);
		check = 0;
		run_checks();
		snprintf(path, sizeof(path), "%s.check", out);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dprintf(fd, "%s%s\n", bad[0] ? "bad " : "ok", bad);
			close(fd);
		}
	}
}
