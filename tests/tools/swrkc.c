/* A container runtime's side of CRIU's RPC, as runc speaks it: a
 * SOCK_SEQPACKET socketpair, `FERRY swrk 3` forked and exec'd with its end
 * on fd 3, one criu_req after another on the same connection, each answer
 * read, NOTIFY callbacks answered (and printed), then the socket closed and
 * ferry waited for. One line per answer on stdout, for tests/integration/
 * swrk.sh to check:
 *   STEP ok [details]           STEP fail errno=N msg=...
 *   notify NAME pid=N [fd=tty|fd=other] (an fd came with it: closed after)
 *
 * usage: swrkc FERRY STEP...   where a STEP is a comma-separated list, its
 * request type first:
 *   version | features | check | dump | pre_dump | restore | type=N (any
 *   type number) | garbage (bytes that are no criu_req) | truncated (the
 *   first half of a DUMP request)
 * then options: dir=PATH (images_dir_fd, opened close-on-exec as runc
 * does), workdir=PATH, log=NAME, pid=N, parent=REL, leave, notify, sibling,
 * tcp, shell, locks, orphan (orphan_pts_master), root=PATH, freeze=PATH (freeze_cgroup), extmnt=K:V,
 * inherit=FD:KEY (FD is the client's, inherited by ferry, as runc's extra
 * files), external=SPEC (repeatable, up to 4), join=NS:FILE (join_ns,
 * repeatable, up to 4), emptyns=MASK, failnotify=NAME (answer that callback
 * with failure), level=N. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "proto/criu-rpc.pb-c.h"

struct step {
	CriuReq req;
	CriuOpts opts;
	CriuFeatures feat;
	ExtMountMap mnt;
	ExtMountMap *mnts[1];
	InheritFd inh;
	InheritFd *inhs[1];
	char *ext[4];
	JoinNamespace join[4];
	JoinNamespace *joins[4];
	const char *failnotify;
	int dirfd, workfd;
	enum { NORMAL, GARBAGE, TRUNCATED } kind;
};

static int parse_step(char *s, struct step *st)
{
	char *save = NULL, *tok = strtok_r(s, ",", &save);

	memset(st, 0, sizeof(*st));
	criu_req__init(&st->req);
	criu_opts__init(&st->opts);
	criu_features__init(&st->feat);
	ext_mount_map__init(&st->mnt);
	inherit_fd__init(&st->inh);
	st->dirfd = st->workfd = -1;
	st->req.opts = &st->opts;
	if (!tok)
		return -1;
	if (!strcmp(tok, "version")) {
		st->req.type = CRIU_REQ_TYPE__VERSION;
		st->req.opts = NULL; /* runc's VERSION has none */
	} else if (!strcmp(tok, "features")) {
		st->req.type = CRIU_REQ_TYPE__FEATURE_CHECK;
		st->feat.has_mem_track = st->feat.mem_track = true;
		st->feat.has_lazy_pages = st->feat.lazy_pages = true;
		st->req.features = &st->feat;
	} else if (!strcmp(tok, "check")) {
		st->req.type = CRIU_REQ_TYPE__CHECK;
	} else if (!strcmp(tok, "dump")) {
		st->req.type = CRIU_REQ_TYPE__DUMP;
	} else if (!strcmp(tok, "pre_dump")) {
		st->req.type = CRIU_REQ_TYPE__PRE_DUMP;
	} else if (!strcmp(tok, "restore")) {
		st->req.type = CRIU_REQ_TYPE__RESTORE;
	} else if (!strncmp(tok, "type=", 5)) {
		st->req.type = atoi(tok + 5);
	} else if (!strcmp(tok, "garbage")) {
		st->kind = GARBAGE;
	} else if (!strcmp(tok, "truncated")) {
		st->kind = TRUNCATED;
		st->req.type = CRIU_REQ_TYPE__DUMP;
		st->opts.log_file = (char *)"a-long-enough-log-file-name.log";
		st->opts.has_pid = true;
		st->opts.pid = 1;
	} else {
		fprintf(stderr, "swrkc: unknown request `%s`\n", tok);
		return -1;
	}
	while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
		char *v = strchr(tok, '=');

		if (v)
			*v++ = '\0';
		if (!strcmp(tok, "dir")) {
			st->dirfd = open(v, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (st->dirfd < 0) {
				perror(v);
				return -1;
			}
			st->opts.images_dir_fd = st->dirfd;
		} else if (!strcmp(tok, "workdir")) {
			st->workfd = open(v, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (st->workfd < 0) {
				perror(v);
				return -1;
			}
			st->opts.has_work_dir_fd = true;
			st->opts.work_dir_fd = st->workfd;
		} else if (!strcmp(tok, "log")) {
			st->opts.log_file = v;
			st->opts.has_log_level = true;
			st->opts.log_level = 4; /* runc's */
		} else if (!strcmp(tok, "level")) {
			st->opts.has_log_level = true;
			st->opts.log_level = atoi(v);
		} else if (!strcmp(tok, "pid")) {
			st->opts.has_pid = true;
			st->opts.pid = atoi(v);
		} else if (!strcmp(tok, "parent")) {
			st->opts.parent_img = v;
			st->opts.has_track_mem = st->opts.track_mem = true;
		} else if (!strcmp(tok, "leave")) {
			st->opts.has_leave_running = st->opts.leave_running = true;
		} else if (!strcmp(tok, "notify")) {
			st->opts.has_notify_scripts = st->opts.notify_scripts = true;
		} else if (!strcmp(tok, "sibling")) {
			st->opts.has_rst_sibling = st->opts.rst_sibling = true;
		} else if (!strcmp(tok, "tcp")) {
			st->opts.has_tcp_established = st->opts.tcp_established = true;
		} else if (!strcmp(tok, "shell")) {
			st->opts.has_shell_job = st->opts.shell_job = true;
		} else if (!strcmp(tok, "locks")) {
			st->opts.has_file_locks = st->opts.file_locks = true;
		} else if (!strcmp(tok, "orphan")) {
			st->opts.has_orphan_pts_master = st->opts.orphan_pts_master = true;
		} else if (!strcmp(tok, "root")) {
			st->opts.root = v;
		} else if (!strcmp(tok, "freeze")) {
			st->opts.freeze_cgroup = v;
		} else if (!strcmp(tok, "extmnt") && v && strchr(v, ':')) {
			st->mnt.key = v;
			st->mnt.val = strchr(v, ':') + 1;
			*strchr(v, ':') = '\0';
			st->mnts[0] = &st->mnt;
			st->opts.ext_mnt = st->mnts;
			st->opts.n_ext_mnt = 1;
		} else if (!strcmp(tok, "inherit") && v && strchr(v, ':')) {
			/* FD:KEY, FD one of ours that ferry inherits, as runc's extra files */
			st->inh.fd = atoi(v);
			st->inh.key = strchr(v, ':') + 1;
			st->inhs[0] = &st->inh;
			st->opts.inherit_fd = st->inhs;
			st->opts.n_inherit_fd = 1;
		} else if (!strcmp(tok, "external") && v && st->opts.n_external < 4) {
			/* criu's --external entries (runc: net[INO]:extRootNetNS) */
			st->ext[st->opts.n_external++] = v;
			st->opts.external = st->ext;
		} else if (!strcmp(tok, "join") && v && strchr(v, ':') && st->opts.n_join_ns < 4) {
			/* criu's join_ns {ns, ns_file} (runc: a pod's ipc and uts) */
			JoinNamespace *j = &st->join[st->opts.n_join_ns];

			join_namespace__init(j);
			j->ns_file = strchr(v, ':') + 1;
			*strchr(v, ':') = '\0';
			j->ns = v;
			st->joins[st->opts.n_join_ns++] = j;
			st->opts.join_ns = st->joins;
		} else if (!strcmp(tok, "emptyns") && v) {
			st->opts.has_empty_ns = true;
			st->opts.empty_ns = (uint32_t)strtoul(v, NULL, 0);
		} else if (!strcmp(tok, "failnotify")) {
			st->failnotify = v;
		} else {
			fprintf(stderr, "swrkc: unknown option `%s`\n", tok);
			return -1;
		}
	}
	return 0;
}

