/* A workload that checks itself all the time, for tests that interrupt or
 * kill ferry at random points: it must come out of every one of them
 * running, with its memory, its registers and its blocked system calls as
 * they were.
 *
 *   writers   each owns a region and sweeps it for ever: check a page against
 *             the version it last wrote there, write the next version
 *   regs      the main thread and one more sleep in a raw nanosleep with
 *             known values in every register the kernel preserves, and
 *             compare them afterwards (an injected syscall whose registers
 *             were not given back shows here)
 *   pipe      one thread blocks in read(2) on a pipe the main thread feeds a
 *             counting byte every 2 ms: a restarted read must neither lose
 *             nor repeat a byte
 *
 * Every thread counts its turns. On SIGUSR1 the main thread looks at the
 * counts, waits 200 ms, and writes to CTL.check "ok TURNS" if every thread
 * moved on and nothing was found wrong, else "bad ..." or "stuck ...". A
 * process that does not answer is stopped (or dead).
 *
 * usage: selfcheck CTL [--mb N] [--writers N]
 * CTL.ready gets the PID once every thread runs. Nothing is mapped, opened
 * or closed after that, except CTL.check (opened and closed at once), so a
 * test can compare /proc/PID/maps and /proc/PID/fd before and after. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

#define MAX_WRITERS 16
#define NR_EXTRA 2            /* the register thread and the pipe reader */

struct writer {
	uint8_t *addr;
	size_t npages;
	uint32_t *ver;
	uint64_t id;
};

static size_t ps;
static const char *ctl;
static struct writer writers[MAX_WRITERS];
static int nr_writers = 2;
static _Atomic uint64_t turns[MAX_WRITERS + NR_EXTRA + 1];
static _Atomic int broken;            /* the first problem found wins */
static char broken_msg[160];
static volatile sig_atomic_t want_check;
static int pipe_fd[2];

static void report(const char *fmt, uint64_t a, uint64_t b)
{
	int zero = 0;

	if (atomic_compare_exchange_strong(&broken, &zero, 1))
		snprintf(broken_msg, sizeof(broken_msg), fmt, a, b);
}

