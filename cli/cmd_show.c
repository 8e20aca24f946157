/* `ferry show`: decode an image directory for people (text) and programs
 * (--json), and optionally verify every page checksum through the chain. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/json.h"
#include "cli/cli.h"
#include "common/util.h"
#include "images/img.h"

void cmd_show_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry show DIR [--json] [--verify] [--runs]\n"
		"\n"
		"Decode the image directory DIR: inventory, parent chain, process and\n"
		"threads, file descriptors, VMAs (printed as /proc/PID/maps prints them)\n"
		"and a pagemap summary. The whole chain is validated on the way; a\n"
		"directory without inventory.img is refused as incomplete.\n"
		"\n"
		"  --json      print the same as one JSON object\n"
		"  --verify    also check the checksum of every page run through the chain;\n"
		"              exit 1 on any mismatch\n"
		"  --runs      list every page run of DIR's own pagemap, one per line:\n"
		"              START END PAGES data|zero|parent (addresses in hex)\n"
		"  -h, --help  this help\n"
		"\n"
		"Exit status: 0 valid, 1 invalid or unreadable images, 2 usage error.\n");
}

static const char *kind_name(Ferry__DumpKind k)
{
	return k == FERRY__DUMP_KIND__DUMP_FULL ? "dump" : "pre-dump";
}

static void hex_id(const ProtobufCBinaryData *id, char *out, size_t outlen)
{
	out[0] = '\0';
	for (size_t i = 0; i < id->len && 2 * i + 2 < outlen; i++)
		sprintf(out + 2 * i, "%02x", id->data[i]);
}

/* One VMA in the exact layout of /proc/PID/maps. */
static void format_vma(const Ferry__Vma *v, char *line, size_t len)
{
	int n = snprintf(line, len, "%08" PRIx64 "-%08" PRIx64 " %c%c%c%c %08" PRIx64 " %02x:%02x %" PRIu64,
			 v->start, v->end, v->prot & PROT_READ ? 'r' : '-',
			 v->prot & PROT_WRITE ? 'w' : '-', v->prot & PROT_EXEC ? 'x' : '-',
			 v->flags & MAP_SHARED ? 's' : 'p', v->pgoff, v->dev_major, v->dev_minor,
			 v->inode);
	const char *name = v->name ? v->name : v->path;

	if (n < 0 || (size_t)n >= len)
		return;
	/* The kernel ends the fixed columns with a space, then pads a name to
	 * column 73. */
	if (name && *name)
		snprintf(line + n, len - n, "%*s%s", n < 73 ? 73 - n : 1, "", name);
	else
		snprintf(line + n, len - n, " ");
}

static void show_text(struct img_image *img, Ferry__Process *proc, Ferry__Thread **th, size_t nth,
		      Ferry__Fd **fds, size_t nfds)
{
	const Ferry__Inventory *inv = img->inv;
	const Ferry__PagemapStats *st = inv->stats;
	char id[2 * IMG_ID_SIZE + 1], when[64], line[4200];
	time_t secs = (time_t)(inv->created_ns / 1000000000ull);
	struct tm tm;

	hex_id(&inv->id, id, sizeof(id));
	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	printf("image:     %s\n", img->path);
	printf("kind:      %s, format %u.%u, written by ferry %s\n", kind_name(inv->kind),
	       inv->format_major, inv->format_minor, inv->ferry_version);
	printf("id:        %s\n", id);
	printf("created:   %s\n", when);
	printf("source:    Linux %s %s, page size %u, root pid %u\n", inv->kernel ? inv->kernel : "?",
	       inv->arch, inv->page_size, inv->root_pid);
	if (inv->has_freeze_ns)
		printf("frozen:    %.3f ms\n", inv->freeze_ns / 1e6);
	if (inv->tracker)
		printf("tracker:   %s (armed for the next round)\n", inv->tracker);
	printf("chain:     %s", img->path);
	for (const struct img_image *p = img->parent; p; p = p->parent)
		printf(" -> %s (%s)", p->path, kind_name(p->inv->kind));
	printf("\n");
	if (proc) {
		printf("\nprocess:   pid %u, ppid %u, comm \"%s\", %zu thread%s\n", proc->pid, proc->ppid,
		       proc->comm ? proc->comm : "", nth, nth == 1 ? "" : "s");
		if (proc->cwd)
			printf("cwd:       %s\n", proc->cwd);
		if (proc->mm && proc->mm->exe_path)
			printf("exe:       %s\n", proc->mm->exe_path);
		if (proc->n_sigactions) {
			printf("handlers: ");
			for (size_t i = 0; i < proc->n_sigactions; i++)
				printf(" %u%s", proc->sigactions[i]->signo,
				       proc->sigactions[i]->handler == 1 ? "(ignored)" : "");
			printf("\n");
		}
		for (size_t i = 0; i < nth; i++)
			printf("  thread %u%s%s%s\n", th[i]->tid, th[i]->comm ? " \"" : "",
			       th[i]->comm ? th[i]->comm : "", th[i]->comm ? "\"" : "");
	}
	if (nfds) {
		printf("\nfiles (%zu):\n", nfds);
		for (size_t i = 0; i < nfds; i++)
			printf("  %3u  flags 0%o  pos %" PRIu64 "  %s\n", fds[i]->fd, fds[i]->flags,
			       fds[i]->pos, fds[i]->path ? fds[i]->path : "");
	}
	printf("\nvmas (%zu):\n", img->nr_vmas);
	for (size_t i = 0; i < img->nr_vmas; i++) {
		format_vma(img->vmas[i], line, sizeof(line));
		printf("%s\n", line);
	}
	if (st)
		printf("\npagemap:   %" PRIu64 " runs, %" PRIu64 " pages (%.1f MiB): data %" PRIu64
		       ", in parent %" PRIu64 ", zero %" PRIu64 "\n",
		       st->runs, st->pages, st->pages * (double)inv->page_size / (1 << 20),
		       st->data_pages, st->parent_pages, st->zero_pages);
}

