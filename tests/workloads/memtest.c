/* A workload that knows what each of its pages holds. It maps regions of
 * every kind a dump must handle, fills them with tests/workloads/pattern.h,
 * writes a description of what a dump must contain, and then runs. On
 * SIGUSR1 it re-checks all its memory and writes "ok" or the first bad page
 * to DESC.check: the proof that a dump left it unharmed.
 *
 * usage: memtest DESC [--mb N] [--threads N] [--seed N] [--spawn 1] [--pipe 1] [--udp 1]
 * DESC lines: "data|zero|absent ADDR NPAGES SEED NAME" */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pattern.h"

#define MAX_REGIONS 65536
#define STACK_BYTES (512u << 10)

struct region {
	char kind[8];
	uint64_t addr, npages, seed;
	char name[32];
	int recheck; /* 0: no self-check (e.g. PROT_NONE) */
};

static struct region regs[MAX_REGIONS];
static int nregs;
static size_t ps;
static volatile sig_atomic_t check_requested;
static const char *desc_path;

static pthread_mutex_t regs_lock = PTHREAD_MUTEX_INITIALIZER;

static void add(const char *kind, void *addr, uint64_t npages, uint64_t seed, const char *name,
		int recheck)
{
	struct region *r;

	pthread_mutex_lock(&regs_lock);
	r = &regs[nregs++];

	snprintf(r->kind, sizeof(r->kind), "%s", kind);
	r->addr = (uintptr_t)addr;
	r->npages = npages;
	r->seed = seed;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->recheck = recheck;
	pthread_mutex_unlock(&regs_lock);
}

