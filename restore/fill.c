/* Pages into the restored process, out of each image's pages.img, on a
 * thread per CPU, without a syscall per page. Each thread reads the files
 * through windows of its own (images/window.h): pread into a buffer that
 * stays in its core's cache, then one copy into the process.
 *
 * Private anonymous memory (most of a process) goes by UFFDIO_COPY: the
 * child's VMAs are registered with a userfaultfd (by injection), ferry takes
 * the fd with pidfd_getfd, and each run becomes one ioctl that allocates the
 * pages and copies into them. process_vm_writev would fault each page in
 * first, and the kernel zeroes every new page before the copy overwrites it.
 * Everything else (file COW pages, shared memory), or everything where the
 * kernel lacks userfaultfd, goes by process_vm_writev, up to 1024 runs per
 * call. The same registration is what lazy restore will build on. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "common/kerndat.h"
#include "common/log.h"
#include "common/par.h"
#include "images/window.h"
#include "restore/rst.h"

#define FILL_IOV 1024
#define FILL_CALL_MAX (64ULL << 20) /* per call: the kernel copies < 2 GiB per call */
#define FILL_PARALLEL_MIN (64ULL << 20)
#define FILL_THREADS 4
#define FILL_ZERO (2ULL << 20)

enum { SEG_UFFD, SEG_WRITEV, SEG_KINDS };

/* len bytes for the child at dst: from ferry's memory (mem), or else from
 * img's pages.img at off. */
struct seg {
	uint64_t dst, len;
	const uint8_t *mem;
	const struct img_image *img;
	uint64_t off;
};

struct segs {
	struct seg *s;
	size_t n, cap;
	uint64_t bytes;
};

struct fill {
	struct rst *r;
	uint8_t **maps;             /* pages.img of each image in the chain */
	uint64_t *map_len;
	unsigned depth;
	void *zeroes;               /* FILL_ZERO bytes that read as zero */
	int uffd;                   /* ferry's copy of the child's userfaultfd, or -1 */
	long child_uffd;
	struct segs segs[SEG_KINDS];
};

/* What the fill holds in ferry; the child's userfaultfd is uffd_close's. */
static void fill_release(struct fill *f)
{
	for (unsigned d = 0; d < f->depth && f->maps; d++)
		if (f->maps[d])
			munmap(f->maps[d], f->map_len[d]);
	for (int k = 0; k < SEG_KINDS; k++)
		free(f->segs[k].s);
	free(f->maps);
	free(f->map_len);
	if (f->zeroes && f->zeroes != MAP_FAILED)
		munmap(f->zeroes, FILL_ZERO);
	if (f->uffd >= 0)
		close(f->uffd);
}
DEFINE_CLEANUP_VAL(fill, fill_release)

/* Private anonymous memory: what a userfaultfd can fill. */
static bool uffd_kind(const Ferry__Vma *v)
{
	return !(v->flags & MAP_SHARED) &&
	       (v->kind == FERRY__VMA_KIND__VMA_ANON || v->kind == FERRY__VMA_KIND__VMA_HEAP ||
		v->kind == FERRY__VMA_KIND__VMA_STACK);
}

/* A VMA held copy-on-write has pages already: not a userfaultfd's to fill
 * (process_vm_writev into a registered range would wait on it). */
static bool by_uffd(const struct fill *f, const Ferry__Vma *v)
{
	return f->uffd >= 0 && uffd_kind(v) && !rst_cow_held(f->r, v->start, v->end);
}

/* ---- the userfaultfd ------------------------------------------------------ */

