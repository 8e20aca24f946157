/* DUMP, PRE_DUMP and RESTORE as CRIU's RPC asks for them, run by ferry's
 * dump job (dump/job.h) and restorer (restore/restore.h). What ferry
 * cannot do yet is refused before the process is touched: options by name
 * (criu/opts.c), namespaces by inode (criu/ns.c). Failures go into the
 * answer's cr_errmsg and, as "Error" lines, into the log file runtimes
 * quote to their users. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <signal.h>
#include <sched.h>
#include <string.h>
#include <sys/wait.h>

#include "common/log.h"
#include "criu/jobs.h"
#include "criu/ns.h"
#include "criu/opts.h"
#include "dump/job.h"
#include "migrate/migrate.h"
#include "restore/restore.h"

/* The answer to a request that failed: its error in the log, as CRIU
 * writes one, and in cr_errmsg. */
static int answer_error(struct swrk_req *q, CriuReqType t, const struct ferr *e,
			struct ferr *err)
{
	pr_err("%s", e->msg);
	return rpc_send_error(q->s->sk, t, e, err);
}

/* CRIU's post-dump moment: the images are complete and the tree is still
 * frozen. The runtime says go, and it ends; a failure resumes it. */
static int post_dump_frozen(void *arg, const struct dump_frozen *f, struct ferr *err)
{
	struct swrk_req *q = arg;
	int ret = rpc_notify(q, "post-dump", 0, err);

	if (ret)
		return ferr_wrap(err, "the images in %s are complete; the process was resumed",
				 q->dir);
	dump_frozen_kill(f);
	return 0;
}

/* ps: the pages and images go to ferry's page server at ADDRESS:PORT
 * (runc's --page-server), over TLS 1.3 with the key file named by
 * FERRY_AUTH_KEY or the certificates FERRY_TLS_CERT, FERRY_TLS_KEY and
 * FERRY_TLS_CACERT in ferry's environment (the runtime's): CRIU's RPC has
 * no field for a key, and ferry's page server takes no connection without
 * one. */
static int to_page_server(struct swrk_req *q, struct dump_opts *d,
			  const struct dump_choice *choice, struct dump_result *r, struct ferr *err)
{
	const CriuPageServerInfo *ps = q->o->ps;
	struct mig_dest dest = { .handover_s = 60 };
	struct mig_result mr;
	char to[300];
	int ret;

	if (!ps->address || !ps->has_port || ps->port <= 0 || ps->port > 65535)
		return ferr_new(err, EINVAL, "option ps: an address and a port are needed");
	snprintf(to, sizeof(to), strchr(ps->address, ':') ? "[%s]:%d" : "%s:%d", ps->address,
		 ps->port);
	dest.to = to;
	dest.auth_key = getenv("FERRY_AUTH_KEY");
	dest.tls_cert = getenv("FERRY_TLS_CERT");
	dest.tls_key = getenv("FERRY_TLS_KEY");
	dest.tls_cacert = getenv("FERRY_TLS_CACERT");
	if (!dest.auth_key && !dest.tls_cert)
		return ferr_new(err, EACCES, "option ps (%s): ferry's page server takes only "
				"authenticated connections: name the key file in FERRY_AUTH_KEY (or "
				"the certificates in FERRY_TLS_CERT, FERRY_TLS_KEY, FERRY_TLS_CACERT) "
				"in the runtime's environment", to);
	memset(&mr, 0, sizeof(mr));
	ret = mig_dump_round(d, choice, swrk_kd(q->s), &dest, &mr, err);
	*r = mr.round;
	if (!ret)
		pr_info("sent to the page server at %s: %.1f MiB", to, mr.bytes / 1048576.0);
	mig_result_free(&mr);
	return ret;
}