static void *map(size_t npages, int prot, int flags)
{
	void *p = mmap(NULL, npages * ps, prot, flags | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void fill(void *p, size_t npages, uint64_t seed)
{
	for (size_t i = 0; i < npages; i++)
		patt_fill((char *)p + i * ps, (uintptr_t)p + i * ps, ps, seed);
}

static void data_region(void *p, size_t npages, uint64_t seed, const char *name)
{
	fill(p, npages, seed);
	add("data", p, npages, seed, name, 1);
}

static void on_usr1(int sig)
{
	(void)sig;
	check_requested = 1;
}

static volatile sig_atomic_t usr2_count;

static void on_usr2(int sig)
{
	(void)sig;
	usr2_count++;
}

static void self_check(void)
{
	char path[4096], msg[256] = "ok\n";
	FILE *f;

	for (int i = 0; i < nregs && !strcmp(msg, "ok\n"); i++) {
		struct region *r = &regs[i];
		for (uint64_t p = 0; r->recheck && p < r->npages; p++) {
			const char *page = (const char *)(uintptr_t)(r->addr + p * ps);
			int bad = 0;
			if (!strcmp(r->kind, "data"))
				bad = patt_check(page, r->addr + p * ps, ps, r->seed) != 0;
			else if (!strcmp(r->kind, "zero"))
				for (size_t k = 0; k < ps && !bad; k++)
					bad = page[k] != 0;
			if (bad) {
				snprintf(msg, sizeof(msg), "bad %s page %" PRIu64 " at 0x%" PRIx64 "\n",
					 r->name, p, r->addr + p * ps);
				break;
			}
		}
	}
	snprintf(path, sizeof(path), "%s.check", desc_path);
	f = fopen(path, "w");
	if (f) {
		fputs(msg, f);
		fclose(f);
	}
}

static void *thread_main(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	void *p = map(64, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	char name[32];

	snprintf(name, sizeof(name), "thread-%" PRIu64, seed);
	fill(p, 64, seed);
	add("data", p, 64, seed, name, 1);
	for (;;)
		usleep(1000);
	return NULL;
}

/* Threads that come and go all the time: a dump must freeze whatever set
 * exists, however it changes while ferry seizes it. */
static void *short_life(void *arg)
{
	(void)arg;
	usleep(200);
	return NULL;
}

static void *spawner(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_t th;
		if (pthread_create(&th, NULL, short_life, NULL) == 0)
			pthread_detach(th);
		usleep(100);
	}
	return NULL;
}

static void write_desc(void)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", desc_path);
	f = fopen(tmp, "w");
	if (!f) {
		perror(tmp);
		exit(1);
	}
	for (int i = 0; i < nregs; i++)
		fprintf(f, "%s 0x%" PRIx64 " %" PRIu64 " %" PRIu64 " %s\n", regs[i].kind, regs[i].addr,
			regs[i].npages, regs[i].seed, regs[i].name);
	fclose(f);
	rename(tmp, desc_path);
}

/* The main loop runs inside a deep frame, so the stack has grown by
 * STACK_BYTES of known content that must be dumped. */
static void run_on_grown_stack(void)
{
	char big[STACK_BYTES] __attribute__((aligned(4096)));
	uintptr_t first = ((uintptr_t)big + ps - 1) & ~(ps - 1);
	size_t npages = (STACK_BYTES - (first - (uintptr_t)big)) / ps;

	fill((void *)first, npages, 99);
	add("data", (void *)first, npages, 99, "grown-stack", 1);
	write_desc();
	for (;;) {
		if (check_requested) {
			check_requested = 0;
			self_check();
		}
		usleep(1000);
		__asm__ volatile("" ::"r"(big) : "memory");
	}
}

int main(int argc, char **argv)
{
	size_t mb = 16;
	int nthreads = 0, spawn = 0;
	uint64_t seed = 1;
	char *p;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (argc < 2) {
		fprintf(stderr, "usage: memtest DESC [--mb N] [--threads N] [--seed N]\n");
		return 2;
	}
	desc_path = argv[1];
	/* Inherit nothing but stdio: a test decides which fds the target has. */
	syscall(SYS_close_range, 3, ~0u, 0);
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mb"))
			mb = strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--threads"))
			nthreads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--spawn"))
			spawn = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--pipe") && atoi(argv[i + 1])) {
			int pfd[2];
			if (pipe(pfd))
				return 1;
		} else if (!strcmp(argv[i], "--udp") && atoi(argv[i + 1])) {
			if (socket(AF_INET, SOCK_DGRAM, 0) < 0) /* a kind ferry cannot dump */
				return 1;
		}
	}
	signal(SIGUSR1, on_usr1);
	{
		/* Tests flood the workload with SIGUSR2 while it is dumped. */
		struct sigaction sa = { .sa_handler = on_usr2, .sa_flags = SA_RESTART };
		sigaction(SIGUSR2, &sa, NULL);
	}

	/* 1. Plain anonymous memory, every page written. */
	p = map(mb * 256, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	data_region(p, mb * 256, seed, "anon");

	/* 2. Sparse: every third page written, the rest never touched: 5000
	 * separate runs in one VMA, more than a page backend returns in one
	 * batch, so that every dump continues a scan part-way. */
	p = map(15000, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	for (int i = 0; i < 15000; i++) {
		if (i % 3 == 0)
			data_region(p + i * ps, 1, seed + 2, "sparse");
		else
			add("absent", p + i * ps, 1, 0, "sparse-hole", 0);
	}

	/* 3. A guard page between two written pages. */
	p = map(3, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	data_region(p, 1, seed + 3, "below-guard");
	data_region(p + 2 * ps, 1, seed + 3, "above-guard");
	mprotect(p + ps, ps, PROT_NONE);
	add("absent", p + ps, 1, 0, "guard", 0);

	/* 4. A PROT_NONE hole that still holds data. */
	p = map(4, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	fill(p, 4, seed + 4);
	mprotect(p + ps, 2 * ps, PROT_NONE);
	add("data", p, 1, seed + 4, "before-hole", 1);
	add("data", p + ps, 2, seed + 4, "prot-none-hole", 0);
	add("data", p + 3 * ps, 1, seed + 4, "after-hole", 1);

	/* 5. One mapping split in three by mprotect. */
	p = map(8, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	data_region(p, 8, seed + 5, "mprotect-split");
	mprotect(p + 2 * ps, 2 * ps, PROT_READ);

	/* 6. A private file mapping: only its copy-on-write pages are the
	 * process's own data. */
	{
		char path[4096];
		int fd;
		snprintf(path, sizeof(path), "%s.file", desc_path);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		char *buf = calloc(16, ps);
		for (int i = 0; i < 16 * (int)ps; i++)
			buf[i] = (char)(i * 7);
		if (fd < 0 || write(fd, buf, 16 * ps) != (ssize_t)(16 * ps)) {
			perror("file");
			return 1;
		}
		free(buf);
		p = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		close(fd);
		for (int i = 0; i < 16; i++) {
			volatile char c = p[i * ps]; /* page cache, mapped read-only */
			(void)c;
			if (i == 1 || i == 5)
				data_region(p + i * ps, 1, seed + 6, "file-cow");
			else
				add("absent", p + i * ps, 1, 0, "file-clean", 0);
		}
	}

	/* 7. Shared anonymous memory. */
	p = map(8, PROT_READ | PROT_WRITE, MAP_SHARED);
	data_region(p, 8, seed + 7, "shared-anon");

	/* 8. A region for transparent huge pages (2 MiB aligned). */
	{
		char *raw = map(1024 + 512, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		char *al = (char *)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
		madvise(al, 4u << 20, MADV_HUGEPAGE);
		data_region(al, 1024, seed + 8, "thp");
	}

	/* 9. Pages read but never written map the zero page. */
	p = map(16, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	for (int i = 0; i < 16; i++) {
		volatile char c = p[i * ps];
		(void)c;
	}
	add("zero", p, 16, 0, "zero-pages", 1);

	for (int i = 0; i < nthreads; i++) {
		pthread_t th;
		pthread_create(&th, NULL, thread_main, (void *)(uintptr_t)(1000 + i));
	}
	while (1) { /* wait until every thread registered its region */
		int n = 0;
		pthread_mutex_lock(&regs_lock);
		for (int i = 0; i < nregs; i++)
			n += !strncmp(regs[i].name, "thread-", 7);
		pthread_mutex_unlock(&regs_lock);
		if (n == nthreads)
			break;
		usleep(1000);
	}
	if (spawn) {
		pthread_t th;
		pthread_create(&th, NULL, spawner, NULL);
	}
	run_on_grown_stack();
	return 0;
}