static int uffd_open(struct fill *f, struct ferr *err)
{
	struct rst *r = f->r;
	struct rst_thread *m = &r->th[0];
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t at = 0;
	cleanup_close int pidfd = -1;
	long rv;
	int ret;

	ret = rst_sys(m, "userfaultfd", &f->child_uffd, err, __NR_userfaultfd, O_CLOEXEC, 0, 0, 0,
		      0, 0);
	if (!ret)
		ret = rst_scratch_put(r, 0, &api, sizeof(api), &at, err);
	if (!ret)
		ret = rst_sys(m, "UFFDIO_API", &rv, err, __NR_ioctl, (uint64_t)f->child_uffd,
			      UFFDIO_API, at, 0, 0, 0);
	for (size_t i = 0; !ret && i < r->img->nr_vmas; i++) {
		const Ferry__Vma *v = r->img->vmas[i];
		struct uffdio_register reg = { .range = { v->start, v->end - v->start },
					       .mode = UFFDIO_REGISTER_MODE_MISSING };

		if (!uffd_kind(v) || !img_has_runs(r->img, v->start, v->end) ||
		    rst_cow_held(r, v->start, v->end))
			continue;
		ret = rst_scratch_put(r, 0, &reg, sizeof(reg), &at, err);
		if (!ret)
			ret = rst_sys(m, "UFFDIO_REGISTER", &rv, err, __NR_ioctl,
				      (uint64_t)f->child_uffd, UFFDIO_REGISTER, at, 0, 0, 0);
	}
	if (ret)
		return ret;
	pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
	if (pidfd < 0)
		return ferr_sys(err, errno, "pidfd_open new process %d", r->pid);
	f->uffd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)f->child_uffd, 0);
	if (f->uffd < 0)
		return ferr_sys(err, errno, "pidfd_getfd the new process's userfaultfd");
	return 0;
}

/* Closing both ends releases the userfaultfd, which unregisters every
 * range: nothing of it is left in the process. */
static int uffd_close(struct fill *f, struct ferr *err)
{
	long rv;
	int ret = 0;

	if (f->uffd >= 0)
		close(f->uffd);
	f->uffd = -1;
	if (f->child_uffd >= 0)
		ret = rst_sys(&f->r->th[0], "close the userfaultfd", &rv, err, __NR_close,
			      (uint64_t)f->child_uffd, 0, 0, 0, 0, 0);
	f->child_uffd = -1;
	return ret;
}

/* ---- collecting segments ----------------------------------------------------- */

static int segs_push(struct segs *s, const struct seg *g, struct ferr *err)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		struct seg *n = realloc(s->s, cap * sizeof(*n));

		if (!n)
			return ferr_sys(err, ENOMEM, "page segment list");
		s->s = n;
		s->cap = cap;
	}
	s->s[s->n++] = *g;
	s->bytes += g->len;
	return 0;
}

/* One segment, split where VMAs end, each part to its writer's list. */
static int fill_add(struct fill *f, struct seg g, struct ferr *err)
{
	uint64_t vaddr = g.dst, len = g.len;

	while (len) {
		const Ferry__Vma *v = img_vma_at(f->r->img, vaddr);
		uint64_t n;
		int ret;

		if (!v)
			return ferr_new(err, EBADMSG, "page 0x%" PRIx64 " lies in no VMA", vaddr);
		n = v->end - vaddr < len ? v->end - vaddr : len;
		g.dst = vaddr;
		g.len = n;
		ret = segs_push(&f->segs[by_uffd(f, v) ? SEG_UFFD : SEG_WRITEV], &g, err);
		if (ret)
			return ret;
		f->r->res->bytes += n;
		f->r->res->pages += n / (uint64_t)ferry_page_size();
		vaddr += n;
		if (g.mem)
			g.mem += n;
		g.off += n;
		len -= n;
	}
	return 0;
}

static const uint8_t *image_data(struct fill *f, const struct img_image *src, struct ferr *err)
{
	unsigned d = src->depth;

	if (!f->maps[d] && src->pages_size) {
		void *m = mmap(NULL, src->pages_size, PROT_READ, MAP_SHARED, src->pages_fd, 0);

		if (m == MAP_FAILED) {
			ferr_sys(err, errno, "map %s/pages.img", src->path);
			return NULL;
		}
		madvise(m, src->pages_size, MADV_SEQUENTIAL);
		f->maps[d] = m;
		f->map_len[d] = src->pages_size;
	}
	if (!f->maps[d])
		ferr_new(err, EBADMSG, "%s/pages.img has no data", src->path);
	return f->maps[d];
}

/* The len bytes at vaddr, which loc resolved to a data run, where pages.img
 * is mapped; NULL with err set if it cannot be or is too short. */
static const uint8_t *loc_data(struct fill *f, const struct img_page_loc *loc, uint64_t vaddr,
			       uint64_t len, struct ferr *err)
{
	const uint8_t *base = image_data(f, loc->img, err);
	uint64_t off = loc->run->offset + (vaddr - loc->run->vaddr);

	if (!base)
		return NULL;
	if (off + len > f->map_len[loc->img->depth]) {
		ferr_new(err, EBADMSG, "%s/pages.img is shorter than its pagemap", loc->img->path);
		return NULL;
	}
	return base + off;
}

