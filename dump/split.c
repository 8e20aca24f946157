/* Copied or in-parent (see split.h). */
#include <string.h>

#include "dump/split.h"

void split_init(struct split *s, const struct range_list *dirty, const struct img_image *parent,
		split_emit_fn emit, void *arg)
{
	memset(s, 0, sizeof(*s));
	s->emit = emit;
	s->arg = arg;
	if (dirty && parent) {
		s->dirty = dirty;
		s->held = parent->runs;
		s->nr_held = parent->nr_runs;
		s->page_size = parent->page_size;
	}
}

int split_flush(struct split *s, struct ferr *err)
{
	int ret = s->n ? s->emit(s->arg, s->out, s->n, err) : 0;

	s->n = 0;
	return ret;
}

static int split_emit(struct split *s, struct page_run r, struct ferr *err)
{
	struct page_run *last = s->n ? &s->out[s->n - 1] : NULL;

	if (last && last->end == r.start && last->zero == r.zero && last->parent == r.parent) {
		last->end = r.end;
		return 0;
	}
	if (s->n == SPLIT_BATCH) {
		int ret = split_flush(s, err);
		if (ret)
			return ret;
	}
	s->out[s->n++] = r;
	return 0;
}

static uint64_t held_end(const struct split *s, size_t i)
{
	return s->held[i].vaddr + s->held[i].nr_pages * s->page_size;
}

int split_run(struct split *s, const struct page_run *r, struct ferr *err)
{
	const struct range *d = s->dirty ? s->dirty->r : NULL;
	uint64_t pos = r->start;

	if (r->zero || !s->dirty)
		return split_emit(s, *r, err);
	while (pos < r->end) {
		uint64_t end = r->end;
		bool dirty, held;
		int ret;

		while (s->di < s->dirty->n && d[s->di].end <= pos)
			s->di++;
		while (s->hi < s->nr_held && held_end(s, s->hi) <= pos)
			s->hi++;
		/* Up to the next change of either: in or out of a dirty range,
		 * in or out of a run the parent holds. */
		dirty = s->di < s->dirty->n && d[s->di].start <= pos;
		if (s->di < s->dirty->n)
			end = min_u64(end, dirty ? d[s->di].end : d[s->di].start);
		held = s->hi < s->nr_held && s->held[s->hi].vaddr <= pos;
		if (s->hi < s->nr_held)
			end = min_u64(end, held ? held_end(s, s->hi) : s->held[s->hi].vaddr);
		ret = split_emit(s, (struct page_run){ .start = pos, .end = end,
						       .parent = !dirty && held }, err);
		if (ret)
			return ret;
		pos = end;
	}
	return 0;
}
