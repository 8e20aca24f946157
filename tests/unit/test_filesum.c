/* Unit tests of file identity by content: the XXH3-128 and ELF build-id a
 * dump records (proc/filesum.c) with its once-per-dump cache, and restore's
 * check of a file in each --file-validation mode (restore/filecheck.c):
 * a copy with another inode is the same file, a one-byte change is not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "proc/filesum.h"
#include "proc/state.h"
#include "restore/validate.h"

static char dir[64];

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/ferry-fsum-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
	char cmd[128];

	(void)st;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void put(const char *name, const void *p, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static int opened(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return open(path, O_RDONLY);
}

static void test_hash_is_xxh3_128(void **st)
{
	size_t n = 300 * 1024 + 17;
	uint8_t *buf = malloc(n), sum[FILESUM_LEN];
	XXH128_canonical_t c;
	struct ferr err;
	int fd;

	(void)st;
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 31 + (i >> 9));
	put("data", buf, n);
	fd = opened("data");
	assert_int_equal(filesum_hash(fd, n, "data", sum, &err), 0);
	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, n));
	assert_memory_equal(sum, c.digest, FILESUM_LEN);
	/* A prefix is the prefix's checksum; past the end is an error. */
	assert_int_equal(filesum_hash(fd, 4096, "data", sum, &err), 0);
	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, 4096));
	assert_memory_equal(sum, c.digest, FILESUM_LEN);
	assert_int_equal(filesum_hash(fd, n + 1, "data", sum, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "changed while read"));
	close(fd);
	free(buf);
}

/* A minimal ELF64 file: header, one PT_NOTE, a non-build-id note then the
 * GNU build-id note. */
static void test_build_id(void **st)
{
	uint8_t f[512] = { 0 }, out[FILESUM_BUILD_ID_MAX];
	Elf64_Ehdr *e = (Elf64_Ehdr *)f;
	Elf64_Phdr *ph = (Elf64_Phdr *)(f + sizeof(*e));
	uint8_t *notes = f + 256, *p = notes;
	Elf64_Nhdr nh;
	struct ferr err;
	size_t len;
	int fd;

	(void)st;
	memcpy(e->e_ident, ELFMAG, SELFMAG);
	e->e_ident[EI_CLASS] = ELFCLASS64;
	e->e_ident[EI_DATA] = ELFDATA2LSB;
	e->e_phoff = sizeof(*e);
	e->e_phentsize = sizeof(*ph);
	e->e_phnum = 1;
	nh = (Elf64_Nhdr){ .n_namesz = 4, .n_descsz = 8, .n_type = 5 };
	memcpy(p, &nh, sizeof(nh));
	memcpy(p + sizeof(nh), "GNU", 4);
	p += sizeof(nh) + 4 + 8;
	nh = (Elf64_Nhdr){ .n_namesz = 4, .n_descsz = 20, .n_type = NT_GNU_BUILD_ID };
	memcpy(p, &nh, sizeof(nh));
	memcpy(p + sizeof(nh), "GNU", 4);
	for (int i = 0; i < 20; i++)
		p[sizeof(nh) + 4 + i] = (uint8_t)(0xa0 + i);
	p += sizeof(nh) + 4 + 20;
	*ph = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 256, .p_filesz = (uint64_t)(p - notes),
			    .p_align = 4 };
	put("elf", f, sizeof(f));
	fd = opened("elf");
	assert_int_equal(filesum_build_id(fd, sizeof(f), out, &len, &err), 0);
	assert_int_equal(len, 20);
	assert_int_equal(out[0], 0xa0);
	assert_int_equal(out[19], 0xa0 + 19);
	close(fd);
	/* Not ELF: no build-id, no error. A note running past its segment: none. */
	put("text", "hello, world\n", 13);
	fd = opened("text");
	assert_int_equal(filesum_build_id(fd, 13, out, &len, &err), 0);
	assert_int_equal(len, 0);
	close(fd);
	ph->p_filesz = 40;
	put("elf", f, sizeof(f));
	fd = opened("elf");
	assert_int_equal(filesum_build_id(fd, sizeof(f), out, &len, &err), 0);
	assert_int_equal(len, 0);
	close(fd);
}

