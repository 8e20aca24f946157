/* Content identity of files (proc/filesum.h): XXH3-128 over the bytes,
 * the ELF GNU build-id from the program headers, and the dump's cache. */
#include <elf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "proc/filesum.h"

/* On the stack: a fresh heap buffer of a MiB would be mmapped and fault in
 * page by page on every file (about 7 us a page on the development VM). */
#define HASH_CHUNK (64u << 10)
#define PHDRS_MAX 256            /* more program headers than any real ELF file */
#define NOTES_MAX (4u << 10)     /* bytes of one PT_NOTE segment looked at */

int filesum_hash(int fd, uint64_t len, const char *what, uint8_t out[FILESUM_LEN],
		 struct ferr *err)
{
	uint8_t buf[HASH_CHUNK] __attribute__((aligned(64)));
	XXH3_state_t *st = XXH3_createState();
	XXH128_canonical_t c;
	uint64_t off = 0;
	int ret = 0;

	if (!st)
		return ferr_sys(err, ENOMEM, "checksum of %s", what);
	posix_fadvise(fd, 0, (off_t)len, POSIX_FADV_SEQUENTIAL);
	XXH3_128bits_reset(st);
	while (!ret && off < len) {
		size_t n = len - off < HASH_CHUNK ? (size_t)(len - off) : HASH_CHUNK;

		ret = pread_all(fd, buf, n, off);
		if (ret == -ENODATA)
			ret = ferr_new(err, ESTALE, "%s is shorter than %" PRIu64 " bytes: it changed "
				       "while read", what, len);
		else if (ret)
			ret = ferr_sys(err, -ret, "read %s", what);
		else
			XXH3_128bits_update(st, buf, n);
		off += n;
	}
	if (!ret) {
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
		memcpy(out, c.digest, FILESUM_LEN);
	}
	XXH3_freeState(st);
	return ret;
}

/* The build-id in one PT_NOTE segment's bytes, notes aligned to align. */
static size_t note_build_id(const uint8_t *p, size_t len, size_t align,
			    uint8_t out[FILESUM_BUILD_ID_MAX])
{
	size_t off = 0;

	while (len - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		size_t name, desc;

		memcpy(&nh, p + off, sizeof(nh));
		off += sizeof(nh);
		name = (nh.n_namesz + align - 1) & ~(align - 1);
		desc = (nh.n_descsz + align - 1) & ~(align - 1);
		if (name > len - off || desc > len - off - name)
			return 0;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && !memcmp(p + off, "GNU", 4) &&
		    nh.n_descsz > 0 && nh.n_descsz <= FILESUM_BUILD_ID_MAX) {
			memcpy(out, p + off + name, nh.n_descsz);
			return nh.n_descsz;
		}
		off += name + desc;
	}
	return 0;
}

/* Program headers of either class, as 64-bit ones. */
static int read_phdrs(int fd, const unsigned char *ident, const uint8_t *eh, uint64_t size,
		      Elf64_Phdr *ph, size_t *n)
{
	uint8_t raw[PHDRS_MAX * sizeof(Elf64_Phdr)];
	uint64_t off;
	size_t ent, want;
	int ret;

	if (ident[EI_CLASS] == ELFCLASS64) {
		Elf64_Ehdr e;

		memcpy(&e, eh, sizeof(e));
		off = e.e_phoff, ent = e.e_phentsize, *n = e.e_phnum;
		want = sizeof(Elf64_Phdr);
	} else {
		Elf32_Ehdr e;

		memcpy(&e, eh, sizeof(e));
		off = e.e_phoff, ent = e.e_phentsize, *n = e.e_phnum;
		want = sizeof(Elf32_Phdr);
	}
	if (ent != want || *n > PHDRS_MAX || off > size || *n * ent > size - off) {
		*n = 0;
		return 0;
	}
	ret = pread_all(fd, raw, *n * ent, off);
	if (ret)
		return ret;
	for (size_t i = 0; i < *n; i++) {
		if (ident[EI_CLASS] == ELFCLASS64) {
			memcpy(&ph[i], raw + i * ent, sizeof(ph[i]));
		} else {
			Elf32_Phdr p;

			memcpy(&p, raw + i * ent, sizeof(p));
			ph[i] = (Elf64_Phdr){ .p_type = p.p_type, .p_offset = p.p_offset,
					      .p_filesz = p.p_filesz, .p_align = p.p_align };
		}
	}
	return 0;
}

int filesum_build_id(int fd, uint64_t size, uint8_t out[FILESUM_BUILD_ID_MAX], size_t *len,
		     struct ferr *err)
{
	uint8_t eh[sizeof(Elf64_Ehdr)];
	Elf64_Phdr ph[PHDRS_MAX];
	uint8_t notes[NOTES_MAX];
	size_t n;
	int ret;

	*len = 0;
	if (size < sizeof(eh))
		return 0;
	ret = pread_all(fd, eh, sizeof(eh), 0);
	if (ret)
		return ret == -ENODATA ? 0 : ferr_sys(err, -ret, "read the ELF header");
	/* Host byte order only: notes are read as this machine's integers. */
	if (memcmp(eh, ELFMAG, SELFMAG) || eh[EI_DATA] != ELFDATA2LSB ||
	    (eh[EI_CLASS] != ELFCLASS64 && eh[EI_CLASS] != ELFCLASS32))
		return 0;
	ret = read_phdrs(fd, eh, eh, size, ph, &n);
	if (ret)
		return ret == -ENODATA ? 0 : ferr_sys(err, -ret, "read the ELF program headers");
	for (size_t i = 0; i < n && !*len; i++) {
		size_t sz = ph[i].p_filesz < NOTES_MAX ? ph[i].p_filesz : NOTES_MAX;

		if (ph[i].p_type != PT_NOTE || ph[i].p_offset > size || sz > size - ph[i].p_offset)
			continue;
		ret = pread_all(fd, notes, sz, ph[i].p_offset);
		if (ret)
			return ret == -ENODATA ? 0 : ferr_sys(err, -ret, "read an ELF note");
		*len = note_build_id(notes, sz, ph[i].p_align == 8 ? 8 : 4, out);
	}
	return 0;
}