static int dump_checked(struct swrk_req *q, bool pre, struct dump_result *r, struct ferr *err)
{
	struct dump_handover post = { post_dump_frozen, q };
	const CriuOpts *o = q->o;
	struct dump_choice choice = { "auto", "auto", "auto", "auto" };
	cleanup_free struct dump_ext_mnt *ext = NULL;
	struct dump_opts d = { 0 };
	int ret;

	/* CRIU dumps its caller when no pid is given; ferry never freezes the
	 * process that is waiting for its answer. */
	if (!o->has_pid || o->pid <= 0)
		return ferr_new(err, EINVAL, "no pid: ferry does not dump the runtime itself");
	/* First, as it is what stops a container today, whatever it asks. */
	ret = swrk_ns_refuse(o->pid, err);
	if (!ret)
		ret = swrk_opts_check(q, pre ? SWRK_PRE_DUMP : SWRK_DUMP, err);
	/* external: net[INO]:KEY (runc's, for a network namespace named by
	 * path in config.json), checked before anything is frozen. */
	for (size_t i = 0; !ret && i < o->n_external; i++)
		ret = dump_ns_external(&d.ns, o->external[i], err);
	if (!ret && d.ns.net_key) {
		ret = dump_ns_ext_net_pid(o->pid, &d.ns, err);
		if (!ret)
			pr_info("option external is honoured: the network namespace net:[%" PRIu64
				"] is not dumped, recorded as %s", d.ns.net_ino, d.ns.net_key);
	}
	if (ret)
		return ret;
	d.pid = o->pid;
	d.dir = q->dir;
	d.pre = pre;
	d.tree = true;
	d.leave_running = o->has_leave_running && o->leave_running;
	d.shell_job = o->has_shell_job && o->shell_job;
	d.orphan_pts = o->has_orphan_pts_master && o->orphan_pts_master;
	d.file_locks = o->has_file_locks && o->file_locks;
	d.parent = o->parent_img;
	/* runc's freezer cgroup (v1) or the container's cgroup (v2). */
	d.freeze_cgroup = o->freeze_cgroup;
	if (d.freeze_cgroup)
		pr_info("option freeze_cgroup is honoured: %s %s", d.freeze_cgroup,
			pre ? "is checked (a pre-dump freezes nothing as a whole)" :
			"is frozen while the tree is seized, then thawed; ptrace holds the tree "
			"for the dump");
	/* ext_mnt on a dump: {key = the mount point, val = its name}. */
	ext = calloc(o->n_ext_mnt ? o->n_ext_mnt : 1, sizeof(*ext));
	if (!ext)
		return ferr_sys(err, ENOMEM, "ext_mnt");
	for (size_t i = 0; i < o->n_ext_mnt; i++)
		ext[i] = (struct dump_ext_mnt){ o->ext_mnt[i]->key, o->ext_mnt[i]->val };
	d.ns.ext = ext;
	d.ns.nr_ext = o->n_ext_mnt;
	d.ns.empty_net = o->has_empty_ns && (o->empty_ns & CLONE_NEWNET);
	ret = dump_choose_backends(&d, &choice, swrk_kd(q->s), err);
	if (ret)
		return ret;
	/* CRIU runs pre-dump before a dump freezes anything, and none for a
	 * pre-dump. network-lock and network-unlock it runs only for a
	 * process with a network namespace of its own, which ferry refused. */
	if (!pre) {
		ret = rpc_notify(q, "pre-dump", 0, err);
		/* The runtime's hooks ran meanwhile: the tree may have grown. */
		if (!ret)
			ret = swrk_ns_refuse(o->pid, err);
		if (ret)
			return ret;
	}
	if (o->ps) {
		/* To ferry's page server: the tree ends once the server has
		 * its images on disk, and the runtime hears of it after. */
		ret = to_page_server(q, &d, &choice, r, err);
		if (!ret && !pre && !d.leave_running)
			ret = rpc_notify(q, "post-dump", 0, err);
		return ret;
	}
	/* A dump that ends the process calls back while it is still frozen. */
	ret = dump_job_round(&d, &choice, swrk_kd(q->s),
			     !pre && q->notify && !d.leave_running ? &post : NULL, r, err);
	if (ret) {
		ferr_wrap(err, "%s of process %d into %s (process %s)", pre ? "pre-dump" : "dump",
			  o->pid, q->dir, err->code == ESRCH ? "gone" : "left running");
		return ret;
	}
	pr_info("%s process %d into %s: %zu threads, %" PRIu64 " pages copied, %" PRIu64
		" in parent, tracker %s, %s", pre ? "pre-dumped" : "dumped", o->pid, q->dir,
		r->threads, r->data_pages, r->parent_pages, r->tracker ? r->tracker : "none",
		r->killed ? "process ended" : "process running");
	/* leave_running: the process runs on already; the runtime hears of it
	 * all the same. */
	if (!pre && d.leave_running) {
		ret = rpc_notify(q, "post-dump", 0, err);
		if (ret)
			return ferr_wrap(err, "the snapshot in %s is complete and the process runs "
					 "on", q->dir);
	}
	return 0;
}

int swrk_dump(struct swrk_req *q, bool pre, struct ferr *err)
{
	CriuReqType t = pre ? CRIU_REQ_TYPE__PRE_DUMP : CRIU_REQ_TYPE__DUMP;
	CriuResp resp = CRIU_RESP__INIT;
	CriuDumpResp dr = CRIU_DUMP_RESP__INIT;
	struct dump_result r;
	struct ferr e;

	memset(&r, 0, sizeof(r));
	ferr_clear(&e);
	if (dump_checked(q, pre, &r, &e))
		return answer_error(q, t, &e, err);
	resp.type = t;
	resp.success = true;
	if (!pre) {
		dr.has_restored = true;
		dr.restored = false;
		resp.dump = &dr;
	}
	return rpc_send(q->s->sk, &resp, err);
}

/* A restored process the runtime refused in a callback: ended again. */
static void kill_restored(pid_t pid)
{
	kill(pid, SIGKILL);
	/* Ferry's child unless it is the runtime's (rst_sibling): reap it if so. */
	waitpid(pid, NULL, WNOHANG);
}

/* orphan_pts_master: the container's terminal is a new pair, whose master
 * goes to the runtime with the orphan-pts-master callback (runc passes it
 * on to its console socket). */
static int pty_master(void *arg, int master, struct ferr *err)
{
	return rpc_notify_fd(arg, "orphan-pts-master", master, err);
}

