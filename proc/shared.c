/* Pipes, Unix sockets and shared anonymous memory of a frozen tree.
 *
 * A pipe's queued bytes are copied without being consumed: tee(2) from a
 * reader of the pipe (opened through /proc/PID/fd, so the write end alone
 * is enough) into a pipe of ferry's own. A Unix socket's queue is read with
 * MSG_PEEK and SO_PEEK_OFF on the socket itself (pidfd_getfd), one message
 * at a time, with SO_PASSCRED on so each message's sender credentials come
 * too; both options are put back as they were. Sockets are described by
 * NETLINK_SOCK_DIAG (type, state, peer, name, pending connections). */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/kerndat.h"
#include "common/log.h"
#include "proc/shared.h"

#define SK_MSG_MAX (1u << 20)        /* largest datagram a peek takes */
#define SK_QUEUE_MAX (64u << 20)     /* most bytes queued on one socket */

struct unix_diag_info {
	uint32_t ino, peer;
	uint8_t type, state, shutdown;
	uint32_t backlog;            /* listening: the backlog; else 0 */
	uint32_t pending;            /* listening: connections not accepted yet */
	uint8_t name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t name_len;
};

/* ---- the netns's Unix sockets ------------------------------------------- */

static void ux_parse(struct unix_diag_info *u, const struct unix_diag_msg *m, size_t len)
{
	const struct nlattr *a = (const void *)(m + 1);
	size_t left = len - sizeof(*m);

	memset(u, 0, sizeof(*u));
	u->ino = m->udiag_ino;
	u->type = m->udiag_type;
	u->state = m->udiag_state;
	while (left >= sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left) {
		const void *d = a + 1;
		size_t dl = a->nla_len - sizeof(*a);

		switch (a->nla_type) {
		case UNIX_DIAG_NAME:
			u->name_len = dl < sizeof(u->name) ? dl : sizeof(u->name);
			memcpy(u->name, d, u->name_len);
			break;
		case UNIX_DIAG_PEER:
			if (dl >= 4)
				memcpy(&u->peer, d, 4);
			break;
		case UNIX_DIAG_RQLEN:
			if (dl >= sizeof(struct unix_diag_rqlen) && u->state == 10 /* TCP_LISTEN */) {
				const struct unix_diag_rqlen *q = d;

				u->pending = q->udiag_rqueue;
				u->backlog = q->udiag_wqueue;
			}
			break;
		case UNIX_DIAG_SHUTDOWN:
			if (dl >= 1)
				u->shutdown = *(const uint8_t *)d;
			break;
		}
		size_t step = (size_t)NLA_ALIGN(a->nla_len);

		if (step >= left)
			break;
		left -= step;
		a = (const void *)((const char *)a + step);
	}
}

static int ux_load(struct objs *o, struct ferr *err)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = { 0 };
	cleanup_close int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	cleanup_free char *buf = malloc(1 << 16);

	if (fd < 0)
		return ferr_sys(err, errno, "NETLINK_SOCK_DIAG socket");
	if (!buf)
		return ferr_sys(err, ENOMEM, "socket list");
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_states = ~0u;
	req.r.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
	if (send(fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
		return ferr_sys(err, errno, "ask the kernel for its Unix sockets");
	for (;;) {
		ssize_t n = recv(fd, buf, 1 << 16, 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n < 0)
			return ferr_sys(err, errno, "read the kernel's Unix sockets");
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct unix_diag_info *nu;

			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				return ferr_new(err, e->error ? -e->error : EIO, "unix_diag: the kernel "
						"cannot list Unix sockets (CONFIG_UNIX_DIAG?)");
			}
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
				continue;
			nu = realloc(o->ux, (o->nux + 1) * sizeof(*nu));
			if (!nu)
				return ferr_sys(err, ENOMEM, "socket list");
			o->ux = nu;
			ux_parse(&o->ux[o->nux++], NLMSG_DATA(h), h->nlmsg_len - NLMSG_LENGTH(0));
		}
	}
}