static uint64_t seed_of(const struct writer *w, size_t i)
{
	return (w->id << 40) ^ ((uint64_t)w->ver[i] << 8) ^ 0xc3;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	int me = (int)(w - writers);

	for (size_t i = 0;; i = (i + 1) % w->npages) {
		uint8_t *p = w->addr + i * ps;

		if (patt_check(p, (uintptr_t)p, ps, seed_of(w, i)))
			report("bad writer %" PRIu64 " page %" PRIu64, (uint64_t)me, i);
		w->ver[i]++;
		patt_fill(p, (uintptr_t)p, ps, seed_of(w, i));
		turns[me]++;
		/* 8 pages a millisecond: busy enough to dirty every round, idle
		 * enough to leave the cores to ferry. */
		if (i % 8 == 0) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* nanosleep by hand, with known values in the registers the kernel keeps
 * across a syscall (all but rax, rcx and r11): 0 if they came back. */
static int sleep_checking_regs(long ns)
{
#if defined(__x86_64__)
	struct timespec ts = { 0, ns };
	register uint64_t r8 __asm__("r8") = 0x0808080808080808ull;
	register uint64_t r9 __asm__("r9") = 0x0909090909090909ull;
	register uint64_t r10 __asm__("r10") = 0x1010101010101010ull;
	register uint64_t r12 __asm__("r12") = 0x1212121212121212ull;
	register uint64_t r13 __asm__("r13") = 0x1313131313131313ull;
	register uint64_t r14 __asm__("r14") = 0x1414141414141414ull;
	register uint64_t r15 __asm__("r15") = 0x1515151515151515ull;
	uint64_t rdi = (uintptr_t)&ts, rsi = 0, rdx = 0x0d0d0d0d0d0d0d0dull;
	long rax = SYS_nanosleep;

	__asm__ volatile("syscall"
			 : "+a"(rax), "+D"(rdi), "+S"(rsi), "+d"(rdx), "+r"(r8), "+r"(r9),
			   "+r"(r10), "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15)
			 :
			 : "rcx", "r11", "memory");
	if (rax != 0 && rax != -4 /* EINTR: a signal of ours */)
		return 1;
	return !(rdi == (uintptr_t)&ts && rsi == 0 && rdx == 0x0d0d0d0d0d0d0d0dull &&
		 r8 == 0x0808080808080808ull && r9 == 0x0909090909090909ull &&
		 r10 == 0x1010101010101010ull && r12 == 0x1212121212121212ull &&
		 r13 == 0x1313131313131313ull && r14 == 0x1414141414141414ull &&
		 r15 == 0x1515151515151515ull);
#else
	struct timespec ts = { 0, ns };
	nanosleep(&ts, NULL);
	return 0;
#endif
}

static void *regs_main(void *arg)
{
	int me = (int)(uintptr_t)arg;

	for (;;) {
		if (sleep_checking_regs(300000))
			report("registers changed across a syscall in thread %" PRIu64 "%.0" PRIu64,
			       (uint64_t)me, 0);
		turns[me]++;
	}
	return NULL;
}

static void *pipe_main(void *arg)
{
	int me = (int)(uintptr_t)arg;
	uint8_t want = 0, got;

	for (;;) {
		ssize_t n = read(pipe_fd[0], &got, 1);

		if (n != 1) {
			report("pipe read returned %" PRIu64 " (errno %" PRIu64 ")", (uint64_t)n,
			       (uint64_t)errno);
			continue;
		}
		if (got != want)
			report("pipe byte %" PRIu64 ", expected %" PRIu64, got, want);
		want = (uint8_t)(got + 1);
		turns[me]++;
	}
	return NULL;
}

static void put_check(const char *text)
{
	char path[4096], tmp[4200];
	int fd;

	snprintf(path, sizeof(path), "%s.check", ctl);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		perror("write");
	close(fd);
	rename(tmp, path);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_usr1(int sig)
{
	(void)sig;
	want_check = 1;
}

/* The main thread feeds the pipe and checks its own registers meanwhile;
 * on request it checks that every thread moves on. */
static void main_loop(int nthreads, uint8_t next)
{
	uint64_t before[MAX_WRITERS + NR_EXTRA + 1], check_at = 0, main_turns = 0;
	char msg[256];

	for (;;) {
		if (sleep_checking_regs(2000000))
			report("registers changed across a syscall in the main thread (%" PRIu64
			       "%.0" PRIu64 ")", main_turns, 0);
		main_turns++;
		if (write(pipe_fd[1], &next, 1) == 1)
			next++;
		if (want_check && !check_at) {
			want_check = 0;
			for (int i = 0; i < nthreads; i++)
				before[i] = turns[i];
			check_at = now_ns() + 200000000ull;
		}
		if (check_at && now_ns() >= check_at) {
			int stuck = -1;

			check_at = 0;
			for (int i = 0; i < nthreads && stuck < 0; i++)
				if (turns[i] == before[i])
					stuck = i;
			if (atomic_load(&broken))
				snprintf(msg, sizeof(msg), "bad %s\n", broken_msg);
			else if (stuck >= 0)
				snprintf(msg, sizeof(msg), "stuck thread %d (of %d) made no progress in "
					 "200 ms\n", stuck, nthreads);
			else
				snprintf(msg, sizeof(msg), "ok %" PRIu64 "\n", main_turns);
			put_check(msg);
		}
	}
}

int main(int argc, char **argv)
{
	size_t mb = 32;
	int nthreads;
	char buf[64];

	if (argc < 2) {
		fprintf(stderr, "usage: selfcheck CTL [--mb N] [--writers N]\n");
		return 2;
	}
	ctl = argv[1];
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mb"))
			mb = strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--writers"))
			nr_writers = atoi(argv[i + 1]);
	}
	if (nr_writers < 1 || nr_writers > MAX_WRITERS || !mb) {
		fprintf(stderr, "selfcheck: bad --mb or --writers\n");
		return 2;
	}
	/* Inherit nothing but stdio: the test compares the fd table. */
	syscall(SYS_close_range, 3, ~0u, 0);
	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (pipe2(pipe_fd, O_CLOEXEC)) {
		perror("pipe");
		return 1;
	}
	signal(SIGUSR1, on_usr1);
	for (int i = 0; i < nr_writers; i++) {
		struct writer *w = &writers[i];

		w->id = 1 + (uint64_t)i;
		w->npages = mb * 1048576 / ps / (size_t)nr_writers;
		w->addr = mmap(NULL, w->npages * ps, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		w->ver = calloc(w->npages, sizeof(*w->ver));
		if (w->addr == MAP_FAILED || !w->ver) {
			perror("mmap");
			return 1;
		}
		for (size_t k = 0; k < w->npages; k++)
			patt_fill(w->addr + k * ps, (uintptr_t)(w->addr + k * ps), ps, seed_of(w, k));
	}
	nthreads = nr_writers + NR_EXTRA;
	for (int i = 0; i < nthreads; i++) {
		pthread_t th;
		void *(*fn)(void *) = i < nr_writers ? writer_main
				      : i == nr_writers ? regs_main : pipe_main;
		void *arg = i < nr_writers ? (void *)&writers[i] : (void *)(uintptr_t)i;

		if (pthread_create(&th, NULL, fn, arg)) {
			perror("pthread_create");
			return 1;
		}
	}
	/* The pipe reader's first turn needs its first byte. */
	if (write(pipe_fd[1], "", 1) != 1) {
		perror("pipe write");
		return 1;
	}
	for (int i = 0; i < nthreads; i++)
		while (!turns[i])
			usleep(1000);
	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	{
		char path[4096], tmp[4200];
		int fd;

		snprintf(path, sizeof(path), "%s.ready", ctl);
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, strlen(buf)) < 0) {
			perror(tmp);
			return 1;
		}
		close(fd);
		rename(tmp, path);
	}
	main_loop(nthreads, 1);
	return 0;
}
