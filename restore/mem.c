/* The restored process's address space: ferry's own mappings out of the
 * child, its vdso and vvar moved to where they were, every dumped VMA mapped
 * at its address, pages written in from the image chain, protections and mm
 * fields set. All inside the child is done by injected syscalls. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/prctl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "common/log.h"
#include "proc/layout.h"
#include "restore/rst.h"
#include "restore/validate.h"

static bool is_special(Ferry__VmaKind k)
{
	return k == FERRY__VMA_KIND__VMA_VDSO || k == FERRY__VMA_KIND__VMA_VVAR ||
	       k == FERRY__VMA_KIND__VMA_VSYSCALL;
}

static bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 < e2 && s2 < e1;
}

int rst_vdso_fits(const struct img_image *img, struct ferr *err)
{
	struct vma_list own = { 0 };
	cleanup_close int self = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const Ferry__Vma *base = NULL;
	const struct vma *own_base = NULL;
	size_t want = 0, have = 0;
	struct utsname u;
	int ret = 0;

	if (self < 0)
		return ferr_sys(err, errno, "open /proc/self");
	ret = layout_maps_ops.read(self, &own, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < own.n; i++)
		have += own.v[i].kind == FERRY__VMA_KIND__VMA_VDSO ||
			own.v[i].kind == FERRY__VMA_KIND__VMA_VVAR;
	for (size_t i = 0; i < img->nr_vmas && !ret; i++) {
		const Ferry__Vma *v = img->vmas[i];
		const struct vma *o = NULL;

		if (v->kind != FERRY__VMA_KIND__VMA_VDSO && v->kind != FERRY__VMA_KIND__VMA_VVAR)
			continue;
		want++;
		for (size_t k = 0; k < own.n && !o; k++)
			if (own.v[k].name && v->name && !strcmp(own.v[k].name, v->name))
				o = &own.v[k];
		if (!o) {
			ret = ferr_new(err, ENOEXEC, "the dump has a %s mapping this kernel does not "
				       "give processes", v->name ? v->name : "special");
		} else if (o->end - o->start != v->end - v->start) {
			ret = ferr_new(err, ENOEXEC, "this kernel's %s is %" PRIu64 " bytes, the dumped "
				       "one %" PRIu64 ": it does not fit", v->name,
				       o->end - o->start, v->end - v->start);
		} else if (!base) {
			base = v;
			own_base = o;
		} else if (v->start - base->start != o->start - own_base->start) {
			ret = ferr_new(err, ENOEXEC, "%s and %s lie differently in this kernel than in "
				       "the dump", base->name, v->name);
		}
	}
	if (!ret && want != have)
		ret = ferr_new(err, ENOEXEC, "this kernel gives processes %zu vdso/vvar mappings, the "
			       "dump has %zu", have, want);
	/* The vdso's code is the kernel's: the same size is not enough. */
	if (!ret && img->inv->kernel && uname(&u) == 0 && strcmp(u.release, img->inv->kernel))
		ret = ferr_new(err, ENOEXEC, "dumped under kernel %s, this is %s: its vdso may differ, "
			       "and ferry restores only on the kernel that dumped", img->inv->kernel,
			       u.release);
	vma_list_free(&own);
	return ret;
}

static const struct vma *find_named(const struct vma_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].name && name && !strcmp(l->v[i].name, name))
			return &l->v[i];
	return NULL;
}

static int mremap_to(struct rst *r, uint64_t from, uint64_t len, uint64_t to, struct ferr *err)
{
	long ret;

	if (from == to)
		return 0;
	return rst_sys(&r->th[0], "move vdso/vvar (mremap)", &ret, err, __NR_mremap, from, len, len,
		       MREMAP_MAYMOVE | MREMAP_FIXED, to, 0);
}

/* Move the kernel's vdso and vvar mappings as one block, through a place
 * free both now and in the dumped layout, to their dumped addresses. The
 * injection point moves with the vdso. */