/* Can NETLINK_SOCK_DIAG describe Unix sockets here? Asked once per dump. */
static bool ux_diag_works(struct objs *o)
{
	if (!o->ux_probed) {
		struct kerndat kd;

		memset(&kd, 0, sizeof(kd));
		o->ux_diag = kerndat_probe_feature(&kd, KD_UNIX_DIAG);
		o->ux_probed = true;
	}
	return o->ux_diag;
}

/* Without unix_diag: is inode ino a Unix socket of t's netns? Its
 * /proc/PID/net/unix lists them all, by inode. */
static bool ux_listed(struct target *t, uint64_t ino)
{
	cleanup_close int fd = openat(t->procfd, "net/unix", O_RDONLY | O_CLOEXEC);
	cleanup_fclose FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	char line[512];

	if (!f)
		return false;
	fd = -1; /* the FILE owns it */
	while (fgets(line, sizeof(line), f)) {
		unsigned long long i;

		if (sscanf(line, "%*s %*s %*s %*s %*s %*s %llu", &i) == 1 && i == ino)
			return true;
	}
	return false;
}

static const struct unix_diag_info *ux_find(const struct objs *o, uint64_t ino)
{
	for (size_t i = 0; i < o->nux; i++)
		if (o->ux[i].ino == ino)
			return &o->ux[i];
	return NULL;
}

/* ---- the object list ---------------------------------------------------- */

static Ferry__TreeItem *find_obj(const struct objs *o, uint64_t id)
{
	for (size_t i = 0; i < o->n; i++) {
		const Ferry__TreeItem *t = o->items[i];
		uint64_t oid = t->pipe ? t->pipe->id : t->sk ? t->sk->id : t->shm ? t->shm->id : 0;

		if (oid == id)
			return o->items[i];
	}
	return NULL;
}

enum obj_kind { OBJ_PIPE, OBJ_SK, OBJ_SHM };

/* A new object of o, of kind k, named by its inode id. */
static Ferry__TreeItem *new_item(struct objs *o, enum obj_kind k, uint64_t id, struct ferr *err)
{
	Ferry__TreeItem **ni = realloc(o->items, (o->n + 1) * sizeof(*ni));
	Ferry__TreeItem *t;

	if (ni)
		o->items = ni;
	if (!ni || !(t = calloc(1, sizeof(*t)))) {
		ferr_sys(err, ENOMEM, "objects");
		return NULL;
	}
	ferry__tree_item__init(t);
	o->items[o->n++] = t;
	if (k == OBJ_PIPE && (t->pipe = calloc(1, sizeof(*t->pipe)))) {
		ferry__pipe_obj__init(t->pipe);
		t->pipe->id = id;
	} else if (k == OBJ_SK && (t->sk = calloc(1, sizeof(*t->sk)))) {
		ferry__unix_sk__init(t->sk);
		t->sk->id = id;
	} else if (k == OBJ_SHM && (t->shm = calloc(1, sizeof(*t->shm)))) {
		ferry__shm_obj__init(t->shm);
		t->shm->id = id;
	} else {
		ferr_sys(err, ENOMEM, "objects");
		return NULL;
	}
	return t;
}

/* ---- pipes -------------------------------------------------------------- */

static int pipe_data(struct target *t, const Ferry__Fd *f, Ferry__PipeObj *p, struct ferr *err)
{
	cleanup_close int rd = -1, tmp_r = -1, tmp_w = -1;
	char path[64];
	int q[2], queued = 0, size;
	ssize_t n;

	snprintf(path, sizeof(path), "fd/%u", f->fd);
	rd = openat(t->procfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rd < 0)
		return ferr_sys(err, errno, "process %d fd %u: open the pipe to read its queue",
				t->pid, f->fd);
	size = fcntl(rd, F_GETPIPE_SZ);
	if (size <= 0 || ioctl(rd, FIONREAD, &queued) < 0)
		return ferr_sys(err, errno, "process %d fd %u: pipe size", t->pid, f->fd);
	p->size = (uint32_t)size;
	if (!queued)
		return 0;
	if (pipe2(q, O_CLOEXEC | O_NONBLOCK) < 0)
		return ferr_sys(err, errno, "pipe");
	tmp_r = q[0];
	tmp_w = q[1];
	if (fcntl(tmp_w, F_SETPIPE_SZ, size) < size)
		return ferr_sys(err, errno, "size a pipe to copy process %d fd %u", t->pid, f->fd);
	/* tee duplicates the buffers: the pipe keeps its data. */
	n = tee(rd, tmp_w, (size_t)queued, SPLICE_F_NONBLOCK);
	if (n != queued)
		return ferr_new(err, EIO, "process %d fd %u: copied %zd of the %d bytes queued in the "
				"pipe", t->pid, f->fd, n, queued);
	p->has_data = true;
	p->data.len = (size_t)queued;
	p->data.data = malloc((size_t)queued);
	if (!p->data.data)
		return ferr_sys(err, ENOMEM, "pipe data");
	if (read(tmp_r, p->data.data, (size_t)queued) != queued)
		return ferr_sys(err, errno ? errno : EIO, "read a pipe's copied data");
	return 0;
}

