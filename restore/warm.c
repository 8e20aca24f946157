/* Warm restore (restore.h): build the process while a migration's rounds
 * arrive, so the final step only applies what the last round changed.
 *
 * The first round is restored as a cold restore builds memory (child, its
 * address space cleared, every VMA mapped, pages by UFFDIO_COPY), minus the
 * process state it does not have yet: the child is created with no fds and
 * the default session, cwd and umask, which the final step sets by injected
 * syscalls. Each later round (and the final dump) is applied as a difference
 * against the one before:
 *   - a VMA no longer there, or different (bounds, flags, file, offset), is
 *     unmapped; a new or different one is mapped and filled whole from the
 *     chain;
 *   - in a VMA that stayed, only the round's own data and zero runs are
 *     written (through /proc/PID/mem, which writes whatever the protection),
 *     and pages the previous round had but this one has not (dropped by the
 *     process: MADV_DONTNEED, ...) are dropped again.
 * Memory is at its dumped protection only at the end. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"
#include "proc/fds.h"
#include "restore/rst.h"
#include "restore/validate.h"

#define ZERO_CHUNK (1u << 20)

struct rst_warm {
	struct rst r;
	struct rst_opts opts;
	struct rst_result res;
	Ferry__Process synth;       /* what the child is created with */
	struct kerndat kd;          /* probed once, at round one */
	int memfd;                  /* /proc/PID/mem of the child */
	uint8_t **maps;             /* pages.img of each image of the chain, by depth */
	uint64_t *map_len;
	unsigned depth;
	void *zeroes;
};

static bool special(const Ferry__Vma *v)
{
	return v->kind == FERRY__VMA_KIND__VMA_VDSO || v->kind == FERRY__VMA_KIND__VMA_VVAR ||
	       v->kind == FERRY__VMA_KIND__VMA_VSYSCALL || v->kind == FERRY__VMA_KIND__VMA_SPECIAL;
}

/* Can a page at the same address stay as it is when VMA a becomes VMA b?
 * Anonymous private memory does not care where the kernel draws VMA
 * boundaries (a neighbour mapped or unmapped moves them); a file mapping
 * must map the same file at the same offset for that address. */
static bool compatible(const Ferry__Vma *a, const Ferry__Vma *b)
{
	if (a->kind != b->kind || a->flags != b->flags ||
	    (a->path ? !b->path || strcmp(a->path, b->path) : !!b->path))
		return false;
	if ((a->flags & MAP_SHARED) && a->prot != b->prot)
		return false;
	return a->kind != FERRY__VMA_KIND__VMA_FILE ||
	       a->start - a->pgoff == b->start - b->pgoff;
}

/* The end of the part of [pos, end) starting at pos that VMAs of img
 * compatible with v cover (pos itself if none does). */
static uint64_t covered_until(const struct img_image *img, const Ferry__Vma *v, uint64_t pos,
			      uint64_t end)
{
	bool more = true;

	while (more && pos < end) {
		more = false;
		for (size_t i = 0; i < img->nr_vmas; i++) {
			const Ferry__Vma *o = img->vmas[i];

			if (o->start <= pos && pos < o->end && !special(o) &&
			    compatible(o, v)) {
				pos = o->end < end ? o->end : end;
				more = true;
				break;
			}
		}
	}
	return pos;
}

/* The start of the next part of [pos, end) that such VMAs cover (end if
 * none). */
static uint64_t uncovered_until(const struct img_image *img, const Ferry__Vma *v, uint64_t pos,
				uint64_t end)
{
	uint64_t next = end;

	for (size_t i = 0; i < img->nr_vmas; i++) {
		const Ferry__Vma *o = img->vmas[i];

		if (special(o) || !compatible(o, v) || o->end <= pos ||
		    o->start >= next)
			continue;
		next = o->start > pos ? o->start : pos;
	}
	return next;
}

static void unmap_sources(struct rst_warm *w)
{
	for (unsigned d = 0; d < w->depth; d++)
		if (w->maps[d])
			munmap(w->maps[d], w->map_len[d]);
	free(w->maps);
	free(w->map_len);
	w->maps = NULL;
	w->map_len = NULL;
	w->depth = 0;
}

