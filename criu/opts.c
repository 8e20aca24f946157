/* The options of CRIU's RPC, one rule each (docs/CONTAINERS.md has the same
 * table for people): honoured ones are read where they act (criu/jobs.c);
 * here the ones ferry refuses, and the ones it ignores, with the reason;
 * then the directories and the log file a request names. */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "criu/opts.h"
#include "restore/restore.h"

#define K_ALL (SWRK_DUMP | SWRK_PRE_DUMP | SWRK_RESTORE)

/* refuse: the kinds of request in which a set option is refused; in the
 * others it is ignored, and why says why either way. Set means: true for
 * a bool, present for a string, number or enum, non-empty when repeated. */
struct opt_rule {
	const char *name;
	unsigned refuse;
	const char *why;
};

#define NO_TCP "ferry does not dump or restore established TCP connections yet"
#define NO_NS "ferry dumps a container's own namespaces; it joins others only as join_ns " \
	"names them on a restore"
#define NO_MNT "ferry takes a container's mounts as it finds them (ext_mnt names the " \
	"external ones): nothing more to mark"
#define NO_CG "ferry does not dump or restore cgroups yet: a restored process stays in " \
	"the cgroup of the ferry that restored it (where the runtime put it)"

static const struct opt_rule rules[] = {
	{ "tcp_established", K_ALL, NO_TCP },
	{ "tcp_skip_in_flight", K_ALL, NO_TCP },
	{ "tcp_close", K_ALL, NO_TCP },
	{ "ext_unix_sk", K_ALL, "ferry refuses a Unix socket whose peer is outside the dumped "
	  "tree; it has no external sockets yet" },
	{ "unix_sk_ino", K_ALL, "ferry has no external Unix sockets yet" },
	{ "ps", SWRK_RESTORE, "a restore reads its pages from the images directory (the page "
	  "server's, after a dump sent there); ferry has no lazy pages" },
	{ "lazy_pages", K_ALL, "ferry has no post-copy (lazy) restore yet" },
	{ "tls", K_ALL, "ferry's TLS is its page server's (`ferry page-server`)" },
	{ "tls_cacert", 0, "it goes with tls, which is refused" },
	{ "tls_cacrl", 0, "it goes with tls, which is refused" },
	{ "tls_cert", 0, "it goes with tls, which is refused" },
	{ "tls_key", 0, "it goes with tls, which is refused" },
	{ "tls_no_cn_verify", 0, "it goes with tls, which is refused" },
	{ "exec_cmd", K_ALL, "ferry runs no command after a restore" },
	{ "veths", K_ALL, NO_NS },
	{ "lsm_profile", K_ALL, "ferry sets no LSM profile" },
	{ "lsm_mount_context", K_ALL, "ferry sets no LSM profile" },
	{ "leave_stopped", K_ALL, "ferry leaves a process running or ended, not stopped" },
	{ "unprivileged", K_ALL, "ferry runs as root" },
	{ "auto_dedup", K_ALL, "ferry never punches holes in parent images" },
	{ "auto_ext_mnt", 0, NO_MNT },
	{ "ext_sharing", 0, NO_MNT },
	{ "ext_masters", 0, NO_MNT },
	{ "skip_mnt", 0, NO_MNT },
	{ "enable_fs", 0, NO_MNT },
	{ "mntns_compat_mode", 0, NO_MNT },
	{ "manage_cgroups", 0, NO_CG },
	{ "manage_cgroups_mode", 0, NO_CG },
	{ "cg_root", 0, NO_CG },
	{ "cgroup_props", 0, NO_CG },
	{ "cgroup_props_file", 0, NO_CG },
	{ "cgroup_dump_controller", 0, NO_CG },
	{ "cgroup_yard", 0, NO_CG },
	{ "network_lock", 0, "there is no network namespace of the process's own to lock" },
	{ "evasive_devices", 0, "ferry reopens files by path and checks their content" },
	{ "link_remap", 0, "ferry keeps the content of deleted files in the images" },
	{ "force_irmap", 0, "ferry does not map inotify watches by inode" },
	{ "irmap_scan_paths", 0, "ferry does not map inotify watches by inode" },
	{ "ghost_limit", 0, "ferry keeps deleted files of any size" },
	{ "cpu_cap", 0, "ferry checks the CPU's xsave features itself" },
	{ "pre_dump_mode", 0, "ferry chooses how pages are read (`ferry check`)" },
	{ "pidfd_store_sk", 0, "ferry's tracker keeper holds the process's pidfd between "
	  "pre-dumps" },
	{ "track_mem", 0, "a ferry pre-dump always leaves a tracker armed" },
	{ "timeout", 0, "ferry has its own limits" },
	{ "weak_sysctls", 0, "ferry restores no sysctls" },
	{ "display_stats", 0, "ferry's figures are in the log at info level" },
	{ "skip_file_rwx_check", 0, "ferry checks files by content" },
	{ "status_fd", 0, "CRIU writes it only for a page server or lazy pages" },
};