static int note_pipe(struct objs *o, struct target *t, Ferry__Fd *f, struct ferr *err)
{
	struct stat st;
	char path[64];
	Ferry__TreeItem *it;

	snprintf(path, sizeof(path), "fd/%u", f->fd);
	if (fstatat(t->procfd, path, &st, 0) < 0)
		return ferr_sys(err, errno, "process %d fd %u", t->pid, f->fd);
	f->has_obj_id = true;
	f->obj_id = st.st_ino;
	if (find_obj(o, st.st_ino))
		return 0;
	it = new_item(o, OBJ_PIPE, st.st_ino, err);
	if (!it)
		return -err->code;
	if (f->path && strncmp(f->path, "pipe:[", 6) != 0)
		it->pipe->fifo_path = strdup(f->path);
	return pipe_data(t, f, it->pipe, err);
}

/* ---- Unix sockets ------------------------------------------------------- */

static int add_msg(Ferry__UnixSk *s, const void *data, size_t len, const struct ucred *cr,
		   struct ferr *err)
{
	Ferry__SkMsg **nq = realloc(s->queue, (s->n_queue + 1) * sizeof(*nq));
	Ferry__SkMsg *m;

	if (!nq)
		return ferr_sys(err, ENOMEM, "socket queue");
	s->queue = nq;
	m = calloc(1, sizeof(*m));
	if (!m)
		return ferr_sys(err, ENOMEM, "socket queue");
	ferry__sk_msg__init(m);
	s->queue[s->n_queue++] = m;
	m->data.data = malloc(len ? len : 1);
	if (!m->data.data)
		return ferr_sys(err, ENOMEM, "socket queue");
	memcpy(m->data.data, data, len);
	m->data.len = len;
	if (cr) {
		m->has_cred_pid = m->has_cred_uid = m->has_cred_gid = true;
		m->cred_pid = (uint32_t)cr->pid;
		m->cred_uid = cr->uid;
		m->cred_gid = cr->gid;
	}
	return 0;
}

/* Peek every queued message of sk, one after the other. */
static int peek_queue(int sk, Ferry__UnixSk *s, const char *who, struct ferr *err)
{
	cleanup_free char *buf = malloc(SK_MSG_MAX);
	size_t total = 0;
	int off = 0;

	if (!buf)
		return ferr_sys(err, ENOMEM, "socket queue");
	for (;;) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(64 * sizeof(int))];
		} c;
		struct iovec iov = { buf, SK_MSG_MAX };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b,
				     .msg_controllen = sizeof(c.b) };
		const struct ucred *cr = NULL;
		ssize_t n;
		int ret;

		if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) < 0)
			return ferr_sys(err, errno, "%s: SO_PEEK_OFF", who);
		n = recvmsg(sk, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return ferr_sys(err, errno, "%s: peek at its queue", who);
		if (n == 0 && s->type == SOCK_STREAM)
			return 0;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
				int nfd = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));

				for (int i = 0; i < nfd; i++)
					close(((int *)CMSG_DATA(h))[i]);
				return ferr_new(err, EOPNOTSUPP, "%s has file descriptors queued in it "
						"(SCM_RIGHTS): ferry cannot dump them", who);
			}
			/* pid 0: the kernel recorded no credentials with it
			 * (neither end had SO_PASSCRED when it was sent). */
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS &&
			    ((const struct ucred *)CMSG_DATA(h))->pid)
				cr = (const struct ucred *)CMSG_DATA(h);
		}
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
			return ferr_new(err, EMSGSIZE, "%s: a queued message is larger than %u bytes",
					who, SK_MSG_MAX);
		total += (size_t)n;
		if (total > SK_QUEUE_MAX)
			return ferr_new(err, EMSGSIZE, "%s: more than %u bytes queued", who, SK_QUEUE_MAX);
		ret = add_msg(s, buf, (size_t)n, cr, err);
		if (ret)
			return ret;
		off += (int)n;
		if (n == 0)
			off++; /* never: an empty datagram is skipped by the kernel once peeked */
	}
}