static int move_specials(struct rst *r, const struct vma_list *cur, struct ferr *err)
{
	uint64_t lo = UINT64_MAX, hi = 0, tmp = 0, delta;
	const Ferry__Vma *v;
	const struct vma *c;
	int ret;

	for (size_t i = 0; i < cur->n; i++) {
		c = &cur->v[i];
		if (c->kind != FERRY__VMA_KIND__VMA_VDSO && c->kind != FERRY__VMA_KIND__VMA_VVAR)
			continue;
		lo = c->start < lo ? c->start : lo;
		hi = c->end > hi ? c->end : hi;
	}
	if (!hi)
		return 0;
	for (unsigned n = 0; !tmp; n++) {
		tmp = rst_hole(r->img, hi - lo, n);
		if (!tmp)
			return ferr_new(err, ENOMEM, "no room to move the vdso through");
		if (overlaps(tmp, tmp + hi - lo, lo, hi) ||
		    overlaps(tmp, tmp + hi - lo, r->scratch, r->scratch + r->scratch_size) ||
		    overlaps(tmp, tmp + hi - lo, r->cow_lo, r->cow_hi))
			tmp = 0;
	}
	/* Step 1: the whole block to tmp, keeping its shape. */
	for (size_t i = 0; i < cur->n; i++) {
		c = &cur->v[i];
		if (c->kind != FERRY__VMA_KIND__VMA_VDSO && c->kind != FERRY__VMA_KIND__VMA_VVAR)
			continue;
		ret = mremap_to(r, c->start, c->end - c->start, tmp + (c->start - lo), err);
		if (ret)
			return ret;
		if (c->kind == FERRY__VMA_KIND__VMA_VDSO)
			r->th[0].inj.syscall_ip += tmp + (c->start - lo) - c->start;
	}
	/* Step 2: each to its dumped address. */
	for (size_t i = 0; i < r->img->nr_vmas; i++) {
		v = r->img->vmas[i];
		if (v->kind != FERRY__VMA_KIND__VMA_VDSO && v->kind != FERRY__VMA_KIND__VMA_VVAR)
			continue;
		c = find_named(cur, v->name);
		if (!c)
			return ferr_new(err, ENOEXEC, "the new process has no %s", v->name);
		delta = tmp + (c->start - lo);
		ret = mremap_to(r, delta, v->end - v->start, v->start, err);
		if (ret)
			return ret;
		if (v->kind == FERRY__VMA_KIND__VMA_VDSO)
			r->th[0].inj.syscall_ip += v->start - delta;
	}
	return 0;
}

/* Is c a copy-on-write VMA r's stub holds for it (cow.c)? */
static bool kept(const struct rst *r, const struct vma *c)
{
	for (size_t i = 0; i < r->nr_cow; i++)
		if (r->cow[i]->tmp == c->start && c->end - c->start == r->cow[i]->end -
		    r->cow[i]->start)
			return true;
	return false;
}

int rst_mm_clear(struct rst *r, struct ferr *err)
{
	struct vma_list cur = { 0 };
	int ret;

	ret = layout_maps_ops.read(r->procfd, &cur, err);
	for (size_t i = 0; !ret && i < cur.n; i++) {
		const struct vma *c = &cur.v[i];
		long rv;

		if (is_special(c->kind) || c->start == r->scratch || kept(r, c))
			continue;
		ret = rst_sys(&r->th[0], "unmap ferry's memory from the new process", &rv, err,
			      __NR_munmap, c->start, c->end - c->start, 0, 0, 0, 0);
	}
	if (!ret)
		ret = move_specials(r, &cur, err);
	vma_list_free(&cur);
	return ret;
}

/* ---- VMAs ---------------------------------------------------------------- */

struct open_file {
	const char *path;
	bool rdwr;
	long fd;            /* in the child */
};

struct build {
	struct rst *r;
	struct open_file *files;
	size_t nr_files;
};

/* Open path in the child (for mmap or exe), checked to be the dumped file.
 * The child opens it with the process's filesystem credentials (set before
 * its first stop), non-blocking: a FIFO put there cannot hang the restore. */
static int child_open(struct rst *r, const char *path, int flags, const Ferry__FileId *id,
		      long *fd, struct ferr *err)
{
	char link[64];
	uint64_t at = 0;
	struct stat st;
	int ret;

	ret = rst_scratch_put(r, 0, path, strlen(path) + 1, &at, err);
	if (ret)
		return ret;
	ret = rst_sys(&r->th[0], path, fd, err, __NR_openat, (uint64_t)AT_FDCWD, at,
		      (uint64_t)(flags | O_CLOEXEC | O_NONBLOCK), 0, 0, 0);
	if (ret)
		return ferr_wrap(err, "open");
	snprintf(link, sizeof(link), "fd/%ld", *fd);
	if (fstatat(r->procfd, link, &st, 0) < 0)
		return ferr_sys(err, errno, "stat `%s` as the new process opened it", path);
	if (!S_ISREG(st.st_mode) && !(S_ISCHR(st.st_mode) && rst_dev_harmless(st.st_rdev)))
		return ferr_new(err, EACCES, "`%s` is neither a regular file nor a harmless device",
				path);
	if (id && !rst_file_is(&r->files, path, &st))
		return ferr_new(err, ESTALE, "`%s` is another file than the one checked", path);
	return 0;
}