/* A fill's table of mapped pages.img, one slot per image of img's chain. */
static int maps_alloc(struct fill *f, const struct img_image *img, struct ferr *err)
{
	for (const struct img_image *i = img; i; i = i->parent)
		f->depth = i->depth + 1;
	f->maps = calloc(f->depth, sizeof(*f->maps));
	f->map_len = calloc(f->depth, sizeof(*f->map_len));
	return f->maps && f->map_len ? 0 : ferr_sys(err, ENOMEM, "restore buffers");
}

static int fill_segment(struct fill *f, uint64_t vaddr, uint64_t npages, struct ferr *err)
{
	const struct img_image *top = f->r->img;
	uint64_t ps = top->page_size;

	while (npages) {
		struct img_page_loc loc;
		uint64_t in_run, n, len, off;
		const Ferry__Vma *v;
		int ret = 0;

		if (img_resolve(top, vaddr, &loc))
			return ferr_new(err, ENOENT, "page 0x%" PRIx64 " is in no image of the chain",
					vaddr);
		in_run = (vaddr - loc.run->vaddr) / ps;
		n = img_chain_span(top, loc.img, vaddr, loc.run->nr_pages - in_run);
		if (n > npages)
			n = npages;
		len = n * ps;
		if (loc.run->flags & IMG_RUN_ZERO) {
			/* Fresh anonymous memory is zero; file pages are not. */
			v = img_vma_at(top, vaddr);
			for (off = 0; v && v->kind == FERRY__VMA_KIND__VMA_FILE && !ret && off < len;
			     off += FILL_ZERO)
				ret = fill_add(f, (struct seg){ .dst = vaddr + off, .mem = f->zeroes,
					       .len = len - off < FILL_ZERO ? len - off : FILL_ZERO },
					       err);
		} else {
			off = loc.run->offset + (vaddr - loc.run->vaddr);
			if (off > loc.img->pages_size || len > loc.img->pages_size - off)
				return ferr_new(err, EBADMSG, "%s/pages.img is shorter than its "
						"pagemap", loc.img->path);
			ret = fill_add(f, (struct seg){ .dst = vaddr, .len = len, .img = loc.img,
						       .off = off }, err);
		}
		if (ret)
			return ret;
		vaddr += len;
		npages -= n;
	}
	return 0;
}

/* A run of the pagemap, but for the VMAs the process holds copy-on-write:
 * the owner's stub filled them; cow_diff does the rest. */
static int fill_run(struct fill *f, uint64_t vaddr, uint64_t npages, struct ferr *err)
{
	uint64_t ps = f->r->img->page_size, end = vaddr + npages * ps;

	while (vaddr < end) {
		const Ferry__Vma *v = img_vma_at(f->r->img, vaddr);
		uint64_t to = v && v->end < end ? v->end : end;
		int ret;

		if (!v || !rst_cow_held(f->r, v->start, v->end)) {
			ret = fill_segment(f, vaddr, (to - vaddr) / ps, err);
			if (ret)
				return ret;
		}
		vaddr = to;
	}
	return 0;
}

/* The page at vaddr in img's chain, or NULL where it is zero (or not in the
 * dump: fresh anonymous memory). */
static const uint8_t *page_at(struct fill *f, const struct img_image *img, uint64_t vaddr,
			      struct ferr *err, int *ret)
{
	struct img_page_loc loc;
	const uint8_t *data;

	*ret = 0;
	if (img_resolve(img, vaddr, &loc) || (loc.run->flags & IMG_RUN_ZERO))
		return NULL;
	data = loc_data(f, &loc, vaddr, img->page_size, err);
	if (!data)
		*ret = -err->code;
	return data;
}

static int drop_pages(struct fill *f, uint64_t start, uint64_t end, struct ferr *err)
{
	long rv;

	if (start == end)
		return 0;
	return rst_sys(&f->r->th[0], "madvise(MADV_DONTNEED) a page the owner had", &rv, err,
		       __NR_madvise, start, end - start, MADV_DONTNEED, 0, 0, 0);
}

enum { COW_SAME, COW_NONE, COW_WRITE, COW_DROP };

/* One share of a VMA to compare, on a thread of its own: per page, what
 * this process needs on top of the owner's. */