/* What ferry honours (read in criu/jobs.c and swrk_req_begin), and the
 * options judged by their value below the table. */
static const char *const honoured[] = {
	"images_dir_fd", "images_dir", "pid", "leave_running", "shell_job", "file_locks",
	"log_level", "log_file", "log_to_stderr", "work_dir_fd", "notify_scripts", "parent_img",
	"rst_sibling", "inherit_fd", "root", "config_file", "ext_mnt", "empty_ns", "freeze_cgroup",
	"orphan_pts_master", "external", "join_ns",
};

const char *swrk_opts_unclassified(void)
{
	size_t nr = sizeof(rules) / sizeof(rules[0]), nh = sizeof(honoured) / sizeof(honoured[0]);

	for (size_t i = 0; i < nr; i++)
		if (!protobuf_c_message_descriptor_get_field_by_name(&criu_opts__descriptor,
								      rules[i].name))
			return rules[i].name;
	for (unsigned i = 0; i < criu_opts__descriptor.n_fields; i++) {
		const char *name = criu_opts__descriptor.fields[i].name;
		bool known = false;

		for (size_t k = 0; k < nr && !known; k++)
			known = !strcmp(rules[k].name, name);
		for (size_t k = 0; k < nh && !known; k++)
			known = !strcmp(honoured[k], name);
		if (!known)
			return name;
	}
	return NULL;
}

static bool is_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *p = (const char *)m + f->offset;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)((const char *)m + f->quantifier_offset) > 0;
	if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(void *const *)p != NULL;
	if (f->quantifier_offset && !*(const protobuf_c_boolean *)((const char *)m +
								   f->quantifier_offset))
		return false;
	if (f->type == PROTOBUF_C_TYPE_BOOL)
		return *(const protobuf_c_boolean *)p;
	return true;
}

int swrk_opts_check(struct swrk_req *q, enum swrk_kind kind, struct ferr *err)
{
	const ProtobufCMessage *m = &q->o->base;

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(&criu_opts__descriptor,
									 rules[i].name);

		if (!f || !is_set(m, f))
			continue;
		if (rules[i].refuse & kind)
			return ferr_new(err, EOPNOTSUPP, "option %s is refused: %s", rules[i].name,
					rules[i].why);
		pr_info("option %s is ignored: %s", rules[i].name, rules[i].why);
	}
	/* runc names /etc/criu/runc.conf whether or not it exists: a file
	 * that is not there configures nothing. */
	if (q->o->config_file) {
		if (access(q->o->config_file, F_OK) == 0)
			return ferr_new(err, EOPNOTSUPP, "option config_file (%s) is refused: ferry "
					"reads no CRIU configuration file", q->o->config_file);
		pr_info("option config_file is ignored: %s does not exist", q->o->config_file);
	}
	/* empty_ns: runc always asks for the network namespace (it sets
	 * none up); the others ferry would have to leave unset, which it
	 * does not do. */
	if (q->o->has_empty_ns && (q->o->empty_ns & ~(uint32_t)CLONE_NEWNET))
		return ferr_new(err, EOPNOTSUPP, "option empty_ns (%#x) is refused: ferry makes "
				"only a network namespace empty (CLONE_NEWNET)", q->o->empty_ns);
	/* external: on a dump, net[INO]:KEY only (each entry judged by
	 * dump_ns_external() in criu/jobs.c); a restore joins an external
	 * network namespace through inherit_fd, as runc asks it. */
	if (kind == SWRK_RESTORE && q->o->n_external)
		return ferr_new(err, EOPNOTSUPP, "option external (`%s`) is refused on a restore: "
				"ferry joins an external network namespace through inherit_fd "
				"{key, fd}, and takes no other external objects", q->o->external[0]);
	/* join_ns (runc: the namespaces config.json names by path other than
	 * the network and PID ones, a pod's IPC and UTS): joined on a
	 * restore, each type judged here, its file when the restore loads. */
	for (size_t i = 0; i < q->o->n_join_ns; i++) {
		const JoinNamespace *j = q->o->join_ns[i];
		int flag;

		if (kind != SWRK_RESTORE) {
			pr_info("option join_ns is ignored: it acts on a restore");
			break;
		}
		if (rst_join_flag(j->ns, &flag, err))
			return ferr_wrap(err, "option join_ns (%s:%s)", j->ns, j->ns_file);
		if (j->extra_opt)
			pr_info("option join_ns: extra_opt `%s` for %s is ignored (criu's is for a "
				"user namespace)", j->extra_opt, j->ns);
	}
	return 0;
}

