/* The objects a tree shares (tree.img), made by ferry before the first
 * process exists: pipes, Unix sockets and shared memory objects, each held at
 * an fd number above every fd the tree uses, so that every process, a fork
 * of ferry, inherits all of them and takes what it needs to its own fd
 * numbers (child.c). Queued data goes in once the processes exist (the
 * credentials a message was sent with name a process of the tree). */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "restore/rst.h"

static int place(struct rst_pool *p, int fd, struct ferr *err)
{
	int hi;

	if (fd < 0)
		return -1;
	hi = fcntl(fd, F_DUPFD_CLOEXEC, p->base);
	close(fd);
	if (hi < 0)
		return ferr_sys(err, errno, "move an object's fd above %d", p->base);
	if (hi > p->top)
		p->top = hi;
	return hi;
}

static struct rst_obj *obj_by_id(const struct rst_pool *p, uint64_t id)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->o[i].id == id)
			return &p->o[i];
	return NULL;
}

static socklen_t sk_addr(const ProtobufCBinaryData *name, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, name->data, name->len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name->len);
}

static bool abstract(const ProtobufCBinaryData *name)
{
	return name->len && name->data[0] == '\0';
}

/* A socket's name, bound again: a path must be absolute (the process's
 * working directory at bind time is not known), and a stale socket file
 * left there by the original is replaced, as criu does. */
static int sk_bind(int fd, const Ferry__UnixSk *s, struct ferr *err)
{
	struct sockaddr_un a;
	socklen_t len = sk_addr(&s->name, &a);
	char path[sizeof(a.sun_path) + 1];
	struct stat st;

	if (!abstract(&s->name)) {
		memcpy(path, a.sun_path, sizeof(a.sun_path));
		path[sizeof(a.sun_path)] = '\0';
		if (path[0] != '/')
			return ferr_new(err, EOPNOTSUPP, "Unix socket %" PRIu64 " was bound to the "
					"relative path `%s`: ferry cannot tell where", s->id, path);
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&a, len) < 0)
		return ferr_sys(err, errno, "bind Unix socket %" PRIu64 " to its name", s->id);
	return 0;
}

static int make_pipe(struct rst_pool *p, struct rst_obj *o, struct ferr *err)
{
	const Ferry__PipeObj *po = o->it->pipe;
	int q[2];

	if (po->fifo_path) {
		/* Held open read-write by ferry: opening either end later never
		 * blocks, and the queued data stays. */
		int fd = open(po->fifo_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		struct stat st;

		if (fd < 0)
			return ferr_sys(err, errno, "FIFO `%s`", po->fifo_path);
		if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
			close(fd);
			return ferr_new(err, EINVAL, "`%s` is no longer a FIFO", po->fifo_path);
		}
		o->fd[0] = place(p, fd, err);
		o->fd[1] = -1;
		return o->fd[0] < 0 ? -err->code : 0;
	}
	if (pipe2(q, O_CLOEXEC) < 0)
		return ferr_sys(err, errno, "pipe");
	o->fd[0] = place(p, q[0], err);
	o->fd[1] = o->fd[0] < 0 ? -1 : place(p, q[1], err);
	if (o->fd[0] < 0 || o->fd[1] < 0)
		return -err->code;
	return 0;
}

/* The same kind of object as the dumped one: MAP_SHARED|MAP_ANONYMOUS
 * memory, made in ferry and held by its file (map_files, as root), which
 * the processes map; so it is anonymous shared memory again, not a memfd
 * (a later dump would see a deleted file). */
static int make_shm(struct rst_pool *p, struct rst_obj *o, struct ferr *err)
{
	uint64_t size = o->it->shm->size;
	void *m = mmap(NULL, size, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char path[64];
	int fd;

	if (m == MAP_FAILED)
		return ferr_sys(err, errno, "a shared memory object of %" PRIu64 " bytes", size);
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)m,
		 (unsigned long)m + size);
	fd = open(path, O_RDWR | O_CLOEXEC);
	munmap(m, size);
	if (fd < 0)
		return ferr_sys(err, errno, "open the shared memory object through %s", path);
	o->fd[0] = place(p, fd, err);
	return o->fd[0] < 0 ? -err->code : 0;
}

static int make_socket(struct rst_pool *p, struct rst_obj *o, struct ferr *err);

/* The listening socket of the tree that s was accepted on: s is connected
 * and has the listener's name (an accepted socket shares its address). */