struct cow_part {
	struct fill *f, *of;
	uint64_t start, end;
	uint8_t *verdict;
	int ret;
	struct ferr err;
};

static void *cow_compare(void *arg)
{
	struct cow_part *p = arg;
	uint64_t ps = p->f->r->img->page_size;

	for (uint64_t a = p->start, i = 0; a < p->end && !p->ret; a += ps, i++) {
		const uint8_t *mine = page_at(p->f, p->f->r->img, a, &p->err, &p->ret);
		const uint8_t *theirs = p->ret ? NULL : page_at(p->of, p->of->r->img, a, &p->err,
								  &p->ret);

		if (!mine)
			p->verdict[i] = theirs ? COW_DROP : COW_NONE;
		else
			p->verdict[i] = theirs && !memcmp(mine, theirs, ps) ? COW_SAME : COW_WRITE;
	}
	return NULL;
}

/* Every pages.img of img's chain mapped now: the comparing threads only
 * read f's maps. */
static int map_chain(struct fill *f, const struct img_image *img, struct ferr *err)
{
	for (const struct img_image *i = img; i; i = i->parent)
		if (i->pages_size && !image_data(f, i, err))
			return -err->code;
	return 0;
}

/* A VMA inherited copy-on-write from c->owner: the pages in which this
 * process differs are written, those it does not have dropped, the rest
 * stay the owner's. */
static int cow_diff(struct fill *f, const struct rst_cow *c, struct ferr *err)
{
	const struct img_image *top = f->r->img, *own = c->owner->img;
	cleanup_val(fill) struct fill of = { .r = (struct rst *)c->owner, .uffd = -1 };
	uint64_t ps = top->page_size, n = (c->end - c->start) / ps, drop = 0, shared = 0;
	cleanup_free uint8_t *verdict = malloc(n ? n : 1);
	struct cow_part part[FILL_THREADS];
	size_t nw = par_workers(FILL_THREADS, c->end - c->start, FILL_PARALLEL_MIN);
	int ret = 0;

	if (!verdict)
		return ferr_sys(err, ENOMEM, "restore buffers");
	ret = maps_alloc(&of, own, err);
	if (!ret)
		ret = map_chain(f, top, err);
	if (!ret)
		ret = map_chain(&of, own, err);
	if (ret)
		return ret;
	for (size_t w = 0; w < nw; w++) {
		uint64_t from = n * w / nw, to = n * (w + 1) / nw;

		part[w] = (struct cow_part){ f, &of, c->start + from * ps, c->start + to * ps,
					     verdict + from, 0, { 0 } };
	}
	par_run(part, nw, sizeof(part[0]), cow_compare);
	for (size_t w = 0; w < nw; w++)
		if (part[w].ret) {
			*err = part[w].err;
			return part[w].ret;
		}
	for (uint64_t i = 0; !ret && i < n; i++) {
		uint64_t a = c->start + i * ps;

		if (verdict[i] == COW_DROP) {
			drop = drop ? drop : a;
			continue;
		}
		ret = drop_pages(f, drop ? drop : a, a, err);
		drop = 0;
		shared += verdict[i] == COW_SAME;
		if (!ret && verdict[i] == COW_WRITE) {
			const uint8_t *mine = page_at(f, top, a, err, &ret);

			if (!ret)
				ret = fill_add(f, (struct seg){ .dst = a, .len = ps, .mem = mine }, err);
		}
	}
	if (!ret && drop)
		ret = drop_pages(f, drop, c->end, err);
	f->r->res->cow_pages += shared;
	pr_debug("0x%" PRIx64 "-0x%" PRIx64 ": %" PRIu64 " page(s) shared with process %d",
		 c->start, c->end, shared, c->owner->tp ? (int)c->owner->tp->pid : 0);
	return ret;
}

/* ---- writing ------------------------------------------------------------------ */

#define FILL_WINDOWS 4 /* per writer: one per image of a chain, by depth */
#define FILL_STAGE_MAX (64u << 10) /* a piece this big goes by a call of its own */

struct writer {
	pid_t pid;
	int uffd;
	struct segs part[SEG_KINDS]; /* views into the fill's lists */
	struct img_window win[FILL_WINDOWS];
	struct img_window stage;     /* its buffer only: pieces for one call */
	uint64_t stage_dst, stage_len;
	int err;
	uint64_t bad_addr;
	const char *how;
};

