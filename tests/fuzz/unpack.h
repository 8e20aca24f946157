/* The fuzzers' input: a dump directory tree (its parent dump at p/, a
 * tree's other processes at pid-PID/, theirs at pid-PID/p/) packed as
 * records <u8 slot><u32 LE length><bytes>; tests/fuzz/pack.py packs a real
 * one. Shared by fuzz_images.c and fuzz_restore.c.
 *
 *   slot 0       the directory the next files go into, relative to the
 *                root: empty for the root itself, else up to three plain
 *                names of [A-Za-z0-9._-] joined by '/' ("p", "pid-42/p");
 *                at most FUZZ_DIRS_MAX directories per input
 *   slot 1..10   the file of that enum img_type (images/img.h) there
 *   slot 127     leave the inventories as they are (see below)
 *   other slots  ignored
 *
 * Every inventory.img of the tree is then made to name the sizes and
 * checksums of its directory's files as unpacked: without that, any
 * mutation of a metadata file would end at its checksum and the decoders
 * and checkers behind it (tree.img's above all) would never be reached. An
 * input with a slot-127 record keeps its inventories, so the checksum
 * checks are fuzzed too. */
#ifndef FERRY_TESTS_FUZZ_UNPACK_H
#define FERRY_TESTS_FUZZ_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_DIRS_MAX 8
#define FUZZ_SLOT_DIR 0
#define FUZZ_SLOT_KEEP_INVENTORY 127

/* Empty root (it stays: it may be a mount point), then unpack the input
 * into it. Never fails: what cannot be written is one more input. */
void fuzz_unpack(const char *root, const uint8_t *data, size_t size);

#endif
