/* A workload that takes one mapping apart and puts it back, in steps a test
 * drives with SIGHUP, so that a tracker sees the layout change between its
 * rounds:
 *
 *   start   A: 128 pages, all written
 *   step 1  A's upper half S is moved away by mremap (to a new place X)
 *   step 2  S is moved back to where it was; the kernel merges it with the
 *           lower half again; page 0 is written
 *   step 3  pages 0 and 9 are written
 *
 * With uffd-wp tracking, step 2 is where the kernel silently drops the lower
 * half's registration (the merged VMA takes the moved part's reset one), and
 * the write to page 0 leaves a writable page still marked write-protected.
 *
 * usage: remerge CTL. CTL.ready gets "PID ADDR 128" once it runs; CTL.step
 * gets the step number after each SIGHUP. SIGUSR1: check every page and
 * write "ok 128" or "bad page N" to CTL.check. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pattern.h"

#define NPAGES 128
#define HALF (NPAGES / 2)

static size_t ps;
static uint8_t *a, *upper;    /* upper: where S's pages are now */
static uint32_t ver[NPAGES];  /* in .bss: dumped and restored with the rest */
static volatile sig_atomic_t want_step, want_check;

static uint8_t *page(size_t i)
{
	return i < HALF ? a + i * ps : upper + (i - HALF) * ps;
}

static uint64_t seed_of(size_t i)
{
	return ((uint64_t)ver[i] << 8) ^ 0x3c;
}

static void write_page(size_t i)
{
	ver[i]++;
	patt_fill(page(i), i * ps, ps, seed_of(i));
}

static void put_file(const char *ctl, const char *suffix, const char *text)
{
	char path[4096], tmp[4200];
	int fd;

	snprintf(path, sizeof(path), "%s.%s", ctl, suffix);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) < 0 || close(fd) || rename(tmp, path)) {
		perror(path);
		exit(1);
	}
}

static void on_sig(int sig)
{
	if (sig == SIGHUP)
		want_step = 1;
	else
		want_check = 1;
}

static void step(int n)
{
	void *p;

	switch (n) {
	case 1:
		p = mmap(NULL, HALF * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || mremap(upper, HALF * ps, HALF * ps,
					      MREMAP_MAYMOVE | MREMAP_FIXED, p) != p) {
			perror("remerge: move away");
			exit(1);
		}
		upper = p;
		break;
	case 2:
		if (mremap(upper, HALF * ps, HALF * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
			   a + HALF * ps) != a + HALF * ps) {
			perror("remerge: move back");
			exit(1);
		}
		upper = a + HALF * ps;
		write_page(0);
		break;
	case 3:
		write_page(0);
		write_page(9);
		break;
	}
}

int main(int argc, char **argv)
{
	char buf[128];
	int steps = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: remerge CTL\n");
		return 2;
	}
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	ps = (size_t)sysconf(_SC_PAGESIZE);
	a = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("remerge: mmap");
		return 1;
	}
	/* 4 KiB pages: a huge page would take the halves' VMAs apart anyway. */
	madvise(a, NPAGES * ps, MADV_NOHUGEPAGE);
	upper = a + HALF * ps;
	for (size_t i = 0; i < NPAGES; i++)
		write_page(i);
	signal(SIGHUP, on_sig);
	signal(SIGUSR1, on_sig);
	snprintf(buf, sizeof(buf), "%d %p %d\n", (int)getpid(), (void *)a, NPAGES);
	put_file(argv[1], "ready", buf);
	for (;;) {
		if (want_step) {
			want_step = 0;
			step(++steps);
			snprintf(buf, sizeof(buf), "%d\n", steps);
			put_file(argv[1], "step", buf);
		}
		if (want_check) {
			size_t bad = 0;

			want_check = 0;
			for (size_t i = 0; i < NPAGES && !bad; i++)
				if (patt_check(page(i), i * ps, ps, seed_of(i)))
					bad = i + 1;
			if (bad)
				snprintf(buf, sizeof(buf), "bad page %zu\n", bad - 1);
			else
				snprintf(buf, sizeof(buf), "ok %d\n", NPAGES);
			put_file(argv[1], "check", buf);
		}
		usleep(1000);
	}
}
