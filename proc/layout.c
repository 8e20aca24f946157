/* VMA list helpers shared by the layout backends: classification by name
 * and the conversion to image entries. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/util.h"
#include "proc/layout.h"

static Ferry__VmaKind classify(const char *name, uint64_t inode)
{
	if (!name || !*name)
		return FERRY__VMA_KIND__VMA_ANON;
	/* MAP_SHARED|MAP_ANONYMOUS is a shmem object the kernel names so. */
	if (strcmp(name, "/dev/zero (deleted)") == 0 || strncmp(name, "[anon_shmem:", 12) == 0)
		return FERRY__VMA_KIND__VMA_ANON;
	if (inode || name[0] == '/')
		return FERRY__VMA_KIND__VMA_FILE;
	if (strcmp(name, "[heap]") == 0)
		return FERRY__VMA_KIND__VMA_HEAP;
	if (strcmp(name, "[stack]") == 0)
		return FERRY__VMA_KIND__VMA_STACK;
	if (strcmp(name, "[vdso]") == 0)
		return FERRY__VMA_KIND__VMA_VDSO;
	if (strncmp(name, "[vvar", 5) == 0)
		return FERRY__VMA_KIND__VMA_VVAR;
	if (strcmp(name, "[vsyscall]") == 0)
		return FERRY__VMA_KIND__VMA_VSYSCALL;
	if (strncmp(name, "[anon:", 6) == 0)
		return FERRY__VMA_KIND__VMA_ANON;
	return FERRY__VMA_KIND__VMA_SPECIAL;
}

int vma_list_add(struct vma_list *l, const struct vma *v, const char *name, struct ferr *err)
{
	struct vma *nv, clip;

	/* A process that runs while its layout is read (a pre-dump round) can
	 * grow or merge a VMA between two reads, and the next read, which
	 * starts at the end of the last VMA listed, then returns a VMA that
	 * began below it: the same range twice. Seen with churning mappings.
	 * The list stays sorted and disjoint: what is listed already is left
	 * out of the new entry (a frozen process never gets here). */
	if (l->n && v->start < l->v[l->n - 1].end) {
		uint64_t prev_end = l->v[l->n - 1].end;

		if (v->end <= prev_end)
			return 0;
		clip = *v;
		if (clip.inode)
			clip.pgoff += prev_end - clip.start;
		clip.start = prev_end;
		v = &clip;
	}

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return ferr_sys(err, ENOMEM, "VMA list");
		l->v = nv;
		l->cap = cap;
	}
	nv = &l->v[l->n];
	*nv = *v;
	nv->name = NULL;
	if (name && *name) {
		nv->name = strdup(name);
		if (!nv->name)
			return ferr_sys(err, ENOMEM, "VMA list");
	}
	nv->kind = classify(nv->name, nv->inode);
	/* Neither maps nor PROCMAP_QUERY shows VM_GROWSDOWN; the main stack is
	 * the growsdown VMA of every process ferry dumps. */
	if (nv->kind == FERRY__VMA_KIND__VMA_STACK)
		nv->flags |= MAP_GROWSDOWN;
	l->n++;
	return 0;
}

void vma_list_free(struct vma_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

struct vma_key {
	const struct vma_list *l;
	uint64_t addr;
};

/* The VMAs wholly below addr: a prefix of the sorted, disjoint list. */
static bool vma_below(const void *ctx, size_t i)
{
	const struct vma_key *k = ctx;

	return k->l->v[i].end <= k->addr;
}

long vma_list_find(const struct vma_list *l, uint64_t addr)
{
	struct vma_key k = { l, addr };
	size_t i = bsearch_first(l->n, vma_below, &k);

	return i < l->n && l->v[i].start <= addr ? (long)i : -1;
}

void vma_to_entry(const struct vma *v, Ferry__Vma *e)
{
	ferry__vma__init(e);
	e->start = v->start;
	e->end = v->end;
	e->prot = v->prot;
	e->flags = v->flags;
	e->kind = v->kind;
	e->has_pgoff = true;
	e->pgoff = v->pgoff;
	e->has_dev_major = e->has_dev_minor = e->has_inode = true;
	e->dev_major = v->dev_major;
	e->dev_minor = v->dev_minor;
	e->inode = v->inode;
	e->name = v->name;
	if (v->kind == FERRY__VMA_KIND__VMA_FILE)
		e->path = v->name;
}

const struct layout_ops *layout_ops_by_name(const char *name)
{
	if (strcmp(name, layout_procmap_ops.name) == 0)
		return &layout_procmap_ops;
	if (strcmp(name, layout_maps_ops.name) == 0)
		return &layout_maps_ops;
	return NULL;
}
