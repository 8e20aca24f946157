/* The content identity of every file behind a dump (proc/filesum.h): the
 * executable, each file mapping and each regular file an fd has open.
 * Hashed once per dump, reused from the parent round where unchanged, and
 * for a final dump hashed before the freeze, so that inside it only a file
 * that appeared meanwhile costs a read. A file that cannot be read is
 * recorded without a checksum, with a warning: restore then refuses it in
 * its default mode, naming it. */
#ifndef FERRY_DUMP_FILEID_H
#define FERRY_DUMP_FILEID_H

#include "images/img.h"
#include "proc/fds.h"
#include "proc/filesum.h"
#include "proc/layout.h"
#include "proc/state.h"

/* What the parent dump recorded for its mappings. */
int __must_check dump_fileid_seed(struct filesum_cache *c, const struct img_image *pimg,
				  struct ferr *err);

/* Before the freeze: the layout, the executable and the fds read once while
 * the target runs, their files hashed into the cache. Best effort: what it
 * misses is hashed later. */
void dump_fileid_prehash(struct filesum_cache *c, struct target *t,
			 const struct layout_ops *layout);

/* One file the process has at procfd/path (map_files/..., exe, fd/N),
 * into id; a failure is a warning. */
void dump_fileid_fill(struct filesum_cache *c, struct target *t, const char *path,
		      Ferry__FileId *id);

/* Files vl maps shared and writable: live, never checksummed. */
void dump_fileid_live(struct filesum_cache *c, struct target *t, const struct vma_list *vl);

/* The executable and the fds' files of a frozen target (vl: its layout). */
void dump_fileid_state(struct filesum_cache *c, struct target *t, struct dump_state *st,
		       struct fd_list *fl, const struct vma_list *vl);

#endif