static int sk_queue(struct target *t, const Ferry__Fd *f, Ferry__UnixSk *s, struct ferr *err)
{
	cleanup_close int sk = (int)syscall(SYS_pidfd_getfd, t->pidfd, (int)f->fd, 0);
	int peek_was = -1, pass_was = 0, on = 1, ret;
	socklen_t l = sizeof(int);
	char who[96];

	snprintf(who, sizeof(who), "process %d fd %u (a Unix socket)", t->pid, f->fd);
	if (sk < 0)
		return ferr_sys(err, errno, "%s: pidfd_getfd", who);
	if (getsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &peek_was, &l) < 0)
		peek_was = -1;
	l = sizeof(int);
	if (getsockopt(sk, SOL_SOCKET, SO_PASSCRED, &pass_was, &l) < 0)
		pass_was = 0;
	s->has_passcred = true;
	s->passcred = pass_was != 0;
	if (setsockopt(sk, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0)
		return ferr_sys(err, errno, "%s: SO_PASSCRED", who);
	ret = peek_queue(sk, s, who, err);
	/* The socket is the process's own: leave it as it was. */
	setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &peek_was, sizeof(peek_was));
	setsockopt(sk, SOL_SOCKET, SO_PASSCRED, &pass_was, sizeof(pass_was));
	return ret;
}

static int note_socket(struct objs *o, struct target *t, Ferry__Fd *f, struct ferr *err)
{
	const struct unix_diag_info *u;
	Ferry__TreeItem *it;
	Ferry__UnixSk *s;
	struct stat st;
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "fd/%u", f->fd);
	if (fstatat(t->procfd, path, &st, 0) < 0)
		return ferr_sys(err, errno, "process %d fd %u", t->pid, f->fd);
	if (!ux_diag_works(o))
		return 0; /* unsupported: refused before the freeze, or skipped */
	if (!o->ux_loaded) {
		ret = ux_load(o, err);
		if (ret)
			return ret;
		o->ux_loaded = true;
	}
	u = ux_find(o, st.st_ino);
	if (!u)
		return 0; /* not a Unix socket of this netns: stays unsupported */
	if (u->state == 10 && u->pending)
		return ferr_new(err, EOPNOTSUPP, "process %d fd %u: the listening Unix socket has %u "
				"connection(s) not accepted yet: ferry cannot dump them", t->pid, f->fd,
				u->pending);
	if (u->state != 1 && u->state != 7 && u->state != 10)
		return ferr_new(err, EOPNOTSUPP, "process %d fd %u: a Unix socket in state %u (being "
				"connected?): ferry cannot dump it", t->pid, f->fd, u->state);
	f->has_obj_id = true;
	f->obj_id = st.st_ino;
	if (find_obj(o, st.st_ino))
		return 0;
	it = new_item(o, OBJ_SK, st.st_ino, err);
	if (!it)
		return -err->code;
	s = it->sk;
	s->type = u->type;
	s->state = u->state;
	if (u->peer) {
		s->has_peer = true;
		s->peer = u->peer;
	}
	if (u->name_len) {
		s->has_name = true;
		s->name.len = u->name_len;
		s->name.data = malloc(u->name_len);
		if (!s->name.data)
			return ferr_sys(err, ENOMEM, "objects");
		memcpy(s->name.data, u->name, u->name_len);
	}
	if (u->state == 10) {
		s->has_backlog = true;
		s->backlog = u->backlog;
	}
	if (u->shutdown) {
		s->has_shutdown = true;
		s->shutdown = u->shutdown;
	}
	return u->state == 10 ? 0 : sk_queue(t, f, s, err);
}