static struct img_window *win_of(struct writer *w, const struct img_image *img)
{
	return &w->win[img->depth % FILL_WINDOWS];
}

/* How much of g from done on one piece takes: the rest, or from a file at
 * most a window. */
static uint64_t piece_len(struct writer *w, const struct seg *g, uint64_t done)
{
	uint64_t n = g->len - done;

	return g->mem || n <= win_of(w, g->img)->cap ? n : win_of(w, g->img)->cap;
}

/* Where the n bytes of g from done on are; NULL, with the writer's error
 * set, if they cannot be read. */
static const uint8_t *piece_data(struct writer *w, const struct seg *g, uint64_t done,
				 uint64_t n)
{
	const uint8_t *d;
	int ret;

	if (g->mem)
		return g->mem + done;
	d = img_window_get(win_of(w, g->img), g->img->pages_fd, g->img->pages_size,
			   g->off + done, n, &ret);
	if (!d) {
		w->err = ret == -ENODATA ? EBADMSG : -ret;
		w->bad_addr = g->dst + done;
		w->how = "read pages.img";
	}
	return d;
}

/* len bytes from src into the child at dst, by as many UFFDIO_COPY as it
 * takes; false with the writer's error set if one fails. */
static bool uffd_copy(struct writer *w, uint64_t dst, const uint8_t *src, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		struct uffdio_copy c = { .dst = dst + done, .src = (uintptr_t)(src + done),
					 .len = len - done, .mode = 0 };

		if (ioctl(w->uffd, UFFDIO_COPY, &c) == 0 || (errno == EAGAIN && c.copy > 0)) {
			done += c.copy > 0 ? (uint64_t)c.copy : len - done;
			continue;
		}
		if (errno == EAGAIN || errno == EINTR)
			continue;
		w->err = errno;
		w->bad_addr = dst + done;
		w->how = "UFFDIO_COPY";
		return false;
	}
	return true;
}

static bool stage_flush(struct writer *w)
{
	bool ok = !w->stage_len || uffd_copy(w, w->stage_dst, w->stage.buf, w->stage_len);

	w->stage_len = 0;
	return ok;
}

/* Small pieces that follow each other in the child (a page dirtied since
 * the parent image, between runs of it) are gathered in the stage and
 * written by one call: a call costs more than copying a few pages twice. */
static void write_uffd(struct writer *w, const struct segs *s)
{
	for (size_t i = 0; i < s->n && !w->err; i++) {
		const struct seg *g = &s->s[i];

		for (uint64_t done = 0, n; done < g->len && !w->err; done += n) {
			const uint8_t *d = piece_data(w, g, done, n = piece_len(w, g, done));
			uint64_t dst = g->dst + done;

			if (!d)
				return;
			if (w->stage_len && (w->stage_dst + w->stage_len != dst ||
					     w->stage_len + n > w->stage.cap) && !stage_flush(w))
				return;
			if (n >= FILL_STAGE_MAX) {
				uffd_copy(w, dst, d, n);
				continue;
			}
			if (!w->stage_len)
				w->stage_dst = dst;
			memcpy(w->stage.buf + w->stage_len, d, n);
			w->stage_len += n;
		}
	}
	stage_flush(w);
}

struct wv_call {
	struct iovec l[FILL_IOV], r[FILL_IOV];
	size_t k;
	uint64_t want;
};

static void writev_flush(struct writer *w, struct wv_call *c)
{
	ssize_t got;

	if (!c->k || w->err)
		return;
	got = process_vm_writev(w->pid, c->l, c->k, c->r, c->k, 0);
	if (got != (ssize_t)c->want) {
		w->err = got < 0 ? errno : EFAULT;
		w->bad_addr = (uint64_t)(uintptr_t)c->r[0].iov_base;
		w->how = "process_vm_writev";
	}
	c->k = 0;
	c->want = 0;
}

