/* Content identity of a dump's files (dump/fileid.h). */
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>

#include "common/log.h"
#include "dump/fileid.h"

int dump_fileid_seed(struct filesum_cache *c, const struct img_image *pimg, struct ferr *err)
{
	int ret = 0;

	for (size_t i = 0; pimg && !ret && i < pimg->nr_vmas; i++)
		ret = filesum_seed(c, pimg->vmas[i]->file, err);
	return ret;
}

void dump_fileid_fill(struct filesum_cache *c, struct target *t, const char *path,
		      Ferry__FileId *id)
{
	struct ferr err;

	ferr_clear(&err);
	if (filesum_fill(c, t->procfd, path, id, &err))
		pr_warn("process %d: no content checksum for %s: %s (a restore will accept it only "
			"with --file-validation=size or none)", t->pid, path, err.msg);
}

static void fill_new(struct filesum_cache *c, struct target *t, const char *path)
{
	Ferry__FileId *id = state_file_id(t->procfd, path);
	struct ferr err;

	if (!id)
		return;
	ferr_clear(&err);
	if (filesum_fill(c, t->procfd, path, id, &err))
		pr_debug("process %d: %s not hashed before the freeze: %s", t->pid, path, err.msg);
	ferry__file_id__free_unpacked(id, NULL);
}

void dump_fileid_live(struct filesum_cache *c, struct target *t, const struct vma_list *vl)
{
	struct ferr err;
	char path[64];

	for (size_t i = 0; i < vl->n; i++) {
		const struct vma *v = &vl->v[i];
		Ferry__FileId *id;

		if (v->kind != FERRY__VMA_KIND__VMA_FILE || !(v->flags & MAP_SHARED) ||
		    !(v->prot & PROT_WRITE))
			continue;
		snprintf(path, sizeof(path), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
		id = state_file_id(t->procfd, path);
		ferr_clear(&err);
		if (id && filesum_mark_live(c, id->dev, id->ino, &err))
			pr_warn("process %d: %s", t->pid, err.msg);
		if (id)
			ferry__file_id__free_unpacked(id, NULL);
	}
}

void dump_fileid_prehash(struct filesum_cache *c, struct target *t,
			 const struct layout_ops *layout)
{
	cleanup_val(vma_list) struct vma_list vl = { 0 };
	cleanup_val(fd_list) struct fd_list fl = { 0 };
	uint64_t t0 = now_ns(), files = c->hashed_files, bytes = c->hashed_bytes;
	struct ferr err;
	char path[64];

	ferr_clear(&err);
	fill_new(c, t, "exe");
	if (!layout->read(t->procfd, &vl, &err)) {
		dump_fileid_live(c, t, &vl);
		for (size_t i = 0; i < vl.n; i++) {
			if (vl.v[i].kind != FERRY__VMA_KIND__VMA_FILE)
				continue;
			snprintf(path, sizeof(path), "map_files/%" PRIx64 "-%" PRIx64, vl.v[i].start,
				 vl.v[i].end);
			fill_new(c, t, path);
		}
	}
	ferr_clear(&err);
	if (!fds_collect(t, &fl, &err)) {
		for (size_t i = 0; i < fl.n; i++) {
			if (fl.fds[i]->kind != FERRY__FD_KIND__FD_REG)
				continue;
			snprintf(path, sizeof(path), "fd/%u", fl.fds[i]->fd);
			fill_new(c, t, path);
		}
	}
	pr_debug("process %d: %" PRIu64 " files (%.1f MiB) hashed before the freeze in %.1f ms",
		 t->pid, c->hashed_files - files, (c->hashed_bytes - bytes) / 1048576.0,
		 (now_ns() - t0) / 1e6);
}

void dump_fileid_state(struct filesum_cache *c, struct target *t, struct dump_state *st,
		       struct fd_list *fl, const struct vma_list *vl)
{
	char path[64];

	dump_fileid_live(c, t, vl);
	if (st->proc && st->proc->mm)
		dump_fileid_fill(c, t, "exe", st->proc->mm->exe_id);
	for (size_t i = 0; i < fl->n; i++) {
		if (fl->fds[i]->kind != FERRY__FD_KIND__FD_REG)
			continue;
		snprintf(path, sizeof(path), "fd/%u", fl->fds[i]->fd);
		dump_fileid_fill(c, t, path, fl->fds[i]->file);
	}
}
