/* A workload that dirties random pages at a set rate and knows what every
 * page must hold: each page's content derives from its region, index and a
 * version the workload bumps on every write (the versions live in its own
 * memory, so they are dumped and restored with it).
 *
 * usage: dirtier CTL [--mb N] [--rate MB/s] [--churn MS] [--busy] [--manual]
 *
 *   --rate     random page writes per second, as MB/s (0: none)
 *   --churn    every MS milliseconds change the layout of the churn
 *              regions: munmap+mmap again, mremap to a new place, mprotect
 *              read-only and back, madvise(DONTNEED) half of one, grow
 *              or shrink the heap with brk
 *   --busy     spin on a work counter between writes (for throughput);
 *              without it the loop sleeps 200 us per turn
 *   --manual   write nothing on its own; SIGHUP writes every page of the
 *              main region whose index % 7 == 3, then CTL.hup says which
 *              (the region is kept out of transparent huge pages)
 *   --reserve-gb N  also reserve N GiB (MAP_NORESERVE, as ASan's shadow or a
 *              JVM heap) and touch one page of it
 *   --own-uffd register the first churn region with a userfaultfd of its own
 *              (missing mode), as a process that uses userfaultfd would
 *   --pending-chld  block SIGCHLD and reap a child that exited, so that a
 *              SIGCHLD with the kernel's siginfo (CLD_EXITED, the child's
 *              PID) stays pending; the SIGUSR1 check takes it, checks it,
 *              and makes another
 *
 * CTL.ready gets "PID MAINADDR NPAGES" once it runs. SIGUSR1: check every page
 * and write "ok PAGES" or "bad ..." to CTL.check. SIGUSR2: write the largest
 * gap between two turns of its loop (the freeze it felt), its work rate and
 * pages written to CTL.stats, then start measuring afresh. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

#define NCHURN 8
#define CHURN_PAGES 64

struct region {
	uint8_t *addr;
	size_t npages;
	uint64_t id;
	uint32_t *ver;          /* per page; 0: must read as zeroes */
};

static size_t ps;
#define HEAP_MAX 128

static struct region mainr, churn[NCHURN], heap;
static uint32_t heap_ver[HEAP_MAX];
static volatile sig_atomic_t want_check, want_stats, want_hup;
static const char *ctl;
static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t seed_of(const struct region *r, size_t i)
{
	return (r->id << 40) ^ ((uint64_t)r->ver[i] << 8) ^ 0x5a;
}

static void write_page(struct region *r, size_t i)
{
	r->ver[i]++;
	if (!r->ver[i])
		r->ver[i] = 1;
	patt_fill(r->addr + i * ps, (r->id << 32) | (i * ps), ps, seed_of(r, i));
}

/* 0 if good, else 1 + the bad page's index. */
static size_t check_region(const struct region *r)
{
	for (size_t i = 0; i < r->npages; i++) {
		const uint8_t *p = r->addr + i * ps;

		if (!r->ver[i]) {
			for (size_t k = 0; k < ps; k++)
				if (p[k])
					return i + 1;
		} else if (patt_check(p, (r->id << 32) | (i * ps), ps, seed_of(r, i))) {
			return i + 1;
		}
	}
	return 0;
}

static void put_file(const char *suffix, const char *text)
{
	char path[4096], tmp[4200];
	int fd;

	/* No stdio: malloc's heap would share brk with the churned heap. */
	snprintf(path, sizeof(path), "%s.%s", ctl, suffix);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		perror("write");
	close(fd);
	rename(tmp, path);
}

/* A child that exits at once, reaped: its SIGCHLD stays pending (blocked),
 * with its PID (as this process's namespace sees it). */
static pid_t pend_chld(void)
{
	pid_t c = fork();

	if (c == 0)
		_exit(0);
	if (c > 0)
		waitpid(c, NULL, 0);
	return c;
}

/* NULL if the pending SIGCHLD is the one pend_chld made, then another made. */
static const char *check_chld(pid_t *child)
{
	sigset_t set;
	siginfo_t si;
	struct timespec zero = { 0, 0 };

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigtimedwait(&set, &si, &zero) != SIGCHLD)
		return "no SIGCHLD pending";
	if (si.si_code != CLD_EXITED || si.si_pid != *child || si.si_status != 0)
		return "pending SIGCHLD siginfo changed";
	*child = pend_chld();
	return NULL;
}