/* An object of unsigned fields, names[i] = vals[i]. */
static void json_u64s(struct json *j, const char *key, const char *const *names,
		      const uint64_t *vals, size_t n)
{
	json_obj_begin(j, key);
	for (size_t i = 0; i < n; i++)
		json_u64(j, names[i], vals[i]);
	json_obj_end(j);
}

#define JSON_U64S(j, key, names, ...)                                                     \
	json_u64s(j, key, names, (const uint64_t[]){ __VA_ARGS__ }, ARRAY_SIZE(names))

/* What the kernel keeps per thread, as restore must set it again. */
static void show_json_thread(struct json *j, const Ferry__Thread *t)
{
	static const char *const rseq[] = { "ptr", "size", "signature" };
	static const char *const alt[] = { "sp", "size", "flags" };

	json_obj_begin(j, NULL);
	json_u64(j, "tid", t->tid);
	json_str(j, "comm", t->comm);
	json_u64(j, "sigmask", t->sigmask);
	json_u64(j, "pending", t->n_pending);
	json_u64(j, "clear_child_tid", t->clear_child_tid);
	json_u64(j, "robust_list", t->robust_list);
	json_u64(j, "robust_list_len", t->robust_list_len);
	if (t->rseq)
		JSON_U64S(j, "rseq", rseq, t->rseq->ptr, t->rseq->size, t->rseq->signature);
	if (t->altstack)
		JSON_U64S(j, "altstack", alt, t->altstack->sp, t->altstack->size,
			  t->altstack->flags);
	json_u64(j, "xsave_bytes", t->has_xsave ? t->xsave.len : 0);
	json_obj_end(j);
}

static void show_json_mm(struct json *j, const Ferry__MmState *mm)
{
	static const char *const names[] = {
		"start_code", "end_code", "start_data", "end_data", "start_brk", "brk",
		"start_stack", "arg_start", "arg_end", "env_start", "env_end", "auxv_bytes",
	};

	if (mm)
		JSON_U64S(j, "mm", names, mm->start_code, mm->end_code, mm->start_data,
			  mm->end_data, mm->start_brk, mm->brk, mm->start_stack, mm->arg_start,
			  mm->arg_end, mm->env_start, mm->env_end, mm->has_auxv ? mm->auxv.len : 0);
}

static void show_json_ids(struct json *j, const char *key, const uint32_t *v, size_t n)
{
	json_arr_begin(j, key);
	for (size_t i = 0; i < n; i++)
		json_u64(j, NULL, v[i]);
	json_arr_end(j);
}

