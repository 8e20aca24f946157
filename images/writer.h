/* Internal to images/: the state of one dump being written, shared by
 * writer.c (the directory, entries, inventory) and pageout.c (page runs,
 * page data, hashes.img). */
#ifndef FERRY_IMAGES_WRITER_H
#define FERRY_IMAGES_WRITER_H

#include "images/format.h"

struct img_writer {
	char *path;
	int dirfd;
	Ferry__DumpKind kind;
	uint32_t root_pid;
	uint64_t start_time;
	uint32_t page_size;
	uint8_t id[IMG_ID_SIZE];
	char *parent;
	uint8_t parent_id[IMG_ID_SIZE];
	char *tracker;
	bool page_hashes;           /* hashes.img is written */
	struct img_hashes parent_hashes;  /* the parent's, for in-parent runs */
	uint64_t zero_hash;
	uint64_t *hbuf;             /* one hashes.img entry being built */
	struct img_file_writer files[IMG_NR_TYPES]; /* IMG_PAGES unused: raw fd below */
	bool open[IMG_NR_TYPES];
	int pages_fd;
	uint64_t pages_off;         /* end of pages.img */
	struct img_pages_sink *sink;  /* where page data goes instead, or NULL */
	/* The run being extended; emitted when something non-contiguous arrives. */
	bool have_run;
	struct img_run run;
	XXH3_state_t *run_hash;
	bool run_prehashed;         /* run.xxh3 came with the data; never extended */
	uint64_t next_vaddr;        /* runs must not go below this */
	uint64_t nr_threads;
	bool have_process;
	bool committed;
	Ferry__PagemapStats stats;
};

/* pageout.c: write out the run being extended, if any (commit's last one). */
int img_writer_emit_run(struct img_writer *w, struct ferr *err);

#endif