static const uint8_t *source(struct rst_warm *w, const struct img_image *img, struct ferr *err)
{
	if (img->depth >= w->depth || !img->pages_size) {
		ferr_new(err, EBADMSG, "%s/pages.img has no data", img->path);
		return NULL;
	}
	if (!w->maps[img->depth]) {
		void *m = mmap(NULL, img->pages_size, PROT_READ, MAP_SHARED, img->pages_fd, 0);

		if (m == MAP_FAILED) {
			ferr_sys(err, errno, "map %s/pages.img", img->path);
			return NULL;
		}
		w->maps[img->depth] = m;
		w->map_len[img->depth] = img->pages_size;
	}
	return w->maps[img->depth];
}

static int put(struct rst_warm *w, uint64_t addr, const void *buf, uint64_t len,
	       struct ferr *err)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(w->memfd, p, len, (off_t)addr);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ferr_sys(err, n < 0 ? errno : EIO, "write 0x%" PRIx64 " in the new process",
					addr);
		p += n;
		addr += (uint64_t)n;
		len -= (uint64_t)n;
		w->res.bytes += (uint64_t)n;
	}
	return 0;
}

static int put_zeroes(struct rst_warm *w, uint64_t addr, uint64_t len, struct ferr *err)
{
	while (len) {
		uint64_t n = len < ZERO_CHUNK ? len : ZERO_CHUNK;
		int ret = put(w, addr, w->zeroes, n, err);

		if (ret)
			return ret;
		addr += n;
		len -= n;
	}
	return 0;
}

struct run_key {
	const struct img_image *img;
	uint64_t addr;
};

static bool run_ends_at_or_below(const void *ctx, size_t i)
{
	const struct run_key *k = ctx;
	const struct img_run *r = &k->img->runs[i];

	return r->vaddr + r->nr_pages * k->img->page_size <= k->addr;
}

/* The first run of img ending after addr (runs are in address order). */
static size_t first_run(const struct img_image *img, uint64_t addr)
{
	struct run_key k = { img, addr };

	return bsearch_first(img->nr_runs, run_ends_at_or_below, &k);
}

/* Pages [a, b) of the top image: resolved through the chain when whole
 * (a fresh mapping: zero pages are already zero), else only where the top
 * image itself has data or zero runs. */
static int write_span(struct rst_warm *w, uint64_t a, uint64_t b, bool whole, struct ferr *err)
{
	const struct img_image *top = w->r.img;
	uint64_t ps = top->page_size;

	for (size_t i = first_run(top, a); i < top->nr_runs && top->runs[i].vaddr < b; i++) {
		const struct img_run *run = &top->runs[i];
		uint64_t s = run->vaddr, e = run->vaddr + run->nr_pages * ps;

		s = s < a ? a : s;
		e = e > b ? b : e;
		if (!whole && (run->flags & IMG_RUN_IN_PARENT))
			continue;
		while (s < e) {
			struct img_page_loc loc;
			uint64_t in_run, n, len;
			const uint8_t *base;
			int ret;

			if (img_resolve(top, s, &loc))
				return ferr_new(err, ENOENT, "page 0x%" PRIx64 " is in no image", s);
			in_run = (s - loc.run->vaddr) / ps;
			n = img_chain_span(top, loc.img, s, loc.run->nr_pages - in_run);
			len = n * ps < e - s ? n * ps : e - s;
			if (loc.run->flags & IMG_RUN_ZERO) {
				ret = whole ? 0 : put_zeroes(w, s, len, err);
			} else {
				base = source(w, loc.img, err);
				if (!base)
					return -err->code;
				if (loc.run->offset + in_run * ps + len > w->map_len[loc.img->depth])
					return ferr_new(err, EBADMSG, "%s/pages.img is shorter than "
							"its pagemap", loc.img->path);
				ret = put(w, s, base + loc.run->offset + in_run * ps, len, err);
			}
			if (ret)
				return ret;
			w->res.pages += len / ps;
			s += len;
		}
	}
	return 0;
}

