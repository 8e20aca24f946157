/* The image format library: one directory per dump, framed protobuf-c entries
 * behind a magic and version, page data page-aligned in pages.img, a pagemap of
 * checksummed runs, parent chains, and strict validation of untrusted input.
 * No ptrace and no /proc here. docs/IMAGES.md specifies the format. */
#ifndef FERRY_IMAGES_IMG_H
#define FERRY_IMAGES_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "proto/images.pb-c.h"

#define IMG_MAGIC 0x59525246u /* "FRRY" as little-endian bytes */
#define IMG_FORMAT_MAJOR 1
#define IMG_FORMAT_MINOR 0
#define IMG_HEADER_SIZE 16
#define IMG_ENTRY_MAX (16u << 20)   /* largest entry a reader accepts */
#define IMG_CHAIN_MAX 64            /* deepest parent chain a reader follows */
#define IMG_RUN_DATA_MAX_PAGES 512  /* writer starts a new data run after this many */
#define IMG_ID_SIZE 16
#define IMG_HASH_ENTRY_PAGES 65536  /* most page hashes in one hashes.img entry */
#define IMG_ADDR_LIMIT (1ULL << 57) /* no user address reaches this (5-level paging) */
#define IMG_FILES_MAX 32            /* files an inventory may list */
#define IMG_THREADS_MAX (1u << 20)  /* threads of one process */
#define IMG_PID_MAX (1u << 22)      /* the kernel's PID_MAX_LIMIT */
#define IMG_FD_MAX (1u << 20)       /* fd numbers below the kernel's nr_open ceiling */
#define IMG_GROUPS_MAX 65536        /* NGROUPS_MAX */
#define IMG_SIGNALS 64              /* signal numbers 1..64 */
#define IMG_SIGINFO_SIZE 128        /* sizeof(siginfo_t) */
#define IMG_SIGINFO_MAX 65536       /* pending signals in one queue */
#define IMG_FXSAVE_SIZE 512         /* the legacy FXSAVE area (fpregs) */
#define IMG_XSAVE_MAX (64u << 10)   /* NT_X86_XSTATE is ~11 KiB with AMX */
#define IMG_AUXV_MAX 4096           /* the kernel keeps far less */
#define IMG_FD_ENTRIES_MAX (1u << 20) /* epoll targets or inotify watches of one fd */
#define IMG_MEMFD_NAME_MAX 249      /* MFD_NAME_MAX_LEN */

enum img_type {
	IMG_INVENTORY = 1,
	IMG_PROCESS,
	IMG_THREADS,
	IMG_VMAS,
	IMG_FDS,
	IMG_PAGEMAP,
	IMG_PAGES,
	IMG_HASHES,      /* optional: per-page hashes for the hash tracker */
	IMG_FDATA,       /* optional: contents of memfds and deleted files */
	IMG_TREE,        /* a tree's root dump: its processes and shared objects */
	IMG_NR_TYPES,
};

/* Run flags, as stored in PagemapRun.flags. */
#define IMG_RUN_IN_PARENT 1u
#define IMG_RUN_ZERO 2u
#define IMG_RUN_FLAGS_KNOWN (IMG_RUN_IN_PARENT | IMG_RUN_ZERO)

#define IMG_INVENTORY_NAME "inventory.img"

/* The fixed header at offset 0 of every image file (little-endian). */
struct img_header {
	uint32_t magic;
	uint32_t type;
	uint16_t major;
	uint16_t minor;
	uint32_t reserved;
};

const char *img_type_file(enum img_type t);

/* ---- writing ---------------------------------------------------------- */

struct img_writer;

/* Where a writer's page data goes instead of DIR/pages.img (a page server's
 * stream): pages.img then keeps its header page and a hole of the data's
 * size. open is called once per writer with its directory; write from any
 * thread, each byte of the file once, in no particular order, the header
 * (offset 0, one page) first. */
struct img_pages_sink {
	int (*open)(struct img_pages_sink *s, const char *dir, struct ferr *err);
	int (*write)(struct img_pages_sink *s, uint64_t off, const void *data, size_t len,
		     struct ferr *err);
	/* Or from a pipe: len bytes for off wait in pipe. NULL: not offered. */
	int (*splice)(struct img_pages_sink *s, uint64_t off, int pipe, size_t len,
		      struct ferr *err);
};

struct img_writer_opts {
	Ferry__DumpKind kind;
	uint32_t root_pid;
	const char *parent;   /* parent dump, relative to the new directory; NULL for none */
	const struct img_image *parent_img; /* it, opened by the caller already, or NULL */
	const char *tracker;  /* dirty tracker armed for the next round, recorded; or NULL */
	bool page_hashes;     /* write hashes.img: the hash of every page, for the next round */
	struct img_pages_sink *sink;  /* page data goes there, not into pages.img; or NULL */
	bool tree;            /* a tree's root: tree.img is written (img_write_tree_item) */
	uint64_t start_time;  /* the process's start time (see Inventory.start_time), or 0 */
};

