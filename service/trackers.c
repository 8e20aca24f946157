/* ferryd's trackers (see trackers.h). Each is a userfaultfd that tracks a
 * target's writes since its last round, the target's pidfd, and the
 * abstract socket the next round asks at (dump/keeper.c's wire: the same a
 * keeper process answers on). */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "dump/keeper.h"
#include "service/trackers.h"

#define TRACKERS_MAX 256

struct tracker {
	pid_t pid;
	uid_t owner;
	uint8_t id[IMG_ID_SIZE];
	int uffd, pidfd, lfd;
	uint64_t since_ms;
};

static struct tracker tr[TRACKERS_MAX];
static size_t ntr;
static void (*log_line)(const char *fmt, ...);
static uint64_t idle_ms;

void trackers_init(void (*say)(const char *fmt, ...), uint64_t timeout_ms)
{
	log_line = say;
	idle_ms = timeout_ms;
}

size_t trackers_count(void)
{
	return ntr;
}

size_t trackers_list(uid_t uid, struct tracker_info *out, size_t max, uint64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < ntr && n < max; i++)
		if (!uid || tr[i].owner == uid)
			out[n++] = (struct tracker_info){ tr[i].pid, tr[i].owner,
							  now_ms - tr[i].since_ms };
	return n;
}

static void release(size_t i, const char *why)
{
	struct tracker *t = &tr[i];

	if (why)
		log_line("tracker of process %d (uid %u) released: %s", t->pid, t->owner, why);
	if (t->uffd >= 0)
		close(t->uffd);
	close(t->pidfd);
	close(t->lfd);
	tr[i] = tr[--ntr];
}

static long find(pid_t pid)
{
	for (size_t i = 0; i < ntr; i++)
		if (tr[i].pid == pid)
			return (long)i;
	return -1;
}

/* The pid a pidfd refers to, from its fdinfo; 0 if none (or it exited). */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[1024];
	const char *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	if (read_small_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
		return 0;
	p = strstr(buf, "\nPid:");
	return p ? (pid_t)atoi(p + 5) : 0;
}

static bool is_uffd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = '\0';
	return !strcmp(link, "anon_inode:[userfaultfd]");
}

void trackers_take_from(int sk, uid_t uid, pid_t job_pid)
{
	struct keeper_given g;
	struct ferr err;
	int ret = keeper_receive(sk, &g);
	long old;

	if (ret == -EAGAIN || ret == -EPIPE)
		return;
	if (ret) {
		log_line("job %d sent something that is not a tracker: ignored", job_pid);
		return;
	}
	if (pidfd_pid(g.pidfd) != g.pid || g.pid <= 0 || !is_uffd(g.uffd) || ntr == TRACKERS_MAX) {
		log_line("job %d gave a tracker for process %d that %s: refused", job_pid, g.pid,
			 ntr == TRACKERS_MAX ? "does not fit" : "does not check out");
		goto refuse;
	}
	/* A new chain's tracker replaces the old one's (keeper_listen would
	 * ask this very process to drop it, and wait for its answer). */
	old = find(g.pid);
	if (old >= 0)
		release((size_t)old, "a new chain of rounds started");
	ferr_clear(&err);
	ret = keeper_listen(g.pid, &err);
	if (ret < 0) {
		log_line("tracker of process %d: %s", g.pid, err.msg);
		goto refuse;
	}
	tr[ntr++] = (struct tracker){ .pid = g.pid, .owner = uid, .uffd = g.uffd,
				      .pidfd = g.pidfd, .lfd = ret, .since_ms = now_ns() / 1000000 };
	memcpy(tr[ntr - 1].id, g.id, IMG_ID_SIZE);
	log_line("keeping the tracker of process %d for uid %u (job %d)", g.pid, uid, job_pid);
	keeper_reply(sk, true);
	return;
refuse:
	close(g.uffd);
	close(g.pidfd);
	keeper_reply(sk, false);
}

size_t trackers_pollfds(struct pollfd *p, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < ntr && n + 2 <= max; i++) {
		p[n++] = (struct pollfd){ .fd = tr[i].lfd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = tr[i].pidfd, .events = POLLIN };
	}
	return n;
}

void trackers_serve(const struct pollfd *p, size_t n)
{
	/* p was laid out from tr before any change: match by fd. */
	for (size_t k = 0; k < n; k++) {
		long i = -1;

		if (!p[k].revents)
			continue;
		for (size_t j = 0; j < ntr && i < 0; j++)
			if (tr[j].lfd == p[k].fd || tr[j].pidfd == p[k].fd)
				i = (long)j;
		if (i < 0)
			continue;
		if (tr[i].pidfd == p[k].fd) {
			release((size_t)i, "its target exited");
		} else if (keeper_answer(tr[i].lfd, tr[i].id, tr[i].pid, &tr[i].uffd, tr[i].owner)) {
			log_line("tracker of process %d handed to its next round (or dropped)",
				 tr[i].pid);
			release((size_t)i, NULL);
		}
	}
}

void trackers_exec(pid_t pid)
{
	long i = find(pid);

	if (i >= 0)
		release((size_t)i, "its target ran a new program (exec): what it tracked is gone");
}

uint64_t trackers_expire(uint64_t now_ms)
{
	uint64_t next = UINT64_MAX;

	for (size_t i = ntr; i-- > 0;) {
		uint64_t due = tr[i].since_ms + idle_ms;

		if (now_ms >= due)
			release(i, "nobody took it within the tracker timeout");
		else if (due - now_ms < next)
			next = due - now_ms;
	}
	return next;
}

void trackers_release_all(void)
{
	while (ntr)
		release(ntr - 1, "ferryd stops");
}