/* Drop what the old image had in [a, b) (a gap of the new one). */
static int drop_range(struct rst_warm *w, const struct img_image *old, uint64_t a, uint64_t b,
		      struct ferr *err)
{
	for (size_t i = first_run(old, a); i < old->nr_runs && old->runs[i].vaddr < b; i++) {
		const struct img_run *run = &old->runs[i];
		uint64_t s = run->vaddr < a ? a : run->vaddr;
		uint64_t e = run->vaddr + run->nr_pages * old->page_size;
		long rv;
		int ret;

		e = e > b ? b : e;
		ret = rst_sys(&w->r.th[0], "madvise(MADV_DONTNEED)", &rv, err, __NR_madvise, s,
			      e - s, MADV_DONTNEED, 0, 0, 0);
		if (ret)
			return ret;
	}
	return 0;
}

/* Pages in [a, b) the old image had and the new one has not: dropped. */
static int drop_gone(struct rst_warm *w, const struct img_image *old, uint64_t a, uint64_t b,
		     struct ferr *err)
{
	const struct img_image *top = w->r.img;
	uint64_t pos = a;
	int ret = 0;

	for (size_t i = first_run(top, a); !ret && pos < b; i++) {
		uint64_t s = i < top->nr_runs ? top->runs[i].vaddr : b;

		if (s > b)
			s = b;
		if (s > pos)
			ret = drop_range(w, old, pos, s, err);
		if (i >= top->nr_runs)
			break;
		pos = top->runs[i].vaddr + top->runs[i].nr_pages * top->page_size;
	}
	return ret;
}

/* Make the child's layout and memory those of img (the next round). */
static int apply(struct rst_warm *w, struct img_image *img, struct ferr *err)
{
	struct rst *r = &w->r;
	struct img_image *old = r->img;
	int ret = 0;

	/* What of the old layout the new one does not keep goes. */
	for (size_t i = 0; !ret && i < old->nr_vmas; i++) {
		const Ferry__Vma *o = old->vmas[i];
		uint64_t pos = o->start;
		long rv;

		if (special(o))
			continue;
		while (!ret && pos < o->end) {
			uint64_t gap_end = uncovered_until(img, o, pos, o->end);

			if (gap_end > pos)
				ret = rst_sys(&r->th[0], "munmap", &rv, err, __NR_munmap, pos,
					      gap_end - pos, 0, 0, 0, 0);
			pos = covered_until(img, o, gap_end, o->end);
		}
	}
	if (ret)
		return ret;
	r->img = img;
	for (const struct img_image *i = img; i; i = i->parent)
		w->depth = i->depth + 1 > w->depth ? i->depth + 1 : w->depth;
	w->maps = calloc(w->depth, sizeof(*w->maps));
	w->map_len = calloc(w->depth, sizeof(*w->map_len));
	if (!w->maps || !w->map_len)
		ret = ferr_sys(err, ENOMEM, "image maps");
	/* Parts already mapped compatibly are kept: only the round's own pages
	 * are written there; the rest is mapped now and filled whole. */
	for (size_t i = 0; !ret && i < img->nr_vmas; i++) {
		const Ferry__Vma *v = img->vmas[i];
		uint64_t pos = v->start;

		if (special(v))
			continue;
		while (!ret && pos < v->end) {
			uint64_t kept_end = covered_until(old, v, pos, v->end);

			if (kept_end > pos) {
				ret = write_span(w, pos, kept_end, false, err);
				if (!ret && !(v->flags & MAP_SHARED))
					ret = drop_gone(w, old, pos, kept_end, err);
				pos = kept_end;
				continue;
			}
			kept_end = uncovered_until(old, v, pos, v->end);
			{
				Ferry__Vma part = *v;

				part.start = pos;
				part.end = kept_end;
				part.pgoff = v->pgoff + (pos - v->start); /* bytes */
				ret = rst_mm_map(r, &part, err);
			}
			if (!ret)
				ret = write_span(w, pos, kept_end, true, err);
			pos = kept_end;
		}
	}
	unmap_sources(w);
	/* old is img's parent now: closed with it. */
	return ret;
}

/* Round dir, on top of the chain already open (NULL: round one): only its
 * own files are read and checked; the rest was when it arrived. */
static int open_round(const char *dir, struct img_image *on, bool final, struct rst_files *files,
		      struct img_image **img, struct ferr *err)
{
	struct rst_check_report rep;
	size_t n = 0;
	int ret = on ? img_open_on(img, dir, on, err) : img_open(img, dir, err);

