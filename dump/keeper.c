/* The tracker keeper (see keeper.h). Its socket is named after the target's
 * PID, so that there is at most one per process: a new chain of rounds tells
 * the old keeper to drop its tracking before it registers anew (a range can
 * be registered with one userfaultfd only). A request is the PID, an
 * operation and the id of the dump the asker continues; the answer is a
 * status word, with the fd attached when handed over. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "common/fdpass.h"
#include "common/log.h"
#include "common/util.h"
#include "dump/keeper.h"

#define KEEPER_PREFIX "ferry/track/"

enum { KEEP_TAKE = 1, KEEP_DROP = 2, KEEP_GIVE = 3 };

struct keep_req {
	uint32_t pid;
	uint32_t op;
	uint8_t id[IMG_ID_SIZE];
};

static socklen_t keeper_addr(pid_t pid, struct sockaddr_un *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, KEEPER_PREFIX "%d", (int)pid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int send_fd(int c, uint32_t status, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &status, sizeof(status) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		m.msg_control = ctl;
		m.msg_controllen = sizeof(ctl);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(c, &m, MSG_NOSIGNAL) == sizeof(status) ? 0 : -1;
}

int keeper_answer(int lfd, const uint8_t id[IMG_ID_SIZE], pid_t pid, int *uffd, uid_t owner)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct keep_req rq;
	cleanup_close int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	struct timeval tv = { 0, 250000 };

	if (c < 0)
		return 0;
	/* A peer that connects and never asks holds the holder (ferryd: every
	 * caller) up a quarter of a second at most: an asker's request
	 * follows its connect at once. Others' peers are turned away before. */
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
	    (cred.uid == owner || cred.uid == 0) &&
	    recv(c, &rq, sizeof(rq), MSG_WAITALL) == sizeof(rq) && rq.pid == (uint32_t)pid) {
		if (rq.op == KEEP_DROP) {
			/* Tracking ends here, before the answer: the asker
			 * registers the ranges anew next. */
			close(*uffd);
			*uffd = -1;
			send_fd(c, 1, -1);
			return 1;
		}
		if (rq.op == KEEP_TAKE && !memcmp(rq.id, id, IMG_ID_SIZE) &&
		    send_fd(c, 1, *uffd) == 0) {
			close(*uffd); /* the next round holds it now */
			*uffd = -1;
			return 1;
		}
	}
	send_fd(c, 0, -1);
	return 0;
}

static void keeper_serve(int lfd, const uint8_t id[IMG_ID_SIZE], pid_t pid, int pidfd, int uffd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = pidfd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			return; /* the target exited: nothing left to track */
		if (keeper_answer(lfd, id, pid, &uffd, geteuid()))
			return;
	}
}

