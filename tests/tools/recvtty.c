/* Test fixture: the console socket's owner, as runc's recvtty is. It takes
 * the pseudo-terminal master a runtime (runc's --console-socket) or ferry
 * (restore --console-socket, or runc's forwarding of the RPC's
 * orphan-pts-master) sends, and relays it: what is written into the FIFO
 * IN is typed into the terminal, what the terminal prints is appended to
 * OUT. It exits once the terminal's other side is gone (EIO/HUP on the
 * master), or on SIGTERM.
 *
 * usage: recvtty [-w ROWS,COLS] SOCKET IN OUT
 *   -w: set the terminal's window size as soon as the master is in */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "common/fdpass.h"

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct winsize ws = { 0 };
	char name[4096];
	int opt, lsk, sk, in, out, master = -1;
	size_t nfds = 0;
	ssize_t n;

	while ((opt = getopt(argc, argv, "w:")) != -1) {
		if (opt != 'w' || sscanf(optarg, "%hu,%hu", &ws.ws_row, &ws.ws_col) != 2)
			return 2;
	}
	if (argc - optind != 3 || strlen(argv[optind]) >= sizeof(sa.sun_path))
		return 2;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[optind]);
	unlink(argv[optind + 1]);
	if (mkfifo(argv[optind + 1], 0600) < 0) {
		perror("recvtty: mkfifo");
		return 1;
	}
	/* Read-write: the FIFO never reads as ended between two writers. */
	in = open(argv[optind + 1], O_RDWR | O_NONBLOCK | O_CLOEXEC);
	out = open(argv[optind + 2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	lsk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(sa.sun_path);
	/* The socket's existence says we are ready. */
	if (in < 0 || out < 0 || lsk < 0 || bind(lsk, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lsk, 1) < 0) {
		perror("recvtty");
		return 1;
	}
	sk = accept4(lsk, NULL, NULL, SOCK_CLOEXEC);
	n = sk >= 0 ? fdpass_recv(sk, name, sizeof(name) - 1, &master, &nfds) : -errno;
	if (n < 0 || nfds != 1) {
		fprintf(stderr, "recvtty: no terminal received (%s)\n",
			n < 0 ? strerror((int)-n) : "no fd");
		return 1;
	}
	close(sk);
	close(lsk);
	unlink(sa.sun_path);
	if (ws.ws_row && ioctl(master, TIOCSWINSZ, &ws) < 0) {
		perror("recvtty: TIOCSWINSZ");
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = { { master, POLLIN, 0 }, { in, POLLIN, 0 } };
		char buf[4096];

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents) {
			n = read(master, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				return 0; /* EIO: the terminal's other side is gone */
			if (n > 0 && write_all(out, buf, (size_t)n) < 0)
				return 1;
		}
		if (p[1].revents & POLLIN) {
			n = read(in, buf, sizeof(buf));
			if (n > 0 && write_all(master, buf, (size_t)n) < 0)
				return 1;
		}
	}
}