	if (ret)
		return ret;
	if (final)
		ret = rst_validate(*img, &rep, false, files, err);
	else if ((*img)->page_size != (uint32_t)ferry_page_size())
		ret = ferr_new(err, ENOEXEC, "%s has %u-byte pages", dir, (*img)->page_size);
	else
		ret = img_verify_one(*img, &rep.verify, err);
	/* Its mappings are made now: their files checked first. */
	if (!ret && !final)
		ret = rst_validate_mappings(*img, files, &n, err);
	if (ret) {
		if (on)
			img_close_on(*img);
		else
			img_close(*img);
		*img = NULL;
	}
	return ret;
}

void rst_warm_free(struct rst_warm *w)
{
	if (!w)
		return;
	rst_kill_child(&w->r);
	if (w->memfd >= 0)
		close(w->memfd);
	unmap_sources(w);
	if (w->zeroes && w->zeroes != MAP_FAILED)
		munmap(w->zeroes, ZERO_CHUNK);
	if (w->r.proc == &w->synth)
		w->r.proc = NULL;
	rst_free(&w->r);
	free(w);
}

static struct rst_warm *warm_new(void)
{
	struct rst_warm *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->r.opts = &w->opts;
	w->r.res = &w->res;
	w->r.kd = &w->kd;
	w->r.procfd = -1;
	w->memfd = -1;
	w->res.same_pid = true;
	return w;
}