/* DIR, created 0700 if new; one that exists must be the caller's, writable
 * by no one else, and not a symbolic link. Its fd in *out. */
int __must_check img_own_dir(const char *dir, int *out, struct ferr *err);

/* Create (or reuse) DIR and start a dump in it. Any old inventory is removed
 * first, so the directory reads as incomplete until img_writer_commit(). */
int __must_check img_writer_create(struct img_writer **out, const char *dir,
				   const struct img_writer_opts *opts, struct ferr *err);

int __must_check img_write_process(struct img_writer *w, const Ferry__Process *p, struct ferr *err);
int __must_check img_write_thread(struct img_writer *w, const Ferry__Thread *t, struct ferr *err);
int __must_check img_write_vma(struct img_writer *w, const Ferry__Vma *v, struct ferr *err);
int __must_check img_write_fd(struct img_writer *w, const Ferry__Fd *f, struct ferr *err);
int __must_check img_write_tree_item(struct img_writer *w, const Ferry__TreeItem *t,
				     struct ferr *err);
/* Copy size bytes read from src (from its offset 0) into fdata.img; where
 * they went in *off, for the Fd entry's FileData. A shorter src is an error. */
int __must_check img_write_fdata(struct img_writer *w, int src, uint64_t size, uint64_t *off,
				 struct ferr *err);

/* Page runs, in ascending address order. Data is copied out before return. */
int __must_check img_pages_data(struct img_writer *w, uint64_t vaddr, const void *data,
				uint64_t nr_pages, struct ferr *err);
/* One run whose XXH3-64 the caller computed (e.g. on another thread, while
 * the data was in cache): written as its own run, never merged. At most
 * IMG_RUN_DATA_MAX_PAGES pages. */
int __must_check img_pages_data_hashed(struct img_writer *w, uint64_t vaddr, const void *data,
				       uint64_t nr_pages, uint64_t xxh3, struct ferr *err);
/* The same in three steps, for writers on several threads: reserve len
 * bytes of pages.img (in the order the runs will be added), write them from
 * any thread, then add the run in address order. data is what was written
 * (for hashes.img). */
uint64_t img_pages_reserve(struct img_writer *w, uint64_t len);
int __must_check img_pages_write_at(struct img_writer *w, uint64_t off, const void *data, size_t len,
				    struct ferr *err);
/* The same as img_pages_write_at, the len bytes waiting in a pipe. */
int __must_check img_pages_splice_at(struct img_writer *w, uint64_t off, int pipe, size_t len,
				     struct ferr *err);
/* Can page data come from a pipe (a file, or a sink that offers splice)? */
bool img_pages_can_splice(const struct img_writer *w);
int __must_check img_pages_data_at(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages,
				   uint64_t off, uint64_t xxh3, const void *data, struct ferr *err);
int __must_check img_pages_zero(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages,
				struct ferr *err);
int __must_check img_pages_parent(struct img_writer *w, uint64_t vaddr, uint64_t nr_pages,
				  struct ferr *err);

/* Flush, fsync, then write the inventory atomically. freeze_ns may be 0. */
int __must_check img_writer_commit(struct img_writer *w, uint64_t freeze_ns, struct ferr *err);

/* Release a writer; without a commit the directory stays incomplete. */
void img_writer_free(struct img_writer *w);
DEFINE_CLEANUP(img_writer, img_writer_free)

const Ferry__PagemapStats *img_writer_stats(const struct img_writer *w);
/* The 16 random bytes naming this dump (a child records them as parent_id). */
const uint8_t *img_writer_id(const struct img_writer *w);

/* ---- reading ---------------------------------------------------------- */

struct img_run {
	uint64_t vaddr;
	uint64_t nr_pages;
	uint64_t offset;
	uint64_t xxh3;
	uint32_t flags;
};

struct img_image {
	char *path;                   /* as given, for messages */
	int dirfd;
	Ferry__Inventory *inv;
	struct img_image *parent;     /* NULL at the end of the chain */
	unsigned depth;               /* 0 for the image opened by the caller */
	uint32_t page_size;
	int pages_fd;
	uint64_t pages_size;
	struct img_run *runs;
	size_t nr_runs;
	Ferry__Vma **vmas;
	size_t nr_vmas;
};

/* Open DIR and its whole parent chain, validating everything but the page
 * checksums (img_verify does those). */
int __must_check img_open(struct img_image **out, const char *dir, struct ferr *err);
void img_close(struct img_image *img);
DEFINE_CLEANUP(img_image, img_close)
/* Open dir on top of a chain already open (a migration's next round): only
 * dir is read; parent must be the dump its inventory names. On success the
 * new image owns parent (img_close closes both); on error parent is as it
 * was. */
int __must_check img_open_on(struct img_image **out, const char *dir, struct img_image *parent,
			     struct ferr *err);
