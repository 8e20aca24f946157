/* Kernel UAPI newer than Debian 12's 6.1 headers. Every definition is guarded
 * so that newer headers win; nothing here implies the running kernel has the
 * feature: common/kerndat.c probes that by behaviour. */
#ifndef FERRY_COMMON_COMPAT_H
#define FERRY_COMMON_COMPAT_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

/* PROCMAP_QUERY: binary VMA queries on /proc/PID/maps (Linux 6.11). */
#ifndef PROCMAP_QUERY
enum procmap_query_flags {
	PROCMAP_QUERY_VMA_READABLE = 0x01,
	PROCMAP_QUERY_VMA_WRITABLE = 0x02,
	PROCMAP_QUERY_VMA_EXECUTABLE = 0x04,
	PROCMAP_QUERY_VMA_SHARED = 0x08,
	PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10,
	PROCMAP_QUERY_FILE_BACKED_VMA = 0x20,
};

struct procmap_query {
	__u64 size;
	__u64 query_flags;   /* in */
	__u64 query_addr;    /* in */
	__u64 vma_start;     /* out */
	__u64 vma_end;       /* out */
	__u64 vma_flags;     /* out */
	__u64 vma_page_size; /* out */
	__u64 vma_offset;    /* out */
	__u64 inode;         /* out */
	__u32 dev_major;     /* out */
	__u32 dev_minor;     /* out */
	__u32 vma_name_size; /* in/out */
	__u32 build_id_size; /* in/out */
	__u64 vma_name_addr; /* in */
	__u64 build_id_addr; /* in */
};

#define PROCFS_IOCTL_MAGIC 'f'
#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)
#endif

/* PAGEMAP_SCAN: query and write-protect page state by ranges (Linux 6.7). */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* userfaultfd features newer than 6.1. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* process_vm_readv flags proposed in 2026 (seed 000); not in any release yet. */
#ifndef PROCESS_VM_PIDFD
#define PROCESS_VM_PIDFD (1UL << 0)
#endif
#ifndef PROCESS_VM_NOWAIT
#define PROCESS_VM_NOWAIT (1UL << 1)
#endif

/* /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PME_PFN_MASK ((1ULL << 55) - 1)
#define PME_SOFT_DIRTY (1ULL << 55)
#define PME_EXCLUSIVE (1ULL << 56)
#define PME_UFFD_WP (1ULL << 57)
#define PME_FILE_SHARED (1ULL << 61)
#define PME_SWAP (1ULL << 62)
#define PME_PRESENT (1ULL << 63)

#endif