/* Many VMAs of one file: hashed once. Seeded from a parent: not opened. */
static void test_cache(void **st)
{
	cleanup_val(filesum_cache) struct filesum_cache c = { 0 };
	struct filesum_cache seeded = { 0 };
	Ferry__FileId *a, *b;
	struct ferr err;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	(void)st;
	put("lib", "library bytes", 13);
	a = state_file_id(dfd, "lib");
	b = state_file_id(dfd, "lib");
	assert_non_null(a);
	assert_true(a->has_ctime_ns);
	assert_int_equal(filesum_fill(&c, dfd, "lib", a, &err), 0);
	assert_int_equal(filesum_fill(&c, dfd, "lib", b, &err), 0);
	assert_int_equal(c.hashed_files, 1);
	assert_int_equal(c.hits, 1);
	assert_true(b->has_xxh128 && b->xxh128.len == FILESUM_LEN);
	assert_memory_equal(a->xxh128.data, b->xxh128.data, FILESUM_LEN);
	assert_false(a->has_build_id);
	/* The next round: the parent's entry answers, the path is not read. */
	assert_int_equal(filesum_seed(&seeded, a, &err), 0);
	free(b->xxh128.data);
	b->xxh128.data = NULL;
	b->has_xxh128 = false;
	assert_int_equal(filesum_fill(&seeded, dfd, "no-such-file", b, &err), 0);
	assert_int_equal(seeded.hashed_files, 0);
	assert_memory_equal(a->xxh128.data, b->xxh128.data, FILESUM_LEN);
	filesum_cache_free(&seeded);
	/* Mapped shared and writable: live, never a checksum (which the
	 * process's writes through the mapping could make stale). */
	ferry__file_id__free_unpacked(b, NULL);
	b = state_file_id(dfd, "lib");
	assert_int_equal(filesum_mark_live(&seeded, b->dev, b->ino, &err), 0);
	assert_int_equal(filesum_fill(&seeded, dfd, "lib", b, &err), 0);
	assert_true(b->has_live && b->live);
	assert_false(b->has_xxh128);
	filesum_cache_free(&seeded);
	ferry__file_id__free_unpacked(a, NULL);
	ferry__file_id__free_unpacked(b, NULL);
	close(dfd);
}

/* What the dump records for name now. */
static Ferry__FileId *dumped(const char *name)
{
	struct filesum_cache c = { 0 };
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	Ferry__FileId *id = state_file_id(dfd, name);
	struct ferr err;

	assert_non_null(id);
	assert_int_equal(filesum_fill(&c, dfd, name, id, &err), 0);
	filesum_cache_free(&c);
	close(dfd);
	return id;
}

static int check(enum rst_file_validation mode, const Ferry__FileId *id, unsigned how,
		 struct ferr *err)
{
	struct rst_files f = { .mode = mode };
	char path[128];
	int ret;

	snprintf(path, sizeof(path), "%s/f", dir);
	ferr_clear(err);
	ret = rst_file_check(&f, "file", path, id, how, err);
	if (!ret) {
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_true(rst_file_is(&f, path, &st));
	}
	rst_files_free(&f);
	return ret;
}

static void test_modes(void **st)
{
	char data[5000], path[128], tmp[128];
	Ferry__FileId *id;
	struct ferr err;

	(void)st;
	memset(data, 'a', sizeof(data));
	put("f", data, sizeof(data));
	id = dumped("f");
	assert_int_equal(check(RST_FILES_CONTENT, id, 0, &err), 0);
	/* A copy: another inode, another mtime. The same file. */
	put("f", data, sizeof(data));
	assert_int_equal(check(RST_FILES_CONTENT, id, 0, &err), 0);
	/* One byte: refused by content, not by size. */
	data[4000] = 'b';
	put("f", data, sizeof(data));
	assert_int_equal(check(RST_FILES_CONTENT, id, 0, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "content differs"));
	assert_int_equal(check(RST_FILES_SIZE, id, 0, &err), 0);
	/* Grown: refused by size, unless it may grow (O_APPEND) and its
	 * dumped part is intact. */
	data[4000] = 'a';
	put("f", data, sizeof(data));
	snprintf(path, sizeof(path), "%s/f", dir);
	FILE *fp = fopen(path, "a");
	fputs("more", fp);
	fclose(fp);
	assert_int_equal(check(RST_FILES_CONTENT, id, 0, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "size 5000 then, 5004 now"));
	assert_int_equal(check(RST_FILES_SIZE, id, 0, &err), -ESTALE);
	assert_int_equal(check(RST_FILES_NONE, id, 0, &err), 0);
	assert_int_equal(check(RST_FILES_CONTENT, id, RST_FILE_MAY_GROW, &err), 0);
	/* Another type: refused in every mode. */
	snprintf(tmp, sizeof(tmp), "%s/f.file", dir);
	rename(path, tmp);
	mkdir(path, 0700);
	for (int m = RST_FILES_CONTENT; m <= RST_FILES_NONE; m++) {
		assert_int_equal(check((enum rst_file_validation)m, id, 0, &err), -ESTALE);
		assert_non_null(strstr(err.msg, "was a regular file when dumped, it is a directory now"));
	}
	rmdir(path);
	ferry__file_id__free_unpacked(id, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_is_xxh3_128),
		cmocka_unit_test(test_build_id),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_modes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