static void on_sig(int sig)
{
	if (sig == SIGUSR1)
		want_check = 1;
	else if (sig == SIGUSR2)
		want_stats = 1;
	else
		want_hup = 1;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void fill_region(struct region *r)
{
	for (size_t i = 0; i < r->npages; i++)
		write_page(r, i);
}

/* One layout change on a random churn region; its content stays known. */
static void churn_once(void)
{
	struct region *r = &churn[next_rand() % NCHURN];
	size_t len = r->npages * ps;
	void *p;

	if (next_rand() % 5 == 0) {
		/* brk: grow by 16 written pages, or give 16 back. */
		if (heap.npages + 16 <= HEAP_MAX && (heap.npages < 32 || next_rand() % 2)) {
			if (sbrk((intptr_t)(16 * ps)) == (void *)-1) {
				perror("sbrk");
				exit(1);
			}
			for (size_t i = heap.npages; i < heap.npages + 16; i++) {
				heap.ver[i] = 0;
				write_page(&heap, i);
			}
			heap.npages += 16;
		} else {
			sbrk(-(intptr_t)(16 * ps));
			heap.npages -= 16;
		}
		return;
	}
	switch (next_rand() % 4) {
	case 0: /* unmap and map again at the same place: all new pages */
		munmap(r->addr, len);
		p = mmap(r->addr, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != r->addr) {
			perror("churn mmap");
			exit(1);
		}
		memset(r->ver, 0, r->npages * sizeof(*r->ver));
		fill_region(r);
		break;
	case 1: /* move somewhere else, contents travelling along */
		p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || mremap(r->addr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, p) != p) {
			perror("churn mremap");
			exit(1);
		}
		r->addr = p;
		write_page(r, next_rand() % r->npages);
		break;
	case 2: /* read-only for a moment, then written again */
		mprotect(r->addr, len / 2, PROT_READ);
		mprotect(r->addr, len / 2, PROT_READ | PROT_WRITE);
		write_page(r, next_rand() % (r->npages / 2));
		break;
	default: /* drop half: it reads as zeroes from now on */
		madvise(r->addr + len / 2, len / 2, MADV_DONTNEED);
		memset(r->ver + r->npages / 2, 0, r->npages / 2 * sizeof(*r->ver));
		break;
	}
}