int objs_sock_takeable(struct objs *o, struct target *t, const Ferry__Fd *f, bool *yes,
		       struct ferr *err)
{
	struct stat st;
	char path[64];
	int ret;

	*yes = false;
	snprintf(path, sizeof(path), "fd/%u", f->fd);
	if (fstatat(t->procfd, path, &st, 0) < 0)
		return 0; /* closed meanwhile */
	if (!ux_diag_works(o)) {
		if (!ux_listed(t, st.st_ino))
			return 0; /* another family: unsupported, named by the caller */
		return ferr_new(err, EOPNOTSUPP, "process %d fd %u (socket:[%llu]) is a Unix socket, "
				"and this kernel has no unix_diag (CONFIG_UNIX_DIAG; modprobe "
				"unix_diag): ferry cannot find its peer without it", t->pid, f->fd,
				(unsigned long long)st.st_ino);
	}
	if (!o->ux_loaded) {
		ret = ux_load(o, err);
		if (ret)
			return ret;
		o->ux_loaded = true;
	}
	*yes = ux_find(o, st.st_ino) != NULL;
	return 0;
}

int objs_note_fds(struct objs *o, struct target *t, struct fd_list *fl, struct ferr *err)
{
	for (size_t i = 0; i < fl->n; i++) {
		Ferry__Fd *f = fl->fds[i];
		int ret = 0;

		if (f->kind == FERRY__FD_KIND__FD_PIPE)
			ret = note_pipe(o, t, f, err);
		else if (f->kind == FERRY__FD_KIND__FD_SOCKET)
			ret = note_socket(o, t, f, err);
		if (ret)
			return ret;
		if (f->has_obj_id && fl->nr_unsupported)
			fl->nr_unsupported--;
	}
	return 0;
}

int objs_note_shm(struct objs *o, struct target *t, uint64_t start, uint64_t end, uint64_t pgoff,
		  uint64_t *id, struct ferr *err)
{
	Ferry__TreeItem *it;
	struct stat st;
	char path[64];

	snprintf(path, sizeof(path), "map_files/%" PRIx64 "-%" PRIx64, start, end);
	if (fstatat(t->procfd, path, &st, 0) < 0)
		return ferr_sys(err, errno, "process %d: shared mapping at 0x%" PRIx64, t->pid, start);
	*id = st.st_ino;
	it = find_obj(o, st.st_ino);
	if (!it) {
		it = new_item(o, OBJ_SHM, st.st_ino, err);
		if (!it)
			return -err->code;
	}
	if (!it->shm)
		return ferr_new(err, EINVAL, "process %d: object %" PRIu64 " is both a mapping and a "
				"pipe or socket", t->pid, (uint64_t)st.st_ino);
	if (pgoff + (end - start) > it->shm->size)
		it->shm->size = pgoff + (end - start);
	return 0;
}

int objs_check_peers(const struct objs *o, struct ferr *err)
{
	for (size_t i = 0; i < o->n; i++) {
		const Ferry__UnixSk *s = o->items[i]->sk;
		const Ferry__TreeItem *p;

		if (!s || !s->has_peer)
			continue;
		p = find_obj(o, s->peer);
		if (!p || !p->sk)
			return ferr_new(err, EOPNOTSUPP, "Unix socket %" PRIu64 " is connected to socket "
					"%" PRIu64 " outside the dumped tree: ferry cannot restore "
					"the connection", s->id, s->peer);
		if (p->sk->type != s->type)
			return ferr_new(err, EBADMSG, "Unix sockets %" PRIu64 " and %" PRIu64 " are peers "
					"of different types", s->id, s->peer);
		if (!(p->sk->has_peer && p->sk->peer == s->id) && !p->sk->has_name)
			return ferr_new(err, EOPNOTSUPP, "Unix socket %" PRIu64 " is connected to an "
					"unnamed socket that is not its peer: ferry cannot restore it",
					s->id);
	}
	return 0;
}

void objs_free(struct objs *o)
{
	for (size_t i = 0; i < o->n; i++)
		protobuf_c_message_free_unpacked(&o->items[i]->base, NULL);
	free(o->items);
	free(o->ux);
	memset(o, 0, sizeof(*o));
}