/* The runtime's fd N as a path: its own path where that is the same
 * directory (messages name it), else /proc/PEER/fd/N. */
static int peer_dir(struct swrk_req *q, int fd, const char *what, char *out, size_t len,
		    struct ferr *err)
{
	char link[64], path[PATH_MAX];
	struct stat a, b;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/fd/%d", q->s->peer, fd);
	if (stat(link, &a) < 0)
		return ferr_sys(err, errno, "%s_fd %d of the runtime (%s)", what, fd, link);
	if (!S_ISDIR(a.st_mode))
		return ferr_new(err, ENOTDIR, "%s_fd %d of the runtime is not a directory", what, fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		if (path[0] == '/' && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino && (size_t)n < len) {
			memcpy(out, path, (size_t)n + 1);
			return 0;
		}
	}
	snprintf(out, len, "%s", link);
	return 0;
}

/* CRIU's levels (0 messages, 1 errors, 2 warnings, 3 info, 4 debug) as ferry's. */
static enum log_level level_of(int criu)
{
	return criu <= 1 ? LOG_ERROR : criu == 2 ? LOG_WARN : criu == 3 ? LOG_INFO : LOG_DEBUG;
}

int swrk_req_begin(struct swrk_req *q, bool need_dir, struct ferr *err)
{
	const CriuOpts *o = q->o;
	char work[PATH_MAX];
	int ret, fd;

	q->dir[0] = '\0';
	if (o->images_dir_fd >= 0)
		ret = peer_dir(q, o->images_dir_fd, "images_dir", q->dir, sizeof(q->dir), err);
	else if (o->images_dir)
		ret = snprintf(q->dir, sizeof(q->dir), "%s", o->images_dir) >= (int)sizeof(q->dir) ?
			ferr_new(err, ENAMETOOLONG, "images_dir is too long") : 0;
	else
		ret = need_dir ? ferr_new(err, EINVAL, "neither images_dir_fd nor images_dir was "
					  "given") : 0;
	if (ret)
		return ret;
	q->notify = o->has_notify_scripts && o->notify_scripts;
	if (!o->log_file || (o->has_log_to_stderr && o->log_to_stderr))
		return 0;
	if (strchr(o->log_file, '/') || !strcmp(o->log_file, "..") || !o->log_file[0])
		return ferr_new(err, EINVAL, "log_file `%s` must be a plain name (in the work "
				"directory)", o->log_file);
	if (o->has_work_dir_fd) {
		ret = peer_dir(q, o->work_dir_fd, "work_dir", work, sizeof(work), err);
		if (ret)
			return ret;
	} else if (q->dir[0]) {
		snprintf(work, sizeof(work), "%s", q->dir);
	} else {
		return ferr_new(err, EINVAL, "log_file needs images_dir_fd or work_dir_fd");
	}
	{
		cleanup_close int dfd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0)
			return ferr_sys(err, errno, "open the work directory %s", work);
		fd = openat(dfd, o->log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
			    0600);
		if (fd < 0)
			return ferr_sys(err, errno, "create the log file %s/%s", work, o->log_file);
	}
	q->log = fdopen(fd, "w");
	if (!q->log) {
		close(fd);
		return ferr_sys(err, errno, "the log file %s/%s", work, o->log_file);
	}
	log_tee(q->log, level_of(o->log_level));
	return 0;
}

void swrk_req_end(struct swrk_req *q)
{
	if (!q->log)
		return;
	log_tee(NULL, LOG_ERROR);
	fclose(q->log);
	q->log = NULL;
}