int main(int argc, char **argv)
{
	size_t mb = 64, rate = 0, churn_ms = 0;
	int busy = 0, manual = 0, own_uffd = 0, pending_chld = 0;
	pid_t chld = 0;
	size_t reserve_gb = 0;
	uint64_t start, last, max_gap = 0, work = 0, written = 0, stats_from;
	char buf[256];

	if (argc < 2) {
		fprintf(stderr, "usage: dirtier CTL [--mb N] [--rate MB/s] [--churn MS] [--busy] "
				"[--manual]\n");
		return 2;
	}
	ctl = argv[1];
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--churn") && i + 1 < argc)
			churn_ms = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--busy"))
			busy = 1;
		else if (!strcmp(argv[i], "--manual"))
			manual = 1;
		else if (!strcmp(argv[i], "--reserve-gb") && i + 1 < argc)
			reserve_gb = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--own-uffd"))
			own_uffd = 1;
		else if (!strcmp(argv[i], "--pending-chld"))
			pending_chld = 1;
		else {
			fprintf(stderr, "dirtier: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	ps = (size_t)sysconf(_SC_PAGESIZE);
	mainr.npages = mb * 1048576 / ps;
	mainr.id = 1;
	mainr.addr = map_anon(mainr.npages * ps);
	/* A tracker sees a write to a transparent huge page as 2 MiB written
	 * (soft-dirty and uffd-wp both): the exact-set tests need 4 KiB pages. */
	if (manual)
		madvise(mainr.addr, mainr.npages * ps, MADV_NOHUGEPAGE);
	mainr.ver = map_anon(mainr.npages * sizeof(uint32_t));
	fill_region(&mainr);
	for (int i = 0; i < NCHURN; i++) {
		churn[i].npages = CHURN_PAGES;
		churn[i].id = 2 + (uint64_t)i;
		churn[i].addr = map_anon(CHURN_PAGES * ps);
		churn[i].ver = map_anon(CHURN_PAGES * sizeof(uint32_t));
		fill_region(&churn[i]);
	}
	if (reserve_gb) {
		char *r = mmap(NULL, reserve_gb << 30, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (r == MAP_FAILED) {
			perror("reserve");
			return 1;
		}
		r[(reserve_gb << 30) / 2] = 1;
	}
	if (own_uffd) {
		int u = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg = {
			.range = { (uintptr_t)churn[0].addr, CHURN_PAGES * ps },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (u < 0 || ioctl(u, UFFDIO_API, &api) || ioctl(u, UFFDIO_REGISTER, &reg)) {
			perror("own userfaultfd");
			return 1;
		}
	}
	/* The heap starts page-aligned, empty; churn grows and shrinks it. */
	{
		uintptr_t b = (uintptr_t)sbrk(0);

		sbrk((intptr_t)((b + ps - 1) / ps * ps - b));
		heap.addr = sbrk(0);
		heap.id = 100;
		heap.ver = heap_ver;
	}
	if (pending_chld) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGCHLD);
		sigprocmask(SIG_BLOCK, &set, NULL);
		chld = pend_chld();
		if (chld < 0) {
			perror("fork");
			return 1;
		}
	}
	signal(SIGUSR1, on_sig);
	signal(SIGUSR2, on_sig);
	signal(SIGHUP, on_sig);
	snprintf(buf, sizeof(buf), "%d %p %zu\n", (int)getpid(), (void *)mainr.addr, mainr.npages);
	put_file("ready", buf);

	start = last = stats_from = now_ns();
	uint64_t next_churn = start + churn_ms * 1000000ull;
	for (;;) {
		uint64_t t = now_ns();

		if (t - last > max_gap)
			max_gap = t - last;
		last = t;
		if (rate && !manual) {
			/* Keep to the rate while running: time stopped (or not
			 * scheduled) is not made up for, beyond 1 ms. */
			double per_s = (double)rate * 1e6 / ps;
			double due = per_s * ((t - start) / 1e9);

			if (due - (double)written > per_s / 1000)
				written = (uint64_t)(due - per_s / 1000);
			while ((double)written < due) {
				write_page(&mainr, next_rand() % mainr.npages);
				written++;
			}
		}
		if (churn_ms && t >= next_churn) {
			churn_once();
			next_churn = t + churn_ms * 1000000ull;
		}
		if (want_hup) {
			size_t n = 0;

			want_hup = 0;
			for (size_t i = 3; i < mainr.npages; i += 7, n++)
				write_page(&mainr, i);
			snprintf(buf, sizeof(buf), "%zu\n", n);
			put_file("hup", buf);
		}
		if (want_check) {
			size_t bad = check_region(&mainr);
			const char *where = "main";

			want_check = 0;
			for (int i = 0; !bad && i < NCHURN; i++) {
				bad = check_region(&churn[i]);
				where = "churn";
			}
			if (!bad) {
				bad = check_region(&heap);
				where = "heap";
			}
			const char *chld_bad = pending_chld && !bad ? check_chld(&chld) : NULL;

			if (chld_bad)
				snprintf(buf, sizeof(buf), "bad %s\n", chld_bad);
			else if (bad)
				snprintf(buf, sizeof(buf), "bad %s page %zu\n", where, bad - 1);
			else
				snprintf(buf, sizeof(buf), "ok %zu\n",
					 mainr.npages + NCHURN * (size_t)CHURN_PAGES);
			put_file("check", buf);
			last = now_ns(); /* the check itself is not a freeze */
		}
		if (want_stats) {
			uint64_t el = now_ns() - stats_from;

			want_stats = 0;
			snprintf(buf, sizeof(buf),
				 "max_gap_ns %" PRIu64 "\nwork_per_s %.0f\nwritten %" PRIu64 "\n", max_gap,
				 el ? work / (el / 1e9) : 0.0, written);
			put_file("stats", buf);
			max_gap = 0;
			work = 0;
			stats_from = last = now_ns();
		}
		if (busy) {
			uint64_t until = t + 200000;

			while (now_ns() < until)
				for (int k = 0; k < 64; k++)
					work++;
		} else {
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
}
