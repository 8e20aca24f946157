/* hashes.img: the hash tracker's memory of what each page held. Untrusted
 * like every image file: entries must ascend, stay page-aligned and inside
 * the user address space, and be non-empty. */
#include <string.h>

#include "images/format.h"
#include "images/load.h"

void img_hashes_free(struct img_hashes *h)
{
	free(h->runs);
	free(h->all);
	memset(h, 0, sizeof(*h));
}

/* Entries ascend, are page-aligned, inside the user address space and not
 * empty; *total counts their hashes. */
static int check_entries(Ferry__PageHashes **e, size_t n, uint64_t ps, const char *what,
			 uint64_t *total, struct ferr *err)
{
	uint64_t prev_end = 0;

	*total = 0;
	for (size_t i = 0; i < n; i++) {
		const char *why = NULL;

		if (!e[i]->n_xxh3)
			why = "no hashes";
		else if (e[i]->vaddr % ps || e[i]->vaddr >= IMG_ADDR_LIMIT ||
			 e[i]->n_xxh3 > (IMG_ADDR_LIMIT - e[i]->vaddr) / ps)
			why = "not page-aligned or beyond the user address space";
		else if (e[i]->vaddr < prev_end)
			why = "overlaps or is out of order with the previous entry";
		if (why)
			return ferr_new(err, EBADMSG, "%s: entry %zu (0x%llx): %s", what, i + 1,
					(unsigned long long)e[i]->vaddr, why);
		prev_end = e[i]->vaddr + e[i]->n_xxh3 * ps;
		*total += e[i]->n_xxh3;
	}
	return 0;
}

/* Every entry's hashes into one allocation, a run pointing into it each. */
static int gather(Ferry__PageHashes **e, size_t n, uint64_t total, const char *what,
		  struct img_hashes *out, struct ferr *err)
{
	uint64_t *dst;

	out->runs = calloc(n ? n : 1, sizeof(*out->runs));
	out->all = malloc((total ? total : 1) * sizeof(*out->all));
	if (!out->runs || !out->all)
		return ferr_sys(err, ENOMEM, "%s: %llu hashes", what, (unsigned long long)total);
	dst = out->all;
	for (size_t i = 0; i < n; i++) {
		memcpy(dst, e[i]->xxh3, e[i]->n_xxh3 * sizeof(*dst));
		out->runs[i] = (struct img_hash_run){ e[i]->vaddr, e[i]->n_xxh3, dst };
		dst += e[i]->n_xxh3;
	}
	out->n = n;
	return 0;
}

int img_hashes_load(const struct img_image *img, struct img_hashes *out, struct ferr *err)
{
	cleanup_val(img_hashes) struct img_hashes h = { .page_size = img->page_size };
	Ferry__PageHashes **e = NULL;
	char what[PATH_MAX + 32];
	uint64_t total = 0;
	size_t n = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	out->page_size = img->page_size;
	if (!img_has_file(img, IMG_HASHES))
		return -ENOENT;
	snprintf(what, sizeof(what), "%s/%s", img->path, img_type_file(IMG_HASHES));
	ret = img_load_entries(img, IMG_HASHES, &ferry__page_hashes__descriptor,
			       (ProtobufCMessage ***)&e, &n, err);
	if (ret)
		return ret;
	ret = check_entries(e, n, img->page_size, what, &total, err);
	if (!ret)
		ret = gather(e, n, total, what, &h, err);
	img_free_entries(e, n);
	if (ret)
		return ret;
	*out = h;
	memset(&h, 0, sizeof(h));
	return 0;
}

struct hash_key {
	const struct img_hashes *h;
	uint64_t vaddr;
};

static bool hash_run_ends_at_or_below(const void *ctx, size_t i)
{
	const struct hash_key *k = ctx;
	const struct img_hash_run *r = &k->h->runs[i];

	return k->vaddr >= r->vaddr + r->nr_pages * k->h->page_size;
}

const uint64_t *img_hashes_find(const struct img_hashes *h, uint64_t vaddr, uint64_t *avail)
{
	struct hash_key k = { h, vaddr };
	size_t i = bsearch_first(h->n, hash_run_ends_at_or_below, &k);
	const struct img_hash_run *r = i < h->n ? &h->runs[i] : NULL;
	uint64_t in;

	/* Runs ascend without overlap (checked on load): the first one ending
	 * after vaddr holds it, if any does. */
	if (!r || vaddr < r->vaddr) {
		*avail = 0;
		return NULL;
	}
	in = (vaddr - r->vaddr) / h->page_size;
	*avail = r->nr_pages - in;
	return &r->h[in];
}
