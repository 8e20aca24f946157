/* Test fixture: write a synthetic but realistic image directory with the
 * image library, so show, verify and the fuzzer have valid input before a
 * real dump exists. Page contents encode address and generation. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "images/img.h"

#define VA 0x7f0000000000ull

static void fill(uint8_t *p, size_t ps, uint64_t vaddr, uint32_t gen)
{
	for (size_t i = 0; i < ps; i += 16) {
		uint64_t a = vaddr + i;
		memcpy(p + i, &a, 8);
		memcpy(p + i + 8, &gen, 4);
		memset(p + i + 12, (int)gen, 4);
	}
}

static int vma(struct img_writer *w, uint64_t s, uint64_t e, uint32_t prot, uint32_t flags,
	       Ferry__VmaKind kind, const char *name, struct ferr *err)
{
	Ferry__Vma v = FERRY__VMA__INIT;

	v.start = s;
	v.end = e;
	v.prot = prot;
	v.flags = flags;
	v.kind = kind;
	if (kind == FERRY__VMA_KIND__VMA_FILE)
		v.path = (char *)name;
	v.name = (char *)name;
	return img_write_vma(w, &v, err);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "parent", required_argument, NULL, 'p' },
		{ "gen", required_argument, NULL, 'g' },
		{ "pages", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct img_writer_opts o = { .kind = FERRY__DUMP_KIND__DUMP_FULL, .root_pid = 4242 };
	uint64_t npages = 64;
	uint32_t gen = 1;
	size_t ps = (size_t)ferry_page_size();
	struct img_writer *w;
	struct ferr err;
	uint8_t *buf;
	int c, ret;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o.kind = strcmp(optarg, "pre") == 0 ? FERRY__DUMP_KIND__DUMP_PRE
							     : FERRY__DUMP_KIND__DUMP_FULL;
			break;
		case 'p':
			o.parent = optarg;
			break;
		case 'g':
			gen = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'n':
			npages = strtoull(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: mkimage DIR [--kind full|pre] [--parent REL] [--gen N] "
					"[--pages N]\n");
			return 2;
		}
	}
	if (optind + 1 != argc || npages < 8) {
		fprintf(stderr, "usage: mkimage DIR [--kind full|pre] [--parent REL] [--gen N] [--pages N>=8]\n");
		return 2;
	}
	ret = img_writer_create(&w, argv[optind], &o, &err);
	if (ret)
		goto fail;
	if (o.kind == FERRY__DUMP_KIND__DUMP_FULL) {
		Ferry__Process p = FERRY__PROCESS__INIT;
		Ferry__MmState mm = FERRY__MM_STATE__INIT;
		Ferry__Thread t = FERRY__THREAD__INIT;
		Ferry__Fd fd = FERRY__FD__INIT;
		uint8_t regs[216] = { 0 };

		mm.exe_path = "/usr/bin/true";
		p.pid = o.root_pid;
		p.has_ppid = true;
		p.ppid = 1;
		p.comm = "mkimage";
		p.cwd = "/";
		p.mm = &mm;
		ret = img_write_process(w, &p, &err);
		t.gpregs.data = regs;
		t.gpregs.len = sizeof(regs);
		for (uint32_t i = 0; !ret && i < 2; i++) {
			t.tid = o.root_pid + i;
			ret = img_write_thread(w, &t, &err);
		}
		fd.kind = FERRY__FD_KIND__FD_CHR;
		fd.path = "/dev/null";
		fd.flags = 02;
		for (uint32_t i = 0; !ret && i < 3; i++) {
			fd.fd = i;
			ret = img_write_fd(w, &fd, &err);
		}
		if (ret)
			goto fail;
	}
	/* Layout: a text mapping, the data VMA, a guard gap, [stack]. */
	ret = vma(w, 0x400000, 0x401000, PROT_READ | PROT_EXEC, MAP_PRIVATE, FERRY__VMA_KIND__VMA_FILE,
		  "/usr/bin/true", &err);
	if (!ret)
		ret = vma(w, VA, VA + npages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			  FERRY__VMA_KIND__VMA_ANON, NULL, &err);
	if (!ret)
		ret = vma(w, VA + (npages + 16) * ps, VA + (npages + 48) * ps, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_GROWSDOWN, FERRY__VMA_KIND__VMA_STACK, "[stack]", &err);
	if (ret)
		goto fail;
	buf = malloc(npages * ps);
	for (uint64_t i = 0; i < npages; i++)
		fill(buf + i * ps, ps, VA + i * ps, gen);
	if (o.parent) {
		/* First half unchanged since the parent, second half rewritten. */
		ret = img_pages_parent(w, VA, npages / 2, &err);
		if (!ret)
			ret = img_pages_data(w, VA + npages / 2 * ps, buf + npages / 2 * ps,
					     npages - npages / 2 - 2, &err);
	} else {
		ret = img_pages_data(w, VA, buf, npages - 2, &err);
	}
	if (!ret)
		ret = img_pages_zero(w, VA + (npages - 2) * ps, 2, &err);
	if (!ret)
		ret = img_pages_data(w, VA + (npages + 40) * ps, buf, 8, &err);
	free(buf);
	if (!ret)
		ret = img_writer_commit(w, 1500000, &err);
	img_writer_free(w);
	if (ret)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "mkimage: %s\n", err.msg);
	return 1;
}