/* ---- the dump's cache ----------------------------------------------------- */

void filesum_cache_free(struct filesum_cache *c)
{
	free(c->live);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static struct filesum *lookup(struct filesum_cache *c, const Ferry__FileId *id)
{
	for (size_t i = 0; i < c->n; i++) {
		struct filesum *s = &c->v[i];

		if (s->dev == id->dev && s->ino == id->ino && s->size == id->size &&
		    s->mtime_ns == id->mtime_ns && s->ctime_ns == id->ctime_ns)
			return s;
	}
	return NULL;
}

static int add(struct filesum_cache *c, const struct filesum *s, struct ferr *err)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 32;
		struct filesum *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return ferr_sys(err, ENOMEM, "file checksum cache");
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = *s;
	return 0;
}

static bool is_live(const struct filesum_cache *c, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < c->nr_live; i++)
		if (c->live[i][0] == dev && c->live[i][1] == ino)
			return true;
	return false;
}

int filesum_mark_live(struct filesum_cache *c, uint64_t dev, uint64_t ino, struct ferr *err)
{
	uint64_t (*l)[2];

	if (is_live(c, dev, ino))
		return 0;
	l = realloc(c->live, (c->nr_live + 1) * sizeof(*l));
	if (!l)
		return ferr_sys(err, ENOMEM, "file checksum cache");
	c->live = l;
	c->live[c->nr_live][0] = dev;
	c->live[c->nr_live][1] = ino;
	c->nr_live++;
	return 0;
}

static bool keyed(const Ferry__FileId *id)
{
	return id->has_size && id->has_mtime_ns && id->has_ctime_ns;
}

int filesum_seed(struct filesum_cache *c, const Ferry__FileId *id, struct ferr *err)
{
	struct filesum s = { 0 };

	if (!id || !keyed(id) || (id->has_live && id->live) || !id->has_xxh128 || id->xxh128.len != FILESUM_LEN ||
	    (id->has_build_id && id->build_id.len > FILESUM_BUILD_ID_MAX) || lookup(c, id))
		return 0;
	s = (struct filesum){ .dev = id->dev, .ino = id->ino, .size = id->size,
			      .mtime_ns = id->mtime_ns, .ctime_ns = id->ctime_ns };
	memcpy(s.xxh128, id->xxh128.data, FILESUM_LEN);
	if (id->has_build_id) {
		s.build_id_len = (uint8_t)id->build_id.len;
		memcpy(s.build_id, id->build_id.data, id->build_id.len);
	}
	return add(c, &s, err);
}

static int set_bytes(ProtobufCBinaryData *b, protobuf_c_boolean *has, const uint8_t *p, size_t n,
		     struct ferr *err)
{
	uint8_t *q = malloc(n);

	if (!q)
		return ferr_sys(err, ENOMEM, "file checksum");
	memcpy(q, p, n);
	free(b->data);
	b->data = q;
	b->len = n;
	*has = true;
	return 0;
}

static int record(const struct filesum *s, Ferry__FileId *id, struct ferr *err)
{
	int ret = set_bytes(&id->xxh128, &id->has_xxh128, s->xxh128, FILESUM_LEN, err);

	if (!ret && s->build_id_len)
		ret = set_bytes(&id->build_id, &id->has_build_id, s->build_id, s->build_id_len, err);
	return ret;
}

int filesum_fill(struct filesum_cache *c, int dirfd, const char *path, Ferry__FileId *id,
		 struct ferr *err)
{
	struct filesum s = { 0 }, *hit;
	cleanup_close int fd = -1;
	size_t bid_len = 0;
	struct stat st;
	uint64_t t0;
	int ret;

	if (!id || !id->has_mode || !S_ISREG(id->mode) || !keyed(id))
		return 0;
	if (is_live(c, id->dev, id->ino)) {
		id->has_live = id->live = true;
		return 0;
	}
	hit = lookup(c, id);
	if (hit) {
		c->hits++;
		return record(hit, id, err);
	}
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return ferr_sys(err, errno, "open %s to checksum it", path);
	if (fstat(fd, &st) < 0)
		return ferr_sys(err, errno, "fstat %s", path);
	if (!S_ISREG(st.st_mode))
		return 0;
	/* What is hashed is what the id says. */
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = filesum_ns(&st.st_mtim);
	id->ctime_ns = filesum_ns(&st.st_ctim);
	hit = lookup(c, id);
	if (hit) {
		c->hits++;
		return record(hit, id, err);
	}
	t0 = now_ns();
	s = (struct filesum){ .dev = id->dev, .ino = id->ino, .size = id->size,
			      .mtime_ns = id->mtime_ns, .ctime_ns = id->ctime_ns };
	ret = filesum_build_id(fd, s.size, s.build_id, &bid_len, err);
	if (!ret)
		ret = filesum_hash(fd, s.size, path, s.xxh128, err);
	if (ret)
		return ret;
	s.build_id_len = (uint8_t)bid_len;
	c->hashed_files++;
	c->hashed_bytes += s.size;
	c->hash_ns += now_ns() - t0;
	ret = add(c, &s, err);
	return ret ? ret : record(&s, id, err);
}