static void show_json_creds(struct json *j, const Ferry__Creds *c)
{
	if (!c)
		return;
	json_obj_begin(j, "creds");
	show_json_ids(j, "uid", c->uid, c->n_uid);
	show_json_ids(j, "gid", c->gid, c->n_gid);
	show_json_ids(j, "groups", c->groups, c->n_groups);
	json_u64(j, "cap_eff", c->cap_eff);
	json_u64(j, "cap_prm", c->cap_prm);
	json_u64(j, "cap_inh", c->cap_inh);
	json_u64(j, "cap_bnd", c->cap_bnd);
	json_u64(j, "cap_amb", c->cap_amb);
	json_obj_end(j);
}

static void show_json(struct json *j, struct img_image *img, Ferry__Process *proc,
		      Ferry__Thread **th, size_t nth, Ferry__Fd **fds, size_t nfds)
{
	const Ferry__Inventory *inv = img->inv;
	char id[2 * IMG_ID_SIZE + 1], line[4200];

	hex_id(&inv->id, id, sizeof(id));
	json_str(j, "path", img->path);
	json_str(j, "kind", kind_name(inv->kind));
	json_u64(j, "format_major", inv->format_major);
	json_u64(j, "format_minor", inv->format_minor);
	json_str(j, "ferry_version", inv->ferry_version);
	json_str(j, "id", id);
	json_u64(j, "created_ns", inv->created_ns);
	json_str(j, "kernel", inv->kernel);
	json_str(j, "arch", inv->arch);
	json_u64(j, "page_size", inv->page_size);
	json_u64(j, "root_pid", inv->root_pid);
	if (inv->has_freeze_ns)
		json_u64(j, "freeze_ns", inv->freeze_ns);
	json_arr_begin(j, "chain");
	for (const struct img_image *p = img->parent; p; p = p->parent) {
		json_obj_begin(j, NULL);
		json_str(j, "path", p->path);
		json_str(j, "kind", kind_name(p->inv->kind));
		json_obj_end(j);
	}
	json_arr_end(j);
	if (proc) {
		json_obj_begin(j, "process");
		json_u64(j, "pid", proc->pid);
		json_u64(j, "ppid", proc->ppid);
		json_str(j, "comm", proc->comm);
		json_str(j, "cwd", proc->cwd);
		json_str(j, "exe", proc->mm ? proc->mm->exe_path : NULL);
		json_arr_begin(j, "threads");
		for (size_t i = 0; i < nth; i++)
			json_u64(j, NULL, th[i]->tid);
		json_arr_end(j);
		json_arr_begin(j, "thread_state");
		for (size_t i = 0; i < nth; i++)
			show_json_thread(j, th[i]);
		json_arr_end(j);
		if (proc->has_umask)
			json_u64(j, "umask", proc->umask);
		if (proc->has_personality)
			json_u64(j, "personality", proc->personality);
		show_json_mm(j, proc->mm);
		show_json_creds(j, proc->creds);
		json_arr_begin(j, "rlimits");
		for (size_t i = 0; i < proc->n_rlimits; i++) {
			static const char *const names[] = { "resource", "cur", "max" };
			const Ferry__Rlimit *rl = proc->rlimits[i];

			JSON_U64S(j, NULL, names, rl->resource, rl->cur, rl->max);
		}
		json_arr_end(j);
		json_u64(j, "shared_pending", proc->n_shared_pending);
		json_arr_begin(j, "sigactions");
		for (size_t i = 0; i < proc->n_sigactions; i++) {
			static const char *const names[] = { "signo", "handler", "flags", "restorer",
							     "mask" };
			const Ferry__Sigaction *sa = proc->sigactions[i];

			JSON_U64S(j, NULL, names, sa->signo, sa->handler, sa->flags, sa->restorer,
				  sa->mask);
		}
		json_arr_end(j);
		json_obj_end(j);
	}
	json_arr_begin(j, "fds");
	for (size_t i = 0; i < nfds; i++) {
		json_obj_begin(j, NULL);
		json_u64(j, "fd", fds[i]->fd);
		json_u64(j, "flags", fds[i]->flags);
		json_u64(j, "pos", fds[i]->pos);
		json_str(j, "path", fds[i]->path);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_arr_begin(j, "vmas");
	for (size_t i = 0; i < img->nr_vmas; i++) {
		format_vma(img->vmas[i], line, sizeof(line));
		json_str(j, NULL, line);
	}
	json_arr_end(j);
	if (inv->stats) {
		static const char *const names[] = { "runs", "pages", "data_pages", "parent_pages",
						     "zero_pages" };
		const Ferry__PagemapStats *st = inv->stats;

		JSON_U64S(j, "pagemap", names, st->runs, st->pages, st->data_pages,
			  st->parent_pages, st->zero_pages);
	}
	json_str(j, "tracker", inv->tracker);
}

static const char *sk_type(uint32_t t)
{
	return t == 1 ? "stream" : t == 2 ? "dgram" : t == 5 ? "seqpacket" : "?";
}

static const char *sk_state(uint32_t s)
{
	return s == 1 ? "connected" : s == 10 ? "listening" : s == 7 ? "unconnected" : "?";
}

static size_t sk_queued(const Ferry__UnixSk *s)
{
	size_t b = 0;

	for (size_t i = 0; i < s->n_queue; i++)
		b += s->queue[i]->data.len;
	return b;
}

static const char *mnt_kind(Ferry__MountKind k)
{
	switch (k) {
	case FERRY__MOUNT_KIND__MNT_ROOT:
		return "root";
	case FERRY__MOUNT_KIND__MNT_FRESH:
		return "anew";
	case FERRY__MOUNT_KIND__MNT_BIND:
		return "bind";
	case FERRY__MOUNT_KIND__MNT_EXTERNAL:
		return "external";
	default:
		return "?";
	}
}

/* A container's namespaces, mounts and tmpfs files (dump/ns.h). */
static void show_ns_text(const Ferry__TreeItem *t)
{
	if (t->ns)
		printf("  namespaces 0x%x  hostname \"%s\"%s%s%s\n", t->ns->flags,
		       t->ns->hostname ? t->ns->hostname : "",
		       t->ns->net_empty ? ", network made empty" : "",
		       t->ns->net_ext_key ? ", network external as " : "",
		       t->ns->net_ext_key ? t->ns->net_ext_key : "");
	else if (t->mnt)
		printf("  mount %u (in %u)  %s  %s %s%s%s\n", t->mnt->id, t->mnt->parent,
		       t->mnt->point, mnt_kind(t->mnt->kind), t->mnt->fstype ? t->mnt->fstype : "",
		       t->mnt->ext_key ? " as " : "", t->mnt->ext_key ? t->mnt->ext_key : "");
	else if (t->tfile)
		printf("  tmpfs file (mount %u)  %s  mode %o  %zu bytes\n", t->tfile->mnt,
		       t->tfile->path, t->tfile->mode, t->tfile->data.len);
	else if (t->pty)
		printf("  terminal %s (index %u%s)  %ux%u, its master outside the tree\n",
		       t->pty->path ? t->pty->path : "?", t->pty->index,
		       t->pty->has_mnt ? ", of the container's devpts" : "", t->pty->cols,
		       t->pty->rows);
}

/* tree.img: the processes of a tree dump and the objects they share. */
static void show_tree_text(Ferry__TreeItem **t, size_t n)
{
	printf("\ntree (%zu entries):\n", n);
	if (n && t[0]->proc && t[0]->proc->pidns_init)
		printf("  (a PID namespace of its own, the root its init: \"ns\" is each "
		       "process's PID in it)\n");
	for (size_t i = 0; i < n; i++) {
		const Ferry__TreeProc *p = t[i]->proc;
		const Ferry__PipeObj *pi = t[i]->pipe;
		const Ferry__UnixSk *s = t[i]->sk;

		if (p && p->has_ns_pid)
			printf("  process %u (ns %u)  ppid %u  pgid %u (ns %u)  sid %u (ns %u)  %s%s%s\n",
			       p->pid, p->ns_pid, p->ppid, p->pgid, p->ns_pgid, p->sid, p->ns_sid,
			       p->zombie ? "zombie" : *p->dir ? p->dir : "(this dir)",
			       p->files_with ? ", fd table shared" : "",
			       p->fs_with ? ", fs shared" : "");
		else if (p)
			printf("  process %u  ppid %u  pgid %u  sid %u  %s%s%s\n", p->pid, p->ppid,
			       p->pgid, p->sid, p->zombie ? "zombie" : *p->dir ? p->dir : "(this dir)",
			       p->files_with ? ", fd table shared" : "",
			       p->fs_with ? ", fs shared" : "");
		else if (pi)
			printf("  pipe %" PRIu64 "  %zu bytes queued, size %u%s%s\n", pi->id, pi->data.len,
			       pi->size, pi->fifo_path ? ", FIFO " : "", pi->fifo_path ? pi->fifo_path : "");
		else if (s)
			printf("  unix socket %" PRIu64 "  %s %s, peer %" PRIu64 ", %zu message%s "
			       "(%zu bytes) queued\n", s->id, sk_type(s->type), sk_state(s->state),
			       s->peer, s->n_queue, s->n_queue == 1 ? "" : "s", sk_queued(s));
		else if (t[i]->shm)
			printf("  shared memory %" PRIu64 "  %" PRIu64 " bytes\n", t[i]->shm->id,
			       t[i]->shm->size);
		else
			show_ns_text(t[i]);
	}
}

static void show_tree_json(struct json *j, Ferry__TreeItem **t, size_t n)
{
	json_arr_begin(j, "tree");
	for (size_t i = 0; i < n; i++) {
		const Ferry__TreeProc *p = t[i]->proc;

		json_obj_begin(j, NULL);
		if (p) {
			json_str(j, "kind", "process");
			json_u64(j, "pid", p->pid);
			json_u64(j, "ppid", p->ppid);
			json_u64(j, "pgid", p->pgid);
			json_u64(j, "sid", p->sid);
			json_str(j, "dir", p->dir);
			json_bool(j, "zombie", p->zombie);
			json_u64(j, "files_with", p->files_with);
			json_u64(j, "fs_with", p->fs_with);
			if (p->has_ns_pid) {
				json_bool(j, "pidns_init", p->pidns_init);
				json_u64(j, "ns_pid", p->ns_pid);
				json_u64(j, "ns_pgid", p->ns_pgid);
				json_u64(j, "ns_sid", p->ns_sid);
			}
		} else if (t[i]->pipe) {
			json_str(j, "kind", t[i]->pipe->fifo_path ? "fifo" : "pipe");
			json_u64(j, "id", t[i]->pipe->id);
			json_u64(j, "queued", t[i]->pipe->data.len);
			json_u64(j, "size", t[i]->pipe->size);
			json_str(j, "path", t[i]->pipe->fifo_path);
		} else if (t[i]->sk) {
			json_str(j, "kind", "unix");
			json_u64(j, "id", t[i]->sk->id);
			json_str(j, "type", sk_type(t[i]->sk->type));
			json_str(j, "state", sk_state(t[i]->sk->state));
			json_u64(j, "peer", t[i]->sk->peer);
			json_u64(j, "messages", t[i]->sk->n_queue);
			json_u64(j, "queued", sk_queued(t[i]->sk));
		} else if (t[i]->shm) {
			json_str(j, "kind", "shm");
			json_u64(j, "id", t[i]->shm->id);
			json_u64(j, "size", t[i]->shm->size);
		} else if (t[i]->ns) {
			json_str(j, "kind", "namespaces");
			json_u64(j, "flags", t[i]->ns->flags);
			json_str(j, "hostname", t[i]->ns->hostname);
			json_bool(j, "net_empty", t[i]->ns->net_empty);
			if (t[i]->ns->net_ext_key)
				json_str(j, "net_external", t[i]->ns->net_ext_key);
		} else if (t[i]->mnt) {
			json_str(j, "kind", "mount");
			json_u64(j, "id", t[i]->mnt->id);
			json_u64(j, "parent", t[i]->mnt->parent);
			json_str(j, "point", t[i]->mnt->point);
			json_str(j, "how", mnt_kind(t[i]->mnt->kind));
			json_str(j, "fstype", t[i]->mnt->fstype);
			json_str(j, "ext_key", t[i]->mnt->ext_key);
		} else if (t[i]->tfile) {
			json_str(j, "kind", "tmpfs_file");
			json_u64(j, "mount", t[i]->tfile->mnt);
			json_str(j, "path", t[i]->tfile->path);
			json_u64(j, "mode", t[i]->tfile->mode);
			json_u64(j, "bytes", t[i]->tfile->data.len);
		} else if (t[i]->pty) {
			json_str(j, "kind", "terminal");
			json_str(j, "path", t[i]->pty->path);
			json_u64(j, "index", t[i]->pty->index);
			json_u64(j, "rows", t[i]->pty->rows);
			json_u64(j, "cols", t[i]->pty->cols);
		}
		json_obj_end(j);
	}
	json_arr_end(j);
}

static void show_runs(const struct img_image *img)
{
	for (size_t i = 0; i < img->nr_runs; i++) {
		const struct img_run *r = &img->runs[i];

		printf("%" PRIx64 " %" PRIx64 " %" PRIu64 " %s\n", r->vaddr,
		       r->vaddr + r->nr_pages * img->page_size, r->nr_pages,
		       r->flags & IMG_RUN_IN_PARENT ? "parent" : r->flags & IMG_RUN_ZERO ? "zero" : "data");
	}
}

static int show(const char *dir, bool json, bool verify, bool runs)
{
	struct img_image *img = NULL;
	Ferry__Process *proc = NULL;
	Ferry__Thread **th = NULL;
	Ferry__Fd **fds = NULL;
	Ferry__TreeItem **tree = NULL;
	size_t nth = 0, nfds = 0, ntree = 0;
	struct img_verify_report rep;
	struct ferr err;
	int ret, vret = 0;

	ferr_clear(&err);
	ret = img_open(&img, dir, &err);
	if (!ret && img->inv->kind == FERRY__DUMP_KIND__DUMP_FULL) {
		ret = img_read_process(img, &proc, &err);
		if (!ret)
			ret = img_read_threads(img, &th, &nth, &err);
		if (!ret)
			ret = img_read_fds(img, &fds, &nfds, &err);
		if (!ret)
			ret = img_read_tree(img, &tree, &ntree, &err);
	}
	if (ret) {
		cli_error("show", "%s", err.msg);
		goto out;
	}
	if (verify)
		vret = img_verify(img, &rep, &err);
	if (runs) {
		show_runs(img);
	} else if (json) {
		struct json j;

		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		show_json(&j, img, proc, th, nth, fds, nfds);
		if (ntree)
			show_tree_json(&j, tree, ntree);
		if (verify) {
			json_obj_begin(&j, "verify");
			json_bool(&j, "ok", vret == 0);
			json_u64(&j, "images", rep.images);
			json_u64(&j, "runs_checked", rep.runs_checked);
			json_u64(&j, "bytes_checked", rep.bytes_checked);
			json_u64(&j, "bad_runs", rep.bad_runs);
			json_str(&j, "error", vret ? err.msg : NULL);
			json_obj_end(&j);
		}
		json_obj_end(&j);
		json_finish(&j);
	} else {
		show_text(img, proc, th, nth, fds, nfds);
		if (ntree)
			show_tree_text(tree, ntree);
		if (verify && !vret)
			printf("verify:    ok: %" PRIu64 " runs, %.1f MiB in %" PRIu64 " image%s\n",
			       rep.runs_checked, rep.bytes_checked / 1048576.0, rep.images,
			       rep.images == 1 ? "" : "s");
	}
	if (vret) {
		cli_error("show", "verify failed (%" PRIu64 " bad run%s): %s", rep.bad_runs,
			  rep.bad_runs == 1 ? "" : "s", err.msg);
		ret = vret;
	}
out:
	if (proc)
		ferry__process__free_unpacked(proc, NULL);
	img_free_entries(th, nth);
	img_free_entries(fds, nfds);
	img_free_entries(tree, ntree);
	img_close(img);
	return ret ? EXIT_FAIL : EXIT_OK;
}

struct show_cli {
	bool json, verify, runs;
};

static int show_opt(void *ctx, int c, char *arg)
{
	struct show_cli *s = ctx;

	(void)arg;
	if (c == 'j')
		s->json = true;
	else if (c == 'V')
		s->verify = true;
	else if (c == 'r')
		s->runs = true;
	return 0;
}

int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verify", no_argument, NULL, 'V' },
		{ "runs", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct show_cli c = { 0 };
	int first, ret;

	ret = cli_parse(argc, argv, "show", "h", opts, cmd_show_help, show_opt, &c, &first);
	if (ret)
		return ret == CLI_HELP_SHOWN ? EXIT_OK : ret;
	if (first + 1 != argc)
		return cli_usage_error("show", "expected exactly one image directory");
	if (c.runs && c.json)
		return cli_usage_error("show", "--runs prints lines, not JSON: choose one");
	return show(argv[first], c.json, c.verify, c.runs);
}