static int file_fd(struct build *b, const Ferry__Vma *v, long *fd, struct ferr *err)
{
	bool rdwr = (v->flags & MAP_SHARED) && (v->prot & PROT_WRITE);
	const Ferry__Fd *bf;
	struct open_file *f;
	char self[40];
	int ret;

	for (size_t i = 0; i < b->nr_files; i++) {
		if (b->files[i].rdwr == rdwr && !strcmp(b->files[i].path, v->path)) {
			*fd = b->files[i].fd;
			return 0;
		}
	}
	f = realloc(b->files, (b->nr_files + 1) * sizeof(*f));
	if (!f)
		return ferr_sys(err, ENOMEM, "file table");
	b->files = f;
	/* A memfd or deleted file: the one the child re-created for its fd. */
	bf = rst_fdkind_backing(b->r->fds, b->r->nr_fds, v);
	if (bf)
		snprintf(self, sizeof(self), "/proc/self/fd/%u", bf->fd);
	ret = child_open(b->r, bf ? self : v->path, rdwr ? O_RDWR : O_RDONLY, bf ? NULL : v->file,
			 fd, err);
	if (ret)
		return ret;
	f[b->nr_files++] = (struct open_file){ v->path, rdwr, *fd };
	return 0;
}

/* Protection while pages are written in: writable only where ferry writes,
 * so a large reservation (PROT_NONE, read-only) is not charged as
 * writable memory it never was. */
static uint32_t fill_prot(const struct img_image *img, const Ferry__Vma *v)
{
	if (v->kind == FERRY__VMA_KIND__VMA_FILE && (v->flags & MAP_SHARED))
		return v->prot; /* its data is the file's; ferry writes none */
	if (!img_has_runs(img, v->start, v->end))
		return v->prot;
	return v->prot | PROT_READ | PROT_WRITE;
}

static int map_vma(struct build *b, const Ferry__Vma *v, struct ferr *err)
{
	uint64_t flags = MAP_FIXED_NOREPLACE | (v->flags & MAP_SHARED ? MAP_SHARED : MAP_PRIVATE);
	uint32_t prot = fill_prot(b->r->img, v);
	long fd = -1, ret;
	int rc;

	if (v->flags & MAP_GROWSDOWN)
		flags |= MAP_GROWSDOWN;
	if (v->kind == FERRY__VMA_KIND__VMA_FILE) {
		if (!v->path)
			return ferr_new(err, EINVAL, "file mapping at 0x%" PRIx64 " has no path",
					v->start);
		rc = file_fd(b, v, &fd, err);
		if (rc)
			return ferr_wrap(err, "mapping at 0x%" PRIx64, v->start);
	} else if (v->has_shm_id && rst_pool_shm_fd(b->r->pool, v->shm_id) >= 0) {
		/* Shared with other processes of the tree: the one object
		 * ferry made, which every process holds until its memory is
		 * built. */
		fd = rst_pool_shm_fd(b->r->pool, v->shm_id);
	} else {
		flags |= MAP_ANONYMOUS;
	}
	rc = rst_sys(&b->r->th[0], "mmap", &ret, err, __NR_mmap, v->start, v->end - v->start,
		     prot, flags, (uint64_t)fd, v->pgoff);
	/* Whether the original was MAP_NORESERVE is not in /proc/PID/maps:
	 * a mapping larger than the commit limit can only have been. */
	if (rc == -ENOMEM && !(flags & MAP_SHARED) && (prot & PROT_WRITE)) {
		pr_debug("0x%" PRIx64 "-0x%" PRIx64 ": mapped MAP_NORESERVE", v->start, v->end);
		rc = rst_sys(&b->r->th[0], "mmap", &ret, err, __NR_mmap, v->start,
			     v->end - v->start, prot, flags | MAP_NORESERVE, (uint64_t)fd, v->pgoff);
	}
	if (rc)
		return ferr_wrap(err, "re-create the mapping 0x%" PRIx64 "-0x%" PRIx64 " %s", v->start,
				 v->end, v->name ? v->name : "");
	if ((uint64_t)ret != v->start)
		return ferr_new(err, EFAULT, "mapping 0x%" PRIx64 " landed at 0x%lx", v->start, ret);
	return 0;
}


/* A VMA the stub holds copy-on-write (cow.c): moved from its place in the
 * area to its own (1: not one of those). */
static int held_vma(struct rst *r, const Ferry__Vma *v, struct ferr *err)
{
	const struct rst_cow *c = rst_cow_held(r, v->start, v->end);
	long rv;

	if (!c)
		return 1;
	return rst_sys(&r->th[0], "move a copy-on-write mapping into place (mremap)", &rv, err,
		       __NR_mremap, c->tmp, v->end - v->start, v->end - v->start,
		       MREMAP_MAYMOVE | MREMAP_FIXED, v->start, 0);
}