/* Ask the keeper of pid for op; the answer's status, fd in *fd if any. */
static int keeper_ask(pid_t pid, uint32_t op, const uint8_t *id, int *fd)
{
	struct sockaddr_un a;
	socklen_t alen = keeper_addr(pid, &a);
	struct keep_req rq = { .pid = (uint32_t)pid, .op = op };
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	uint32_t status = 0;
	struct iovec iov = { &status, sizeof(status) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm;
	cleanup_close int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	*fd = -1;
	if (id)
		memcpy(rq.id, id, IMG_ID_SIZE);
	if (c < 0)
		return -errno;
	if (connect(c, (struct sockaddr *)&a, alen) < 0 ||
	    send(c, &rq, sizeof(rq), MSG_NOSIGNAL) != sizeof(rq))
		return -ENOENT;
	n = recvmsg(c, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	cm = n == sizeof(status) ? CMSG_FIRSTHDR(&m) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	return n == sizeof(status) ? (int)status : -ENOENT;
}

void keeper_drop(pid_t pid)
{
	int fd;

	if (keeper_ask(pid, KEEP_DROP, NULL, &fd) == 1)
		pr_info("dropped the dirty tracking an earlier pre-dump left on process %d", pid);
}

int keeper_listen(pid_t pid, struct ferr *err)
{
	struct sockaddr_un a;
	socklen_t alen = keeper_addr(pid, &a);
	cleanup_close int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (lfd < 0)
		return ferr_sys(err, errno, "keeper socket");
	/* An older keeper of the same process gives way first. */
	for (int tries = 0; bind(lfd, (struct sockaddr *)&a, alen) < 0; tries++) {
		int e = errno;

		if (e != EADDRINUSE || tries == 50)
			return ferr_sys(err, e, "keeper socket @%s", a.sun_path + 1);
		keeper_drop(pid);
		usleep(10000);
	}
	if (listen(lfd, 4) < 0)
		return ferr_sys(err, errno, "listen on the keeper socket");
	return steal_fd(lfd);
}

/* The tracker to the service that ran this ferry (ferryd's FERRY_KEEPER_FD),
 * which keeps it instead of a keeper process: 0 once it said it has it. */
static int give_to_service(int sk, const uint8_t id[IMG_ID_SIZE], pid_t pid, int pidfd, int uffd)
{
	struct keep_req rq = { .pid = (uint32_t)pid, .op = KEEP_GIVE };
	int fds[2] = { uffd, pidfd };
	uint32_t status = 0;

	memcpy(rq.id, id, IMG_ID_SIZE);
	if (fdpass_send(sk, &rq, sizeof(rq), fds, 2) ||
	    recv(sk, &status, sizeof(status), 0) != sizeof(status))
		return -1;
	return status == 1 ? 0 : -1;
}

int keeper_receive(int sk, struct keeper_given *g)
{
	struct keep_req rq;
	int fds[FDPASS_MAX_FDS];
	size_t nfds;
	ssize_t n = fdpass_recv(sk, &rq, sizeof(rq), fds, &nfds);

	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return (int)n;
	if (n != sizeof(rq) || rq.op != KEEP_GIVE || nfds != 2) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return -EBADMSG;
	}
	g->pid = (pid_t)rq.pid;
	memcpy(g->id, rq.id, IMG_ID_SIZE);
	g->uffd = fds[0];
	g->pidfd = fds[1];
	return 0;
}

int keeper_reply(int sk, bool ok)
{
	uint32_t status = ok;

	return send(sk, &status, sizeof(status), MSG_NOSIGNAL) == sizeof(status) ? 0 : -errno;
}

int keeper_spawn(const uint8_t id[IMG_ID_SIZE], pid_t pid, int pidfd, int uffd, struct ferr *err)
{
	const char *svc = getenv("FERRY_KEEPER_FD");
	int lfd;
	pid_t mid;
	int st;

	if (svc && *svc) {
		if (give_to_service(atoi(svc), id, pid, pidfd, uffd) == 0) {
			pr_info("the service keeps the tracker of process %d", pid);
			return 0;
		}
		pr_info("the service did not take the tracker of process %d: a keeper "
			"process holds it", pid);
	}
	/* Bound before the fork: when this returns, the next round finds it. */
	lfd = keeper_listen(pid, err);
	if (lfd < 0)
		return lfd;
	fflush(NULL);
	mid = fork();
	if (mid < 0) {
		close(lfd);
		return ferr_sys(err, errno, "fork the tracker keeper");
	}
	if (mid == 0) {
		/* Detach twice so the keeper is nobody's child to wait for. */
		setsid();
		if (fork() != 0)
			_exit(0);
		signal(SIGPIPE, SIG_IGN);
		for (int fd = 0; fd < 1024; fd++)
			if (fd != lfd && fd != pidfd && fd != uffd)
				close(fd);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0 && nul != 0)
			dup2(nul, 0);
		dup2(0, 1);
		dup2(0, 2);
		keeper_serve(lfd, id, pid, pidfd, uffd);
		_exit(0);
	}
	/* The keeper holds its own copy of the socket now. */
	close(lfd);
	if (waitpid(mid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return ferr_new(err, ECHILD, "the tracker keeper did not start");
	return 0;
}

int keeper_take(const uint8_t id[IMG_ID_SIZE], pid_t pid, struct ferr *err)
{
	int fd, st = keeper_ask(pid, KEEP_TAKE, id, &fd);

	if (st == 1 && fd >= 0)
		return fd;
	if (fd >= 0)
		close(fd);
	if (st == -ENOENT)
		return st;
	if (st < 0)
		return ferr_sys(err, -st, "ask the tracker keeper of process %d", pid);
	return ferr_new(err, EPERM, "the tracker keeper of process %d tracks for other images "
			"than these (a newer pre-dump started a new chain)", pid);
}