/* Round one: a stopped child with its layout and memory. */
static int warm_build(struct rst_warm *w, const char *dir, struct ferr *err)
{
	struct rst *r = &w->r;
	char mem[32];
	int ret;

	w->zeroes = mmap(NULL, ZERO_CHUNK, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r->th = calloc(1, sizeof(*r->th));
	if (w->zeroes == MAP_FAILED || !r->th)
		return ferr_sys(err, ENOMEM, "warm restore");
	ret = open_round(dir, NULL, false, &r->files, &r->img, err);
	if (ret)
		return ret;
	rst_probe(&w->kd);
	/* The dumped PID where it is free, nothing else of the process yet:
	 * the final dump brings fds, session, cwd and the rest. */
	ferry__process__init(&w->synth);
	w->synth.pid = r->img->inv->root_pid;
	r->proc = &w->synth;
	ret = rst_vdso_fits(r->img, err);
	if (!ret)
		ret = rst_build_memory(r, err);
	r->proc = NULL;
	if (ret)
		return ret;
	snprintf(mem, sizeof(mem), "/proc/%d/mem", r->pid);
	w->memfd = open(mem, O_RDWR | O_CLOEXEC);
	if (w->memfd < 0)
		return ferr_sys(err, errno, "open %s", mem);
	return 0;
}

int rst_warm_begin(struct rst_warm **out, const char *dir, enum rst_file_validation files,
		   struct ferr *err)
{
	cleanup(rst_warm) struct rst_warm *w = warm_new();

	*out = NULL;
	if (!w)
		return ferr_sys(err, ENOMEM, "warm restore");
	w->r.files.mode = files;
	if (warm_build(w, dir, err))
		return ferr_wrap(err, "warm restore of %s", dir);
	pr_info("warm restore: process %d built from %s (%" PRIu64 " pages)", w->r.pid, dir,
		w->res.pages);
	*out = steal_ptr(w);
	return 0;
}

int rst_warm_update(struct rst_warm *w, const char *dir, struct ferr *err)
{
	struct img_image *img;
	uint64_t before = w->res.pages;
	int ret = open_round(dir, w->r.img, false, &w->r.files, &img, err);

	if (!ret)
		ret = apply(w, img, err);
	if (ret) {
		rst_kill_child(&w->r);
		return ferr_wrap(err, "warm restore of %s", dir);
	}
	pr_info("warm restore: %s applied (%" PRIu64 " pages written)", dir, w->res.pages - before);
	return 0;
}

/* The rounds' files were mapped before the final dump brought the
 * credentials: each is opened again now, as the process (fs credentials
 * set), with the access its mapping has, so that a mapping the process
 * could not have made itself is refused rather than handed over. */
static int recheck_mapped_files(struct rst *r, struct ferr *err)
{
	const char *prev = NULL;
	bool prev_rdwr = false;
	uint64_t at;
	long fd, rv;
	int ret = 0;

	for (size_t i = 0; !ret && i < r->img->nr_vmas; i++) {
		const Ferry__Vma *v = r->img->vmas[i];
		bool rdwr = (v->flags & MAP_SHARED) && (v->prot & PROT_WRITE);

		if (v->kind != FERRY__VMA_KIND__VMA_FILE || !v->path ||
		    (prev && rdwr == prev_rdwr && !strcmp(prev, v->path)))
			continue;
		prev = v->path;
		prev_rdwr = rdwr;
		ret = rst_scratch_put(r, 0, v->path, strlen(v->path) + 1, &at, err);
		if (!ret)
			ret = rst_sys(&r->th[0], "open", &fd, err, __NR_openat, (uint64_t)AT_FDCWD, at,
				      (uint64_t)((rdwr ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC),
				      0, 0, 0);
		if (!ret)
			ret = rst_sys(&r->th[0], "close", &rv, err, __NR_close, (uint64_t)fd, 0, 0, 0, 0,
				      0);
		if (ret)
			return ferr_wrap(err, "file mapped at 0x%" PRIx64 " `%s`, as the process",
					 v->start, v->path);
	}
	return 0;
}

/* What a cold restore's child does for itself before its first stop. */
static int process_setup(struct rst_warm *w, struct ferr *err)
{
	struct rst *r = &w->r;
	struct rst_thread *m = &r->th[0];
	const Ferry__Process *p = r->proc;
	uint64_t at;
	long rv, fd;
	int ret = 0;

	/* The fds are opened as the process, not as ferry. */
	ret = rst_creds_fs_inject(r, err);
	if (!ret)
		ret = recheck_mapped_files(r, err);
	for (size_t i = 0; !ret && i < r->nr_fds; i++) {
		const Ferry__Fd *f = r->fds[i];
		char link[32];
		struct stat st;

		if ((fd_supported(f) && rst_fdkind_owns(f)) || f->has_obj_id)
			return ferr_new(err, EOPNOTSUPP, "fd %u (%s): a warm restore does not "
					"re-create it", f->fd, f->path ? f->path : "?");
		for (size_t k = 0; f->has_desc && k < i; k++)
			if (r->fds[k]->has_desc && r->fds[k]->desc == f->desc)
				return ferr_new(err, EOPNOTSUPP, "fds %u and %u share an open file "
						"description: a warm restore opens each on its own",
						r->fds[k]->fd, f->fd);
		if (!f->path || !fd_supported(f))
			continue;
		ret = rst_scratch_put(r, 0, f->path, strlen(f->path) + 1, &at, err);
		if (!ret)
			ret = rst_sys(m, "open", &fd, err, __NR_openat, (uint64_t)AT_FDCWD, at,
				      (uint64_t)rst_reopen_flags(f) | O_NONBLOCK, 0, 0, 0);
		if (ret)
			return ferr_wrap(err, "fd %u: `%s`", f->fd, f->path);
		snprintf(link, sizeof(link), "fd/%ld", fd);
		if (fstatat(r->procfd, link, &st, 0) < 0)
			return ferr_sys(err, errno, "fd %u: stat `%s`", f->fd, f->path);
		if (!rst_fd_type_fits(f, st.st_mode))
			return ferr_new(err, EACCES, "fd %u: `%s` is not the kind of file it was at "
					"dump time", f->fd, f->path);
		if (f->file && !rst_file_is(&r->files, f->path, &st))
			return ferr_new(err, ESTALE, "fd %u: `%s` is another file than the one "
					"checked", f->fd, f->path);
		/* Opened non-blocking; the dumped flags back on (F_SETFL). */
		if (!(rst_reopen_flags(f) & O_NONBLOCK))
			ret = rst_sys(m, "fcntl(F_SETFL)", &rv, err, __NR_fcntl, (uint64_t)fd, F_SETFL,
				      (uint64_t)(f->flags & ~(uint32_t)O_NONBLOCK), 0, 0, 0);
		if (ret)
			return ferr_wrap(err, "fd %u: `%s`", f->fd, f->path);
		if (fd != (long)f->fd) {
			ret = rst_sys(m, "dup3", &rv, err, __NR_dup3, (uint64_t)fd, f->fd,
				      f->cloexec ? O_CLOEXEC : 0, 0, 0, 0);
			if (!ret)
				ret = rst_sys(m, "close", &rv, err, __NR_close, (uint64_t)fd, 0, 0, 0, 0,
					      0);
		}
		if (!ret && f->has_pos && f->kind == FERRY__FD_KIND__FD_REG)
			ret = rst_sys(m, "lseek", &rv, err, __NR_lseek, f->fd, f->pos, SEEK_SET, 0,
				      0, 0);
	}
	if (!ret && p->has_sid && p->sid == p->pid)
		ret = rst_sys(m, "setsid", &rv, err, __NR_setsid, 0, 0, 0, 0, 0, 0);
	else if (!ret && p->has_pgid && p->pgid == p->pid)
		ret = rst_sys(m, "setpgid", &rv, err, __NR_setpgid, 0, 0, 0, 0, 0, 0);
	if (!ret && p->cwd) {
		ret = rst_scratch_put(r, 0, p->cwd, strlen(p->cwd) + 1, &at, err);
		if (!ret)
			ret = rst_sys(m, "chdir", &rv, err, __NR_chdir, at, 0, 0, 0, 0, 0);
	}
	if (!ret && p->has_umask)
		ret = rst_sys(m, "umask", &rv, err, __NR_umask, p->umask, 0, 0, 0, 0, 0);
	if (!ret && p->has_personality)
		ret = rst_sys(m, "personality", &rv, err, __NR_personality, p->personality, 0, 0, 0,
			      0, 0);
	return ret;
}

/* A tree with namespaces of its own (a container) is made in them from
 * scratch: the warm child was built in ferry's. So is one with a terminal
 * whose master was outside (its new pair is made by the cold restore). */
static int no_namespaces(struct img_image *img, struct ferr *err)
{
	Ferry__TreeItem **items = NULL;
	size_t n = 0;
	bool ns = false;
	int ret = img_read_tree(img, &items, &n, err);

	for (size_t i = 0; !ret && i < n; i++)
		ns |= items[i]->ns != NULL || items[i]->pty != NULL;
	img_free_entries(items, n);
	if (!ret && ns)
		ret = ferr_new(err, EOPNOTSUPP, "the tree has namespaces or a terminal of its own: "
			       "it is made from scratch");
	return ret;
}

int rst_warm_finish(struct rst_warm *w, const struct rst_opts *opts, struct rst_result *res,
		    struct ferr *err)
{
	struct rst *r = &w->r;
	struct rst_thread main_th = r->th[0];
	struct img_image *img;
	uint64_t t0 = now_ns();
	int ret;

	w->opts = *opts;
	if (fault_hit("warm-restore-fail"))
		return ferr_new(err, EIO, "warm restore failing on purpose (FERRY_FAULT)");
	r->files.mode = opts->files;
	ret = open_round(opts->dir, r->img, true, &r->files, &img, err);
	if (!ret)
		ret = no_namespaces(img, err);
	if (!ret)
		ret = apply(w, img, err);
	res->validate_ns = now_ns() - t0;
	if (!ret) {
		/* The threads' entries replace the placeholder; the main thread
		 * keeps the injection context it has had since round one. */
		free(r->th);
		r->th = NULL;
		ret = rst_load_entries(r, err);
		if (!ret) {
			r->th[0].tid = main_th.tid;
			r->th[0].inj = main_th.inj;
			w->res.same_pid = r->pid == (pid_t)r->proc->pid;
		}
	}
	for (size_t i = 0; !ret && i < r->nr_threads; i++) {
		const Ferry__Thread *t = r->th[i].img;

		if (t->has_xsave && t->xsave.len != r->xsave_size)
			ret = ferr_new(err, ENOEXEC, "thread %u has %zu bytes of XSAVE state, this "
				       "CPU %zu", t->tid, t->xsave.len, r->xsave_size);
	}
	if (!ret)
		ret = process_setup(w, err);
	if (!ret)
		ret = rst_mm_protect(r, err);
	if (!ret)
		ret = rst_build_state(r, err);
	if (ret) {
		ferr_wrap(err, "new process %d (killed)", r->pid);
		rst_kill_child(r);
		return ret;
	}
	*res = w->res;
	res->pid = r->pid;
	res->threads = (uint32_t)r->nr_threads;
	res->total_ns = now_ns() - t0;
	res->build_ns = res->total_ns - res->validate_ns;
	/* Handed over: the child is no longer ours to kill. */
	r->pid = 0;
	return 0;
}
