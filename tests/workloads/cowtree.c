/* A tree that shares private memory copy-on-write, each process knowing
 * what every page of it must hold (the test of restore/cow.c):
 *
 *   parent        fills MB MiB, forks, then rewrites every 16th page
 *   ├── child 1   rewrites every 8th page
 *   ├── child 2   drops the second quarter (MADV_DONTNEED: reads as zeroes)
 *   └── child 3   writes nothing; forks
 *       └── grandchild  rewrites every 32nd page of the last half
 *
 * Each page's content derives from its index and the last writer, so a
 * page that came back from the wrong process (or not at all) is caught.
 * On SIGUSR1 each process checks its copy and writes "ok" or "bad PAGE" to
 * CTL.K (K: 0 the parent, 1-3 the children, 4 the grandchild).
 *
 * usage: cowtree CTL [MB]. CTL.ready gets the five PIDs once all have
 * written (each says so in CTL.r.K); the launcher prints the parent's PID and
 * exits (the parent leads a session of its own). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "detach.h"

static const char *ctl;
static size_t npages, ps;
static unsigned char *mem;
static volatile sig_atomic_t want_check;
static int me;

static void on_usr1(int sig)
{
	(void)sig;
	want_check = 1;
}

/* The byte pattern of page i as writer w left it (0: zeroes). */
static unsigned char pat(size_t i, size_t k, int w)
{
	return w ? (unsigned char)(i * 131 + k * 7 + (size_t)w * 29 + 1) : 0;
}

static void fill(size_t i, int w)
{
	for (size_t k = 0; k < ps; k++)
		mem[i * ps + k] = pat(i, k, w);
}

/* Who wrote page i last, as process `who` (0-4) sees it. */
static int writer(size_t i, int who)
{
	switch (who) {
	case 0: return i % 16 == 0 ? 2 : 1;
	case 1: return i % 8 == 0 ? 3 : 1;
	case 2: return i >= npages / 4 && i < npages / 2 ? 0 : 1;
	case 3: return 1;
	default: return i >= npages / 2 && i % 32 == 0 ? 4 : 1;
	}
}

static void report(void)
{
	char path[4096], tmp[4200], msg[64] = "ok\n";
	FILE *f;

	for (size_t i = 0; i < npages; i++) {
		int w = writer(i, me);

		for (size_t k = 0; k < ps; k++)
			if (mem[i * ps + k] != pat(i, k, w)) {
				snprintf(msg, sizeof(msg), "bad page %zu\n", i);
				i = npages;
				break;
			}
	}
	snprintf(path, sizeof(path), "%s.%d", ctl, me);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fputs(msg, f);
	fclose(f);
	rename(tmp, path);
}

/* CTL.r.K: process K has written what it writes; its PID. */
static void done(void)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s.r.%d", ctl, me);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	rename(tmp, path);
}

/* SIGUSR1 is blocked but here: one sent before the loop is not lost. */
static void __attribute__((noreturn)) live(void)
{
	sigset_t none;

	sigemptyset(&none);
	for (;;) {
		while (!want_check)
			sigsuspend(&none);
		want_check = 0;
		report();
	}
}

static pid_t child(int who)
{
	pid_t c = fork();

	if (c)
		return c;
	me = who;
	for (size_t i = 0; i < npages; i++)
		if (writer(i, who) != 1 && writer(i, who) != 0)
			fill(i, writer(i, who));
	if (who == 2)
		madvise(mem + npages / 4 * ps, (npages / 2 - npages / 4) * ps, MADV_DONTNEED);
	if (who == 3)
		child(4);
	done();
	live();
}

int main(int argc, char **argv)
{
	int pids[5] = { 0 };
	char path[4096];
	sigset_t usr1;
	FILE *f;

	if (argc < 2) {
		fprintf(stderr, "usage: cowtree CTL [MB]\n");
		return 2;
	}
	ctl = argv[1];
	detach();
	signal(SIGUSR1, on_usr1);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	ps = (size_t)sysconf(_SC_PAGESIZE);
	npages = (argc > 2 ? strtoul(argv[2], NULL, 0) : 64) << 20;
	npages /= ps;
	mem = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	/* 4 KiB pages: a child's write then copies one page, not 2 MiB. */
	madvise(mem, npages * ps, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < npages; i++)
		fill(i, 1);
	for (int k = 1; k <= 3; k++)
		child(k);
	for (size_t i = 0; i < npages; i += 16)
		fill(i, 2);
	/* Ready once every process has written (a minute at most). */
	pids[0] = (int)getpid();
	for (int k = 1; k <= 4; k++) {
		snprintf(path, sizeof(path), "%s.r.%d", ctl, k);
		for (int n = 0; n < 6000 && access(path, R_OK); n++)
			usleep(10000);
		f = fopen(path, "r");
		if (!f || fscanf(f, "%d", &pids[k]) != 1)
			return 1;
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s.ready", ctl);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d %d %d %d %d\n", pids[0], pids[1], pids[2], pids[3], pids[4]);
		fclose(f);
	}
	live();
}