/* The files opened in the child for mapping are closed there (after an
 * error the child is killed: nothing to close). */
static int build_done(struct build *b, int ret, struct ferr *err)
{
	for (size_t i = 0; !ret && i < b->nr_files; i++) {
		long rv;

		ret = rst_sys(&b->r->th[0], "close a mapped file", &rv, err, __NR_close,
			      (uint64_t)b->files[i].fd, 0, 0, 0, 0, 0);
	}
	free(b->files);
	return ret;
}

int rst_mm_map(struct rst *r, const Ferry__Vma *v, struct ferr *err)
{
	struct build b = { .r = r };

	return build_done(&b, map_vma(&b, v, err), err);
}

/* Every VMA to its dumped protection; with changed_only, only those mapped
 * otherwise for the filling (all of them after a warm restore's rounds:
 * a VMA then may have been mapped for an earlier round's pages). */
static int protect(struct rst *r, bool changed_only, struct ferr *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < r->img->nr_vmas; i++) {
		const Ferry__Vma *v = r->img->vmas[i];
		long rv;

		if (is_special(v->kind) || v->kind == FERRY__VMA_KIND__VMA_SPECIAL ||
		    (changed_only && fill_prot(r->img, v) == v->prot &&
		     !rst_cow_held(r, v->start, v->end)))
			continue;
		ret = rst_sys(&r->th[0], "mprotect", &rv, err, __NR_mprotect, v->start,
			      v->end - v->start, v->prot, 0, 0, 0);
	}
	return ret;
}

int rst_mm_protect(struct rst *r, struct ferr *err)
{
	return protect(r, false, err);
}

int rst_mm_build(struct rst *r, struct ferr *err)
{
	struct build b = { .r = r };
	int ret = 0;

	for (size_t i = 0; !ret && i < r->img->nr_vmas; i++) {
		const Ferry__Vma *v = r->img->vmas[i];

		if (is_special(v->kind))
			continue;
		if (v->kind == FERRY__VMA_KIND__VMA_SPECIAL) {
			pr_warn("skipping the kernel mapping %s at 0x%" PRIx64 ": ferry cannot "
				"re-create it", v->name ? v->name : "?", v->start);
			continue;
		}
		ret = held_vma(r, v, err);
		if (ret > 0)
			ret = map_vma(&b, v, err);
		r->res->vmas += !ret;
	}
	if (!ret)
		ret = rst_fill_pages(r, err);
	if (!ret)
		ret = protect(r, true, err);
	return build_done(&b, ret, err);
}

/* ---- mm fields ------------------------------------------------------------ */

int rst_mm_fields(struct rst *r, struct ferr *err)
{
	const Ferry__MmState *mm = r->proc->mm;
	struct prctl_mm_map map;
	uint64_t at = 0, auxv_at = 0;
	long exe = -1, rv;
	int ret;

	if (!mm)
		return 0;
	if (mm->exe_path) {
		ret = child_open(r, mm->exe_path, O_RDONLY, mm->exe_id, &exe, err);
		if (ret)
			return ferr_wrap(err, "executable");
	}
	memset(&map, 0, sizeof(map));
	map.start_code = mm->start_code;
	map.end_code = mm->end_code;
	map.start_data = mm->start_data;
	map.end_data = mm->end_data;
	map.start_brk = mm->start_brk;
	map.brk = mm->brk;
	map.start_stack = mm->start_stack;
	map.arg_start = mm->arg_start;
	map.arg_end = mm->arg_end;
	map.env_start = mm->env_start;
	map.env_end = mm->env_end;
	map.exe_fd = (uint32_t)exe;
	if (mm->has_auxv && mm->auxv.len) {
		ret = rst_scratch_put(r, 1024, mm->auxv.data, mm->auxv.len, &auxv_at, err);
		if (ret)
			return ret;
		map.auxv = (__u64 *)(uintptr_t)auxv_at;
		map.auxv_size = (uint32_t)mm->auxv.len;
	}
	ret = rst_scratch_put(r, 0, &map, sizeof(map), &at, err);
	if (!ret)
		ret = rst_sys(&r->th[0], "prctl(PR_SET_MM_MAP) for brk, arg/env, auxv and exe", &rv,
			      err, __NR_prctl, PR_SET_MM, PR_SET_MM_MAP, at, sizeof(map), 0, 0);
	if (exe >= 0 && !ret)
		ret = rst_sys(&r->th[0], "close the executable", &rv, err, __NR_close, (uint64_t)exe,
			      0, 0, 0, 0, 0);
	return ret;
}
