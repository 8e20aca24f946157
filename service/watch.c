/* The proc connector (service/watch.h). */
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service/watch.h"

int watch_open(void)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
	struct {
		struct nlmsghdr nl;
		struct cn_msg cn;
		enum proc_cn_mcast_op op;
	} __attribute__((packed)) m;
	int sk = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);

	if (sk < 0)
		return -errno;
	if (bind(sk, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	memset(&m, 0, sizeof(m));
	m.nl.nlmsg_len = sizeof(m);
	m.nl.nlmsg_type = NLMSG_DONE;
	m.nl.nlmsg_pid = (unsigned)getpid();
	m.cn.id.idx = CN_IDX_PROC;
	m.cn.id.val = CN_VAL_PROC;
	m.cn.len = sizeof(m.op);
	m.op = PROC_CN_MCAST_LISTEN;
	if (send(sk, &m, sizeof(m), 0) < 0)
		goto fail;
	return sk;
fail:
	{
		int e = errno;

		close(sk);
		return -e;
	}
}

pid_t watch_next(int sk, enum watch_what *what, pid_t *child)
{
	union {
		char b[4096];
		struct nlmsghdr align;
	} u;

	for (;;) {
		ssize_t n = recv(sk, u.b, sizeof(u.b), 0);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		for (struct nlmsghdr *h = &u.align; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct cn_msg *cn = NLMSG_DATA(h);
			struct proc_event ev;

			if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_NOOP)
				continue;
			if (cn->id.idx != CN_IDX_PROC || cn->len < sizeof(ev))
				continue;
			/* The event sits unaligned after the cn_msg header. */
			memcpy(&ev, cn->data, sizeof(ev));
			*child = 0;
			/* The thread-group leader's exit is the process's; a
			 * new thread is no new process. */
			if (ev.what == PROC_EVENT_EXIT &&
			    ev.event_data.exit.process_pid == ev.event_data.exit.process_tgid) {
				*what = WATCH_EXIT;
				return ev.event_data.exit.process_tgid;
			}
			if (ev.what == PROC_EVENT_EXEC) {
				*what = WATCH_EXEC;
				return ev.event_data.exec.process_tgid;
			}
			if (ev.what == PROC_EVENT_FORK &&
			    ev.event_data.fork.child_pid == ev.event_data.fork.child_tgid) {
				*what = WATCH_FORK;
				*child = ev.event_data.fork.child_tgid;
				return ev.event_data.fork.parent_tgid;
			}
		}
	}
}

pid_t watch_target_of(char *const *argv, size_t argc)
{
	bool keeps = argc && !strcmp(argv[0], "pre-dump");

	/* A dump or migration ends its target itself when it succeeds: only
	 * jobs that never do are ended by its exit. */
	for (size_t i = 1; argc && !strcmp(argv[0], "dump") && i < argc; i++)
		keeps |= !strcmp(argv[i], "-R") || !strcmp(argv[i], "--leave-running");
	if (!keeps)
		return 0;
	for (size_t i = 0; i < argc; i++) {
		const char *v = NULL;
		char *end;
		long pid;

		if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "--tree")) && i + 1 < argc)
			v = argv[i + 1];
		else if (!strncmp(argv[i], "-t", 2) && argv[i][2])
			v = argv[i] + 2;
		else if (!strncmp(argv[i], "--tree=", 7))
			v = argv[i] + 7;
		if (!v)
			continue;
		pid = strtol(v, &end, 10);
		if (!*end && pid > 0 && pid < (1L << 22))
			return (pid_t)pid;
	}
	return 0;
}