/* CRIU's callbacks inside a restore: setup-namespaces and
 * post-setup-namespaces with the root's PID (runc runs its prestart hooks
 * there), pre-resume before the tree runs. */
static int restore_stage(void *arg, const char *name, pid_t pid, struct ferr *err)
{
	return rpc_notify(arg, name, strcmp(name, "pre-resume") ? pid : 0, err);
}

static int restore_checked(struct swrk_req *q, pid_t *pid, struct ferr *err)
{
	const CriuOpts *o = q->o;
	cleanup_free struct rst_inherit *inherit = NULL;
	cleanup_free struct rst_ext_mnt *ext = NULL;
	cleanup_free struct rst_join *join = NULL;
	struct rst_opts ro = { 0 };
	struct rst_result r;
	int ret;

	ret = swrk_opts_check(q, SWRK_RESTORE, err);
	if (ret)
		return ret;
	/* inherit_fd: fds the runtime gave this process (runc: extra files
	 * from fd 4 on), each in place of a dumped fd that was KEY. */
	inherit = calloc(o->n_inherit_fd ? o->n_inherit_fd : 1, sizeof(*inherit));
	if (!inherit)
		return ferr_sys(err, ENOMEM, "inherit_fd");
	for (size_t i = 0; i < o->n_inherit_fd; i++) {
		const InheritFd *in = o->inherit_fd[i];

		if (in->fd < 0 || fcntl(in->fd, F_GETFD) < 0)
			return ferr_new(err, EBADF, "inherit_fd %d (for %s) is not open in ferry: the "
					"runtime must pass it", in->fd, in->key);
		inherit[i] = (struct rst_inherit){ .fd = in->fd, .key = in->key };
	}
	ro.inherit = inherit;
	ro.nr_inherit = o->n_inherit_fd;
	/* ext_mnt on a restore: {key = the name, val = the path to bind}. */
	ext = calloc(o->n_ext_mnt ? o->n_ext_mnt : 1, sizeof(*ext));
	if (!ext)
		return ferr_sys(err, ENOMEM, "ext_mnt");
	for (size_t i = 0; i < o->n_ext_mnt; i++)
		ext[i] = (struct rst_ext_mnt){ o->ext_mnt[i]->key, o->ext_mnt[i]->val };
	ro.ext = ext;
	ro.nr_ext = o->n_ext_mnt;
	/* join_ns: {ns, ns_file}, types checked by swrk_opts_check; the
	 * restore opens and checks each file before it makes anything. */
	join = calloc(o->n_join_ns ? o->n_join_ns : 1, sizeof(*join));
	if (!join)
		return ferr_sys(err, ENOMEM, "join_ns");
	for (size_t i = 0; i < o->n_join_ns; i++) {
		join[i] = (struct rst_join){ o->join_ns[i]->ns, o->join_ns[i]->ns_file };
		pr_info("option join_ns is honoured: the tree joins %s namespace %s",
			join[i].ns, join[i].path);
	}
	ro.join = join;
	ro.nr_join = o->n_join_ns;
	ro.root = o->root && strcmp(o->root, "/") ? o->root : NULL;
	ro.dir = q->dir;
	ro.shell_job = o->has_shell_job && o->shell_job;
	ro.sibling = o->has_rst_sibling && o->rst_sibling;
	ro.kd = swrk_kd(q->s);
	ro.stage = restore_stage;
	ro.stage_arg = q;
	if (o->has_orphan_pts_master && o->orphan_pts_master) {
		ro.pty_master = pty_master;
		ro.pty_master_arg = q;
	}
	ret = rpc_notify(q, "pre-restore", 0, err);
	if (ret)
		return ret;
	ret = rst_restore(&ro, &r, err);
	if (ret)
		return ferr_wrap(err, "restore from %s", q->dir);
	pr_info("restored process %d from %s%s: %u threads, %" PRIu64 " pages%s", r.pid, q->dir,
		ro.sibling ? " as the runtime's child" : "", r.threads, r.pages,
		r.same_pid ? "" : "; PIDs changed");
	/* The process runs already. post-restore is where runtimes learn the
	 * PID (runc takes the process over there). */
	ret = rpc_notify(q, "post-restore", r.pid, err);
	if (!ret)
		ret = rpc_notify(q, "post-resume", 0, err);
	if (ret) {
		kill_restored(r.pid);
		return ferr_wrap(err, "restored process %d killed again", r.pid);
	}
	*pid = r.pid;
	return 0;
}

int swrk_restore(struct swrk_req *q, struct ferr *err)
{
	CriuResp resp = CRIU_RESP__INIT;
	CriuRestoreResp rr = CRIU_RESTORE_RESP__INIT;
	struct ferr e;
	pid_t pid = 0;

	ferr_clear(&e);
	if (restore_checked(q, &pid, &e))
		return answer_error(q, CRIU_REQ_TYPE__RESTORE, &e, err);
	resp.type = CRIU_REQ_TYPE__RESTORE;
	resp.success = true;
	rr.pid = pid;
	resp.restore = &rr;
	return rpc_send(q->s->sk, &resp, err);
}