static struct rst_obj *listener_of(struct rst_pool *p, const Ferry__UnixSk *s)
{
	if (!s->has_name || s->state != 1)
		return NULL;
	for (size_t i = 0; i < p->n; i++) {
		const Ferry__UnixSk *l = p->o[i].it->sk;

		if (l && l->state == 10 && l->has_name && l->type == s->type &&
		    l->name.len == s->name.len && !memcmp(l->name.data, s->name.data, s->name.len))
			return &p->o[i];
	}
	return NULL;
}

/* A connection accepted on a listener of the tree is made again the same
 * way, connect and accept, not as a socketpair: the accepted end keeps the
 * listener's name (getsockname), which the other end sees as its peer's
 * (getpeername); the other end is bound first if it was. */
static int accept_pair(struct rst_pool *p, struct rst_obj *srv, struct rst_obj *cli,
		       struct rst_obj *l, struct ferr *err)
{
	const Ferry__UnixSk *ls = l->it->sk;
	struct sockaddr_un a;
	int c, s, ret = l->fd[0] < 0 ? make_socket(p, l, err) : 0;

	if (ret)
		return ret;
	c = socket(AF_UNIX, (int)ls->type | SOCK_CLOEXEC, 0);
	if (c < 0)
		return ferr_sys(err, errno, "socket");
	ret = cli->it->sk->has_name ? sk_bind(c, cli->it->sk, err) : 0;
	if (!ret && connect(c, (struct sockaddr *)&a, sk_addr(&ls->name, &a)) < 0)
		ret = ferr_sys(err, errno, "connect Unix socket %" PRIu64 " to listener %" PRIu64,
			       cli->id, l->id);
	s = ret ? -1 : accept4(l->fd[0], NULL, NULL, SOCK_CLOEXEC);
	if (!ret && s < 0)
		ret = ferr_sys(err, errno, "accept Unix socket %" PRIu64 " on listener %" PRIu64,
			       srv->id, l->id);
	if (ret) {
		close(c);
		return ret;
	}
	srv->fd[0] = place(p, s, err);
	cli->fd[0] = srv->fd[0] < 0 ? -1 : place(p, c, err);
	return srv->fd[0] < 0 || cli->fd[0] < 0 ? -err->code : 0;
}