/* Up to FILL_IOV pieces per process_vm_writev. */
static void write_writev(struct writer *w, const struct segs *s)
{
	struct wv_call c = { .k = 0 };

	for (size_t i = 0; i < s->n && !w->err; i++) {
		const struct seg *g = &s->s[i];

		for (uint64_t done = 0, n; done < g->len && !w->err; done += n) {
			const uint8_t *d;

			n = piece_len(w, g, done);
			/* The pieces gathered go first where this one would
			 * not fit the call, or would read their window again. */
			if (c.k == FILL_IOV || c.want + n > FILL_CALL_MAX ||
			    (!g->mem && !img_window_holds(win_of(w, g->img), g->img->pages_fd,
							  g->off + done, n)))
				writev_flush(w, &c);
			if (w->err || !(d = piece_data(w, g, done, n)))
				return;
			c.l[c.k] = (struct iovec){ (void *)d, n };
			c.r[c.k++] = (struct iovec){ (void *)(uintptr_t)(g->dst + done), n };
			c.want += n;
		}
	}
	writev_flush(w, &c);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i <= FILL_WINDOWS; i++)
		if (img_window_init(i < FILL_WINDOWS ? &w->win[i] : &w->stage, IMG_WINDOW_SIZE)) {
			w->err = ENOMEM;
			w->how = "a read buffer";
		}
	if (!w->err)
		write_uffd(w, &w->part[SEG_UFFD]);
	if (!w->err)
		write_writev(w, &w->part[SEG_WRITEV]);
	for (int i = 0; i < FILL_WINDOWS; i++)
		img_window_free(&w->win[i]);
	img_window_free(&w->stage);
	return NULL;
}

/* Split s into nw contiguous shares of about equal bytes. */
static void split(const struct segs *s, size_t nw, struct segs *out, size_t stride)
{
	uint64_t acc = 0;
	size_t i = 0;

	for (size_t t = 0; t < nw; t++) {
		size_t first = i;
		struct segs *o = (struct segs *)((char *)out + t * stride);

		while (i < s->n && (t == nw - 1 || acc * nw < s->bytes * (t + 1)))
			acc += s->s[i++].len;
		*o = (struct segs){ .s = s->s + first, .n = i - first };
	}
}

static int write_all(struct fill *f, struct ferr *err)
{
	struct writer w[FILL_THREADS];
	size_t nw = par_workers(FILL_THREADS, f->r->res->bytes, FILL_PARALLEL_MIN);
	int ret = 0;

	for (size_t t = 0; t < nw; t++)
		w[t] = (struct writer){ .pid = f->r->pid, .uffd = f->uffd };
	for (int k = 0; k < SEG_KINDS; k++)
		split(&f->segs[k], nw, &w[0].part[k], sizeof(w[0]));
	par_run(w, nw, sizeof(w[0]), writer_main);
	for (size_t t = 0; t < nw; t++) {
		if (w[t].err && !ret)
			ret = ferr_sys(err, w[t].err, "write pages at 0x%" PRIx64 " into the new "
				       "process (%s)", w[t].bad_addr, w[t].how);
	}
	return ret;
}

int rst_fill_pages(struct rst *r, struct ferr *err)
{
	cleanup_val(fill) struct fill f = { .r = r, .uffd = -1, .child_uffd = -1 };
	int ret = maps_alloc(&f, r->img, err);

	if (ret)
		return ret;
	f.zeroes = mmap(NULL, FILL_ZERO, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f.zeroes == MAP_FAILED)
		return ferr_sys(err, ENOMEM, "restore buffers");
	if (kd_has(r->kd, KD_UFFD_COPY) && kd_has(r->kd, KD_PIDFD_GETFD) && uffd_open(&f, err)) {
		/* A kernel or policy that refuses it: the slower path works. */
		pr_info("userfaultfd unusable (%s): pages by process_vm_writev", err->msg);
		ret = uffd_close(&f, err);
		if (ret)
			return ret;
	}
	pr_debug("pages by %s", f.uffd >= 0 ? "UFFDIO_COPY and process_vm_writev" :
		 "process_vm_writev");
	for (size_t i = 0; !ret && i < r->nr_cow; i++)
		if (r->cow[i]->owner != r)
			ret = cow_diff(&f, r->cow[i], err);
	for (size_t i = 0; !ret && i < r->img->nr_runs; i++)
		ret = fill_run(&f, r->img->runs[i].vaddr, r->img->runs[i].nr_pages, err);
	if (!ret)
		ret = write_all(&f, err);
	if (uffd_close(&f, err) && !ret)
		ret = -err->code;
	return ret;
}

void rst_probe(struct kerndat *kd)
{
	/* UFFDIO_COPY into the child, and pidfd_getfd to take its uffd. */
	memset(kd, 0, sizeof(*kd));
	kerndat_probe_feature(kd, KD_UFFD_COPY);
	kerndat_probe_feature(kd, KD_PIDFD_GETFD);
}
