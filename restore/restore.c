/* ferry restore, step by step: validate everything, create the stopped
 * child, rebuild its memory, threads and state, let it go. A failure at any
 * step after the child exists kills it: never a half-restored process. */
#include <elf.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "common/fault.h"
#include "common/log.h"
#include "proc/target.h"
#include "restore/rst.h"
#include "restore/validate.h"

#ifndef RSEQ_FLAG_UNREGISTER
#define RSEQ_FLAG_UNREGISTER 1
#endif
#define XSAVE_BUF (16u << 10)

/* Read and check the entries a restore needs, main thread first. */
int rst_load_entries(struct rst *r, struct ferr *err)
{
	size_t main_idx = 0;
	int ret;

	ret = img_read_process(r->img, &r->proc, err);
	if (!ret)
		ret = img_read_threads(r->img, &r->threads_img, &r->nr_threads, err);
	if (!ret)
		ret = img_read_fds(r->img, &r->fds, &r->nr_fds, err);
	if (!ret)
		ret = rst_fdkind_load(r, err);
	if (!ret)
		ret = rst_caller_get(&r->caller, err);
	if (!ret && r->proc->creds)
		ret = rst_creds_check(r->proc->creds, &r->caller, err);
	if (ret)
		return ret;
	if (!r->nr_threads)
		return ferr_new(err, EBADMSG, "%s has no threads", r->img->path);
	r->th = calloc(r->nr_threads, sizeof(*r->th));
	if (!r->th)
		return ferr_sys(err, ENOMEM, "threads");
	for (size_t i = 0; i < r->nr_threads; i++) {
		const Ferry__Thread *t = r->threads_img[i];

		if (t->gpregs.len != sizeof(struct user_regs_struct))
			return ferr_new(err, EBADMSG, "thread %u: registers of %zu bytes, want %zu",
					t->tid, t->gpregs.len, sizeof(struct user_regs_struct));
		if (t->tid == r->proc->pid)
			main_idx = i;
	}
	for (size_t i = 0, k = 1; i < r->nr_threads; i++)
		r->th[i == main_idx ? 0 : k++].img = r->threads_img[i];
	return rst_pstate_check(r, err);
}

/* In the child's first stop: where to inject, the CPU's xsave size, and
 * glibc's rseq area unregistered before ferry's memory leaves the child. */
static int take_over(struct rst *r, struct ferr *err)
{
	struct rst_thread *m = &r->th[0];
	struct __ptrace_rseq_configuration rc;
	struct user_regs_struct regs;
	static uint8_t xs[XSAVE_BUF];
	struct iovec iov = { xs, sizeof(xs) };
	uint64_t ip;
	long rv;
	int ret;

	m->tid = r->pid;
	if (ptrace(PTRACE_GETREGS, r->pid, NULL, &regs) < 0)
		return ferr_sys(err, errno, "PTRACE_GETREGS new process %d", r->pid);
	ret = inj_find_syscall(r->pid, r->procfd, &ip, err);
	if (ret)
		return ret;
	inj_init(&m->inj, r->pid, r->pid, &regs, ip);
	if (ptrace(PTRACE_GETREGSET, r->pid, (void *)NT_X86_XSTATE, &iov) == 0)
		r->xsave_size = iov.iov_len;
	for (size_t i = 0; i < r->nr_threads; i++) {
		const Ferry__Thread *t = r->th[i].img;

		if (t->has_xsave && t->xsave.len != r->xsave_size)
			return ferr_new(err, ENOEXEC, "thread %u has %zu bytes of XSAVE state, this CPU "
					"%zu: dumped on a CPU with other features", t->tid,
					t->xsave.len, r->xsave_size);
	}
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, r->pid, (void *)sizeof(rc), &rc) ==
	    (long)sizeof(rc) && rc.rseq_abi_pointer) {
		ret = rst_sys(m, "unregister ferry's rseq area", &rv, err, __NR_rseq,
			      rc.rseq_abi_pointer, rc.rseq_abi_size, RSEQ_FLAG_UNREGISTER,
			      rc.signature, 0, 0);
		if (ret)
			return ret;
	}
	return 0;
}

int rst_build_memory(struct rst *r, struct ferr *err)
{
	int ret = rst_child_create(r, err);

	return ret ? ret : rst_build_memory_on(r, err);
}

int rst_build_memory_on(struct rst *r, struct ferr *err)
{
	uint64_t t0 = now_ns();
	int ret = take_over(r, err);

	if (!ret)
		ret = rst_scratch_map(r, err);
	if (!ret)
		ret = rst_mm_clear(r, err);
	pr_debug("child ready for its memory in %.3f s", (now_ns() - t0) / 1e9);
	if (!ret)
		ret = rst_mm_build(r, err);
	pr_debug("address space built in %.3f s", (now_ns() - t0) / 1e9);
	return ret;
}