static int send_req(int sk, const CriuReq *req, size_t cut)
{
	size_t len = criu_req__get_packed_size(req);
	uint8_t *buf = malloc(len);
	ssize_t n;

	if (!buf)
		return -1;
	criu_req__pack(req, buf);
	n = send(sk, buf, cut ? cut : len, 0);
	free(buf);
	return n < 0 ? -1 : 0;
}

/* The restored process's parent, from /proc/PID/stat. */
static int ppid_of(int pid)
{
	char path[64], buf[512], *p;
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 1, " %*c %d", &ppid);
	fclose(f);
	return ppid;
}

/* Answers until the one that ends the step. -1: the connection failed. */
static int run_step(int sk, const char *name, struct step *st)
{
	static uint8_t buf[1 << 16];

	if (st->kind == GARBAGE) {
		static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12 };

		if (send(sk, junk, sizeof(junk), 0) < 0)
			return -1;
	} else if (send_req(sk, &st->req, st->kind == TRUNCATED ?
			    criu_req__get_packed_size(&st->req) / 2 : 0)) {
		return -1;
	}
	for (;;) {
		int fds[FDPASS_MAX_FDS];
		size_t nfds = 0;
		ssize_t n = fdpass_recv(sk, buf, sizeof(buf), fds, &nfds);
		bool tty = nfds && isatty(fds[0]);
		CriuResp *r;

		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		if (n < 0)
			errno = (int)-n;

		if (n <= 0) {
			printf("%s lost: %s\n", name, n ? strerror(errno) : "ferry closed the socket");
			return -1;
		}
		r = criu_resp__unpack(NULL, (size_t)n, buf);
		if (!r) {
			printf("%s lost: an answer that is not a criu_resp\n", name);
			return -1;
		}
		if (r->type == CRIU_REQ_TYPE__NOTIFY && r->success && r->notify) {
			CriuReq ans = CRIU_REQ__INIT;
			const char *s = r->notify->script ? r->notify->script : "";

			printf("notify %s pid=%d%s\n", s, r->notify->has_pid ? r->notify->pid : 0,
			       !nfds ? "" : tty ? " fd=tty" : " fd=other");
			ans.type = CRIU_REQ_TYPE__NOTIFY;
			ans.has_notify_success = true;
			ans.notify_success = !st->failnotify || strcmp(st->failnotify, s);
			criu_resp__free_unpacked(r, NULL);
			if (send_req(sk, &ans, 0))
				return -1;
			continue;
		}
		if (!r->success) {
			printf("%s fail type=%d errno=%d msg=%s\n", name, r->type,
			       r->has_cr_errno ? r->cr_errno : 0, r->cr_errmsg ? r->cr_errmsg : "");
		} else if (r->type == CRIU_REQ_TYPE__VERSION && r->version) {
			printf("%s ok %d.%d.%d name=%s\n", name, r->version->major_number,
			       r->version->minor_number,
			       r->version->has_sublevel ? r->version->sublevel : 0,
			       r->version->name ? r->version->name : "");
		} else if (r->type == CRIU_REQ_TYPE__FEATURE_CHECK && r->features) {
			printf("%s ok mem_track=%d lazy_pages=%d\n", name,
			       r->features->has_mem_track && r->features->mem_track,
			       r->features->has_lazy_pages && r->features->lazy_pages);
		} else if (r->type == CRIU_REQ_TYPE__RESTORE && r->restore) {
			int pid = r->restore->pid;

			printf("%s ok pid=%d parent=%s\n", name, pid,
			       ppid_of(pid) == getpid() ? "client" : "other");
		} else {
			printf("%s ok type=%d\n", name, r->type);
		}
		criu_resp__free_unpacked(r, NULL);
		fflush(stdout);
		return 0;
	}
}

int main(int argc, char **argv)
{
	int sk[2], status;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: swrkc FERRY STEP...\n");
		return 2;
	}
	if (socketpair(AF_LOCAL, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk) < 0) {
		perror("socketpair");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		/* As runc: the worker's end becomes fd 3, inherited. */
		if (dup2(sk[1], 3) < 0)
			_exit(127);
		execl(argv[1], argv[1], "swrk", "3", (char *)NULL);
		perror(argv[1]);
		_exit(127);
	}
	close(sk[1]);
	for (int i = 2; i < argc; i++) {
		char *name = strdup(argv[i]), *comma = strchr(name, ',');
		struct step st;
		int ret;

		if (comma)
			*comma = '\0';
		if (parse_step(argv[i], &st)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return 2;
		}
		ret = run_step(sk[0], name, &st);
		if (st.dirfd >= 0)
			close(st.dirfd);
		if (st.workfd >= 0)
			close(st.workfd);
		free(name);
		if (ret) {
			close(sk[0]);
			waitpid(pid, &status, 0);
			printf("ferry exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) :
			       128 + WTERMSIG(status));
			return 1;
		}
	}
	close(sk[0]);
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	printf("ferry exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}