static int make_socket(struct rst_pool *p, struct rst_obj *o, struct ferr *err)
{
	const Ferry__UnixSk *s = o->it->sk;
	struct rst_obj *peer = s->has_peer ? obj_by_id(p, s->peer) : NULL;
	struct rst_obj *l;
	int fd = -1, q[2], ret;

	if (o->fd[0] >= 0)
		return 0; /* made with its pair */
	if (peer && peer->it->sk && peer->it->sk->has_peer && peer->it->sk->peer == s->id &&
	    s->type != SOCK_DGRAM) {
		if ((l = listener_of(p, s)))
			return accept_pair(p, o, peer, l, err);
		if ((l = listener_of(p, peer->it->sk)))
			return accept_pair(p, peer, o, l, err);
	}
	if (peer && peer->it->sk && peer->it->sk->has_peer && peer->it->sk->peer == s->id) {
		if (socketpair(AF_UNIX, (int)s->type | SOCK_CLOEXEC, 0, q) < 0)
			return ferr_sys(err, errno, "socketpair for Unix sockets %" PRIu64 " and %"
					PRIu64, s->id, s->peer);
		o->fd[0] = place(p, q[0], err);
		peer->fd[0] = o->fd[0] < 0 ? -1 : place(p, q[1], err);
		return o->fd[0] < 0 || peer->fd[0] < 0 ? -err->code : 0;
	}
	if (s->state == 1 && !s->has_peer && s->type != SOCK_DGRAM) {
		/* Connected once, its peer closed since: what it still holds
		 * is read, then end of file. */
		if (socketpair(AF_UNIX, (int)s->type | SOCK_CLOEXEC, 0, q) < 0)
			return ferr_sys(err, errno, "socketpair for Unix socket %" PRIu64, s->id);
		o->fd[0] = place(p, q[0], err);
		o->fd[1] = o->fd[0] < 0 ? -1 : place(p, q[1], err); /* closed after the fill */
		return o->fd[0] < 0 || o->fd[1] < 0 ? -err->code : 0;
	}
	fd = socket(AF_UNIX, (int)s->type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferr_sys(err, errno, "socket");
	ret = s->has_name ? sk_bind(fd, s, err) : 0;
	if (!ret && s->state == 10 && listen(fd, (int)s->backlog) < 0)
		ret = ferr_sys(err, errno, "listen on Unix socket %" PRIu64, s->id);
	if (ret) {
		close(fd);
		return ret;
	}
	o->fd[0] = place(p, fd, err);
	return o->fd[0] < 0 ? -err->code : 0;
}

/* A datagram socket connected to a named one: connected once that one is
 * bound. */
static int connect_named(struct rst_pool *p, struct rst_obj *o, struct ferr *err)
{
	const Ferry__UnixSk *s = o->it->sk;
	struct rst_obj *peer = s->has_peer ? obj_by_id(p, s->peer) : NULL;
	struct sockaddr_un a;

	if (!peer || (peer->it->sk->has_peer && peer->it->sk->peer == s->id))
		return 0;
	if (!peer->it->sk->has_name)
		return ferr_new(err, EOPNOTSUPP, "Unix socket %" PRIu64 " is connected to an unnamed "
				"socket that is not its peer", s->id);
	if (connect(o->fd[0], (struct sockaddr *)&a, sk_addr(&peer->it->sk->name, &a)) < 0)
		return ferr_sys(err, errno, "connect Unix socket %" PRIu64 " to socket %" PRIu64,
				s->id, s->peer);
	return 0;
}

int rst_pool_create(struct rst_pool *p, Ferry__TreeItem *const *items, size_t n, int base,
		    struct ferr *err)
{
	int ret = 0;

	memset(p, 0, sizeof(*p));
	p->base = p->top = base;
	/* The objects: pipes, sockets and shared memory (not processes, nor
	 * the namespace items, restore/ns.c's). */
#define IS_OBJ(it) ((it)->pipe || (it)->sk || (it)->shm)
	for (size_t i = 0; i < n; i++)
		p->n += IS_OBJ(items[i]);
	p->o = calloc(p->n ? p->n : 1, sizeof(*p->o));
	if (!p->o)
		return ferr_sys(err, ENOMEM, "objects");
	for (size_t i = 0, k = 0; i < n; i++) {
		if (!IS_OBJ(items[i]))
			continue;
		p->o[k].it = items[i];
		p->o[k].id = items[i]->pipe ? items[i]->pipe->id : items[i]->sk ? items[i]->sk->id :
			     items[i]->shm->id;
		p->o[k].fd[0] = p->o[k].fd[1] = -1;
		k++;
	}
	for (size_t i = 0; !ret && i < p->n; i++) {
		struct rst_obj *o = &p->o[i];

		if (o->it->pipe)
			ret = make_pipe(p, o, err);
		else if (o->it->shm)
			ret = make_shm(p, o, err);
		else
			ret = make_socket(p, o, err);
	}
	for (size_t i = 0; !ret && i < p->n; i++)
		if (p->o[i].it->sk)
			ret = connect_named(p, &p->o[i], err);
	return ret;
}

/* ---- queued data --------------------------------------------------------- */

static int fill_pipe(struct rst_obj *o, struct ferr *err)
{
	const Ferry__PipeObj *po = o->it->pipe;
	int wfd = po->fifo_path ? o->fd[0] : o->fd[1];
	size_t off = 0;

	if (po->size && fcntl(wfd, F_SETPIPE_SZ, (int)po->size) < 0 &&
	    po->data.len > (size_t)fcntl(wfd, F_GETPIPE_SZ))
		return ferr_sys(err, errno, "size pipe %" PRIu64 " to %u bytes", o->id, po->size);
	fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
	while (off < po->data.len) {
		ssize_t n = write(wfd, po->data.data + off, po->data.len - off);

		if (n <= 0)
			return ferr_sys(err, n < 0 ? errno : EIO, "put %zu bytes back into pipe %"
					PRIu64, po->data.len, o->id);
		off += (size_t)n;
	}
	fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) & ~O_NONBLOCK);
	return 0;
}

/* Send one queued message to `to` from fd `from` (its peer) or, for a named
 * datagram socket with no peer of its own, from a socket of ferry's. */
/* The PID now of the process that had `dumped` at the dump. */
static pid_t pid_now(const struct rst_pool *p, pid_t dumped)
{
	for (size_t i = 0; i < p->nr_pids; i++)
		if (p->pids[i].dumped == dumped)
			return p->pids[i].now;
	return dumped;
}