int rst_build_state(struct rst *r, struct ferr *err)
{
	uint64_t t0 = now_ns();
	int ret = 0;

	if (fault_hit("restore-fail-after-memory"))
		ret = ferr_new(err, EIO, "failing on purpose after the memory (FERRY_FAULT)");
	if (!ret)
		ret = rst_mm_fields(r, err);
	if (!ret)
		ret = rst_threads_create(r, err);
	if (!ret)
		ret = rst_process_state(r, err);
	pr_debug("threads and state in %.3f s", (now_ns() - t0) / 1e9);
	if (!ret)
		ret = rst_finish(r, err);
	return ret;
}

void rst_kill_child(struct rst *r)
{
	int status;

	if (r->pid <= 0)
		return;
	kill(r->pid, SIGKILL);
	/* Traced threads are reaped by their tracer, and the leader only
	 * after all of them: waiting for the leader alone would never end. */
	for (size_t i = 1; r->th && i < r->nr_threads; i++)
		if (r->th[i].tid > 0 && r->th[i].tid != r->pid)
			while (waitpid(r->th[i].tid, &status, __WALL) < 0 && errno == EINTR)
				;
	while (waitpid(r->pid, &status, __WALL) >= 0 && !WIFEXITED(status) && !WIFSIGNALED(status))
		;
	r->pid = 0;
}

void rst_free(struct rst *r)
{
	if (r->procfd >= 0)
		close(r->procfd);
	free(r->th);
	rst_caller_free(&r->caller);
	img_free_entries(r->threads_img, r->nr_threads);
	img_free_entries(r->fds, r->nr_fds);
	rst_files_free(&r->files);
	img_fdata_unmap(&r->fdata);
	if (r->proc)
		ferry__process__free_unpacked(r->proc, NULL);
	if (r->img)
		img_close(r->img);
}

static int restore_cold(const struct rst_opts *opts, struct rst_result *res, uint64_t t0,
			struct ferr *err)
{
	cleanup_val(rst) struct rst r = { .opts = opts, .res = res, .procfd = -1 };
	struct rst_check_report rep;
	Ferry__TreeItem **items = NULL;
	size_t nitems = 0;
	struct rst_ns ns = { .view.rootfd = -1 };
	struct kerndat kd;
	uint64_t t1;
	int ret;

	r.files.mode = opts->files;
	ret = img_open(&r.img, opts->dir, err);
	/* The tree first: a container's files are looked up in its root. */
	if (!ret)
		ret = img_read_tree(r.img, &items, &nitems, err);
	if (!ret)
		ret = rst_ns_load(&ns, items, nitems, opts, err);
	if (!ret && ns.view.rootfd >= 0)
		r.files.view = &ns.view;
	if (!ret)
		ret = rst_validate(r.img, &rep, true, &r.files, err);
	if (!ret)
		ret = rst_vdso_fits(r.img, err);
	if (!ret && nitems) {
		struct img_image *root = steal_ptr(r.img);

		/* The root's checks; the tree adds its other processes'. */
		res->validate_ns = now_ns() - t0;
		if (!opts->kd)
			rst_probe(&kd);
		ret = rst_restore_tree(opts, res, root, &r.files, items, nitems, &ns,
				       opts->kd ? opts->kd : &kd, err);
		rst_ns_free(&ns);
		img_free_entries(items, nitems);
		res->build_ns = now_ns() - t0 - res->validate_ns;
		return ret;
	}
	rst_ns_free(&ns);
	img_free_entries(items, nitems);
	if (!ret)
		ret = rst_load_entries(&r, err);
	if (ret)
		return ret;
	t1 = now_ns();
	res->validate_ns = t1 - t0;
	pr_info("validated %s: %" PRIu64 " runs, %zu files unchanged (by %s; %" PRIu64 " read, "
		"%.1f MiB in %.1f ms), %.3f s", opts->dir, rep.verify.runs_checked,
		rep.files_checked, rst_file_validation_name(opts->files), r.files.hashed_files,
		r.files.hashed_bytes / 1048576.0, r.files.hash_ns / 1e6, res->validate_ns / 1e9);
	/* Only what the page filler asks: the whole probe forks a traced
	 * child, and a migration's cold restore runs inside its downtime. */
	if (!opts->kd)
		rst_probe(&kd);
	r.kd = opts->kd ? opts->kd : &kd;

	ret = rst_build_memory(&r, err);
	if (!ret)
		ret = rst_build_state(&r, err);
	if (ret) {
		if (r.pid > 0)
			ferr_wrap(err, "new process %d (killed)", r.pid);
		rst_kill_child(&r);
		return ret;
	}
	res->pid = r.pid;
	res->threads = (uint32_t)r.nr_threads;
	res->build_ns = now_ns() - t1;
	return 0;
}

int rst_restore(const struct rst_opts *opts, struct rst_result *res, struct ferr *err)
{
	uint64_t t0 = now_ns();
	int ret;

	memset(res, 0, sizeof(*res));
	res->same_pid = true;
	ret = restore_cold(opts, res, t0, err);
	res->total_ns = now_ns() - t0;
	return ret;
}
