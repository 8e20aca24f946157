/* Layout benchmark: a child with N VMAs; a full walk by PROCMAP_QUERY and by
 * parsing /proc/PID/maps (ferry's own two backends), and 1000 point look-ups
 * each way. Prints one table row per case: median of the runs, in ms.
 * usage: layout_bench N [RUNS] */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/compat.h"
#include "proc/layout.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmpd);
	return v[n / 2];
}

/* Point look-up by text: read maps until the line that covers addr. */
static int maps_lookup(int procfd, uint64_t addr)
{
	int fd = openat(procfd, "maps", O_RDONLY);
	FILE *f = fdopen(fd, "r");
	char line[4096];
	int found = 0;

	while (f && fgets(line, sizeof(line), f)) {
		uint64_t s, e;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &s, &e) == 2 && s <= addr && addr < e) {
			found = 1;
			break;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static int procmap_lookup(int mapsfd, uint64_t addr)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };

	return ioctl(mapsfd, PROCMAP_QUERY, &q) == 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100, runs = argc > 2 ? atoi(argv[2]) : 5;
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	int ready[2], procfd, mapsfd;
	double t_pm[32], t_maps[32], t0;
	char path[64];
	struct ferr err;
	pid_t pid;
	uint64_t *addrs;

	if (pipe(ready))
		return 1;
	pid = fork();
	if (pid == 0) {
		/* Alternate protections so that neighbours never merge. */
		char *base = mmap(NULL, (size_t)n * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (int i = 1; i < n; i += 2)
			mprotect(base + (size_t)i * ps, ps, PROT_READ | PROT_WRITE);
		if (write(ready[1], &base, sizeof(base)) != sizeof(base))
			_exit(1);
		pause();
		_exit(0);
	}
	char *base;
	if (read(ready[0], &base, sizeof(base)) != sizeof(base))
		return 1;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	procfd = open(path, O_RDONLY | O_DIRECTORY);
	mapsfd = openat(procfd, "maps", O_RDONLY);
	if (runs > 32)
		runs = 32;
	size_t nv = 0;
	for (int r = 0; r < runs; r++) {
		cleanup_val(vma_list) struct vma_list l = { 0 };
		t0 = now_ms();
		if (layout_procmap_ops.read(procfd, &l, &err))
			return fprintf(stderr, "%s\n", err.msg), 1;
		t_pm[r] = now_ms() - t0;
		nv = l.n;
		vma_list_free(&l);
		t0 = now_ms();
		if (layout_maps_ops.read(procfd, &l, &err))
			return fprintf(stderr, "%s\n", err.msg), 1;
		t_maps[r] = now_ms() - t0;
	}
	printf("%-28s %-22s %12zu %9.3f ms\n", "layout: full walk", "PROCMAP_QUERY", nv, median(t_pm, runs));
	printf("%-28s %-22s %12zu %9.3f ms\n", "layout: full walk", "parse maps", nv, median(t_maps, runs));

	addrs = malloc(1000 * sizeof(*addrs));
	srand(42);
	for (int i = 0; i < 1000; i++)
		addrs[i] = (uintptr_t)base + (uint64_t)(rand() % n) * ps + 8;
	int hits = 0;
	t0 = now_ms();
	for (int i = 0; i < 1000; i++)
		hits += procmap_lookup(mapsfd, addrs[i]);
	double pm1000 = now_ms() - t0;
	t0 = now_ms();
	for (int i = 0; i < 1000; i++)
		hits += maps_lookup(procfd, addrs[i]);
	double maps1000 = now_ms() - t0;
	printf("%-28s %-22s %12zu %9.3f ms\n", "layout: 1000 look-ups", "PROCMAP_QUERY", nv, pm1000);
	printf("%-28s %-22s %12zu %9.3f ms\n", "layout: 1000 look-ups", "parse maps", nv, maps1000);
	if (hits != 2000)
		fprintf(stderr, "layout_bench: %d of 2000 look-ups found their VMA\n", hits);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}