static int send_msg(const struct rst_pool *p, int from, const struct sockaddr_un *to,
		    socklen_t tolen, const Ferry__SkMsg *m, struct ferr *err)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} c;
	struct iovec iov = { m->data.data, m->data.len };
	struct msghdr mh = { .msg_name = (void *)to, .msg_namelen = to ? tolen : 0,
			     .msg_iov = &iov, .msg_iovlen = 1 };
	struct ucred cr;
	ssize_t n;

	if (m->has_cred_pid) {
		cr.pid = pid_now(p, (pid_t)m->cred_pid);
		cr.uid = m->cred_uid;
		cr.gid = m->cred_gid;
		/* The sender may be gone: then ferry stands in for it. */
		if (kill(cr.pid, 0) < 0 && errno == ESRCH)
			cr.pid = getpid();
		memset(&c, 0, sizeof(c));
		mh.msg_control = c.b;
		mh.msg_controllen = sizeof(c.b);
		c.h.cmsg_level = SOL_SOCKET;
		c.h.cmsg_type = SCM_CREDENTIALS;
		c.h.cmsg_len = CMSG_LEN(sizeof(cr));
		memcpy(CMSG_DATA(&c.h), &cr, sizeof(cr));
	}
	n = sendmsg(from, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n != (ssize_t)m->data.len)
		return ferr_sys(err, n < 0 ? errno : EIO, "put a %zu-byte message back", m->data.len);
	return 0;
}

static int fill_socket(struct rst_pool *p, struct rst_obj *o, struct ferr *err)
{
	const Ferry__UnixSk *s = o->it->sk;
	struct rst_obj *peer = s->has_peer ? obj_by_id(p, s->peer) : NULL;
	struct sockaddr_un a, *to = NULL;
	socklen_t alen = 0;
	int from = -1, on = 1, ret = 0;
	bool own = false;

	if (s->passcred && setsockopt(o->fd[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0)
		return ferr_sys(err, errno, "SO_PASSCRED on Unix socket %" PRIu64, s->id);
	if (s->n_queue) {
		if (peer && peer->it->sk->has_peer && peer->it->sk->peer == s->id) {
			from = peer->fd[0];
		} else if (o->fd[1] >= 0) {
			from = o->fd[1];
		} else if (s->has_name && s->type == SOCK_DGRAM) {
			from = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			own = true;
			alen = sk_addr(&s->name, &a);
			to = &a;
			if (from < 0)
				return ferr_sys(err, errno, "socket");
		} else {
			return ferr_new(err, EOPNOTSUPP, "Unix socket %" PRIu64 " has data queued but no "
					"peer or name to send it from", s->id);
		}
	}
	for (size_t i = 0; !ret && i < s->n_queue; i++)
		ret = send_msg(p, from, to, alen, s->queue[i], err);
	if (own)
		close(from);
	if (ret)
		return ferr_wrap(err, "Unix socket %" PRIu64, s->id);
	if (o->fd[1] >= 0) {
		close(o->fd[1]);
		o->fd[1] = -1;
	}
	if (s->shutdown) {
		int how = (s->shutdown & 3) == 3 ? SHUT_RDWR : (s->shutdown & 1) ? SHUT_RD : SHUT_WR;

		if (shutdown(o->fd[0], how) < 0 && errno != ENOTCONN)
			return ferr_sys(err, errno, "shutdown Unix socket %" PRIu64, s->id);
	}
	return 0;
}

int rst_pool_fill(struct rst_pool *p, struct ferr *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < p->n; i++) {
		if (p->o[i].it->pipe && p->o[i].it->pipe->data.len)
			ret = fill_pipe(&p->o[i], err);
		else if (p->o[i].it->sk)
			ret = fill_socket(p, &p->o[i], err);
	}
	return ret;
}

int rst_pool_fd(const struct rst_pool *p, const Ferry__Fd *f)
{
	const struct rst_obj *o;

	if (!p || !f->has_obj_id || !(o = obj_by_id(p, f->obj_id)))
		return -1;
	if (o->it->pipe && !o->it->pipe->fifo_path)
		return (f->flags & O_ACCMODE) == O_WRONLY ? o->fd[1] : o->fd[0];
	if (o->it->pipe || o->it->sk)
		return o->fd[0];
	return -1;
}

int rst_pool_shm_fd(const struct rst_pool *p, uint64_t id)
{
	const struct rst_obj *o = p ? obj_by_id(p, id) : NULL;

	return o && o->it->shm ? o->fd[0] : -1;
}

void rst_pool_close(struct rst_pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		for (int k = 0; k < 2; k++)
			if (p->o[i].fd[k] >= 0)
				close(p->o[i].fd[k]);
	free(p->o);
	memset(p, 0, sizeof(*p));
}
