/* The target's VMAs, read by one of two backends that must agree exactly:
 * the PROCMAP_QUERY ioctl, or the text of /proc/PID/maps. */
#ifndef FERRY_PROC_LAYOUT_H
#define FERRY_PROC_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "proto/images.pb-c.h"

struct vma {
	uint64_t start, end;
	uint64_t pgoff;           /* bytes */
	uint32_t prot;            /* PROT_* */
	uint32_t flags;           /* MAP_SHARED or MAP_PRIVATE, MAP_GROWSDOWN */
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	Ferry__VmaKind kind;
	char *name;               /* path, [special], or NULL for anonymous */
};

struct vma_list {
	struct vma *v;
	size_t n, cap;
};

struct layout_ops {
	const char *name;
	/* Read every VMA of the process behind procfd (/proc/PID). */
	int (*read)(int procfd, struct vma_list *out, struct ferr *err);
};

extern const struct layout_ops layout_procmap_ops;
extern const struct layout_ops layout_maps_ops;
const struct layout_ops *layout_ops_by_name(const char *name);

/* Shared by the backends: append a VMA, classifying it from its name. VMAs
 * come in address order; a part already listed (a running process changed
 * its layout between two reads) is left out, so the list stays disjoint. */
int vma_list_add(struct vma_list *l, const struct vma *v, const char *name, struct ferr *err);
/* Free and zero; a zeroed list is empty, so freeing twice is harmless. */
void vma_list_free(struct vma_list *l);
DEFINE_CLEANUP_VAL(vma_list, vma_list_free)
/* Index of the VMA containing addr, or -1. */
long vma_list_find(const struct vma_list *l, uint64_t addr);

/* Fill a protobuf Vma from v (pointers into v; no copies). */
void vma_to_entry(const struct vma *v, Ferry__Vma *e);

#endif
