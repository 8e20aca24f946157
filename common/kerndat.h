/* What the running kernel can do, probed once by behaviour and consulted
 * everywhere (like CRIU's kerndat, but passed around, not global). */
#ifndef FERRY_COMMON_KERNDAT_H
#define FERRY_COMMON_KERNDAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kd_feature {
	KD_PROCMAP_QUERY,
	KD_PAGEMAP_SCAN,
	KD_PROC_PAGEMAP,
	KD_UFFD,
	KD_UFFD_WP_ASYNC,
	KD_UFFD_COPY,
	KD_SOFT_DIRTY,
	KD_PROCESS_VM_READV,
	KD_PROCESS_VM_PIDFD,
	KD_PROCESS_VM_NOWAIT,
	KD_PROCESS_VMSPLICE,
	KD_PIDFD_OPEN,
	KD_PIDFD_GETFD,
	KD_CLONE3_SET_TID,
	KD_PTRACE,
	KD_IO_URING,
	KD_IO_URING_SPLICE,
	KD_IO_URING_WRITE,
	KD_IO_URING_SEND,
	KD_IO_URING_SEND_ZC,
	KD_UNIX_DIAG,
	KD_NR_FEATURES,
};

#define KD_NOTE_MAX 160

struct kerndat {
	bool has[KD_NR_FEATURES];
	char note[KD_NR_FEATURES][KD_NOTE_MAX]; /* why a feature is missing, or detail */
	uint64_t uffd_features;                 /* UFFDIO_API answer to features=0 */
	char release[65];
	char machine[65];
	int page_size;
};

struct kd_feature_desc {
	const char *key;         /* the --json key */
	const char *what;        /* one line for humans */
	bool essential;          /* dump and restore cannot work without it */
};

extern const struct kd_feature_desc kd_features[KD_NR_FEATURES];

/* Probe everything. Never fails: a probe that cannot run reports "no" with a
 * note. Features named in $FERRY_HIDE_FEATURES (comma-separated keys) are then
 * reported missing, so that fallbacks and refusals can be tested on a kernel
 * that has everything. */
void kerndat_probe(struct kerndat *kd);
void kerndat_hide(struct kerndat *kd, const char *keys);

/* Probe one feature (and what it depends on) into a zeroed kd; for tests. */
bool kerndat_probe_one(struct kerndat *kd, enum kd_feature f);

/* What a step that needs a feature or two calls instead of kerndat_probe():
 * probe f (and what it depends on) into kd, then apply $FERRY_HIDE_FEATURES
 * as kerndat_probe() does. Calls on the same zeroed kd add up. Returns
 * kd_has(kd, f). */
bool kerndat_probe_feature(struct kerndat *kd, enum kd_feature f);

static inline bool kd_has(const struct kerndat *kd, enum kd_feature f)
{
	return kd->has[f];
}

/* -1 when every essential feature is present, else the first missing one. */
int kerndat_missing_essential(const struct kerndat *kd);

#endif