/* Close an image opened with img_open_on but not its parent, which goes
 * back to the caller as it was. */
void img_close_on(struct img_image *img);

int __must_check img_read_process(struct img_image *img, Ferry__Process **out, struct ferr *err);
int __must_check img_read_threads(struct img_image *img, Ferry__Thread ***out, size_t *n,
				  struct ferr *err);
int __must_check img_read_fds(struct img_image *img, Ferry__Fd ***out, size_t *n, struct ferr *err);
/* tree.img, checked (one field per entry, processes unique, a root first,
 * every parent in the tree, objects unique); *n 0 when the dump has none. */
int __must_check img_read_tree(struct img_image *img, Ferry__TreeItem ***out, size_t *n,
			       struct ferr *err);
void img_free_entries(void *entries, size_t n);

/* fdata.img mapped read-only: its size checked against the inventory, its
 * header and its checksum. img_read_fds has checked every FileData of the
 * dump to lie inside it. */
struct img_fdata {
	const uint8_t *map;
	size_t size;
};
/* -ENOENT, without a message, when the dump has no fdata.img. */
int __must_check img_fdata_map(const struct img_image *img, struct img_fdata *out,
			       struct ferr *err);
void img_fdata_unmap(struct img_fdata *d);   /* a zeroed d is fine */

/* Is p a parent path as ferry writes it: relative, at most one leading
 * "..", then plain names ("pre-1", "../pre-1")? */
bool img_parent_path_ok(const char *p);
/* Is s (len bytes) "pid-N", N a process ID without a leading 0: a tree's
 * other process's directory? */
bool img_pid_dir_name(const char *s, size_t len);

/* Does any run of img's pagemap (of any flags) overlap [start, end)? */
bool img_has_runs(const struct img_image *img, uint64_t start, uint64_t end);

/* The VMA containing addr, or NULL. */
const Ferry__Vma *img_vma_at(const struct img_image *img, uint64_t addr);

/* Where the page at vaddr lives: the image holding its data (or zero) run. */
struct img_page_loc {
	const struct img_image *img;
	const struct img_run *run;
};
int img_resolve(const struct img_image *img, uint64_t vaddr, struct img_page_loc *loc);

/* How many of the n pages from vaddr, all resolving to owner's run, stay
 * in one run of every image between top and owner: one copyable span. */
uint64_t img_chain_span(const struct img_image *top, const struct img_image *owner,
			uint64_t vaddr, uint64_t n);

/* Copy nr_pages starting at vaddr out of the chain into buf (zero runs as
 * zeroes). Every page must be described by the pagemap. */
int __must_check img_read_pages(const struct img_image *img, uint64_t vaddr, uint64_t nr_pages,
				void *buf, struct ferr *err);

struct img_verify_report {
	uint64_t images;
	uint64_t runs_checked;
	uint64_t bytes_checked;
	uint64_t bad_runs;
};

/* Check the checksum of every data run of every image in the chain. Returns
 * -EBADMSG naming the first bad run, after counting all of them. */
int __must_check img_verify(const struct img_image *img, struct img_verify_report *rep,
			    struct ferr *err);

/* The same for img alone, not its parents (checked when they arrived). */
int __must_check img_verify_one(const struct img_image *img, struct img_verify_report *rep,
				struct ferr *err);

/* Per-page hashes of a dump (hashes.img), for the hash tracker: runs of
 * consecutive pages, ascending, each page's XXH3-64 as the chain stores it. */
struct img_hash_run {
	uint64_t vaddr, nr_pages;
	uint64_t *h;
};

struct img_hashes {
	struct img_hash_run *runs;
	size_t n;
	uint64_t *all;        /* one allocation behind every run's h */
	uint32_t page_size;
};

/* Load img's hashes.img (-ENOENT without a message if it has none). */
int __must_check img_hashes_load(const struct img_image *img, struct img_hashes *out,
				 struct ferr *err);
/* The hash of the page at vaddr, and in *avail how many consecutive pages
 * from vaddr have hashes in the same run; NULL if vaddr has none. */
const uint64_t *img_hashes_find(const struct img_hashes *h, uint64_t vaddr, uint64_t *avail);
void img_hashes_free(struct img_hashes *h);   /* leaves h zeroed; a zeroed h is fine */
DEFINE_CLEANUP_VAL(img_hashes, img_hashes_free)

/* ---- internal, shared by the library's files ---------------------------- */

int img_header_check(const void *buf, size_t len, enum img_type type, const char *what,
		     struct ferr *err);
void img_header_fill(struct img_header *h, enum img_type type);

/* Decode every entry of an in-memory image file as messages of desc. */
int img_decode_entries(const uint8_t *buf, size_t len, enum img_type type,
		       const ProtobufCMessageDescriptor *desc, const char *what,
		       ProtobufCMessage ***out, size_t *n, struct ferr *err);

#endif
