/* A workload that proves a restore from the inside. It keeps, all the time:
 * a counter it writes line by line to a file (no O_APPEND: the offset must
 * survive), four threads taking turns under a mutex and condition variable,
 * a thread holding live values in every AVX register across long spins, a
 * SIGUSR2 handler, and a blocked real-time signal that a test may leave
 * pending, and a shared file mapping it writes through. On SIGUSR1 it
 * checks all of that, forks a child that checks its
 * memory too, and writes one line to DIR/check:
 *   "ok counter=N turns=N avx=N usr2=N fork=ok pending=N"  or  "bad ...".
 *
 * usage: rsttest DIR   (writes DIR/log, DIR/shared, DIR/ready, DIR/check) */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

#define WORKERS 4
#define HEAP_PAGES 256

static const char *dir;
static volatile sig_atomic_t check_requested, usr2_count;
static volatile uint64_t counter;

static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cv = PTHREAD_COND_INITIALIZER;
static int turn;
static uint64_t turns[WORKERS];

static volatile uint64_t avx_rounds, avx_bad;
static uint8_t *heap;
static volatile uint64_t *shared; /* SHARED_PAGES of DIR/shared, MAP_SHARED */
static size_t ps;

#define SHARED_PAGES 4

static void on_usr1(int sig)
{
	(void)sig;
	check_requested = 1;
}

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	usr2_count++;
}

static void *worker(void *arg)
{
	int me = (int)(intptr_t)arg;

	for (;;) {
		pthread_mutex_lock(&turn_lock);
		while (turn != me)
			pthread_cond_wait(&turn_cv, &turn_lock);
		turns[me]++;
		turn = (me + 1) % WORKERS;
		pthread_cond_broadcast(&turn_cv);
		pthread_mutex_unlock(&turn_lock);
		usleep(200);
	}
	return NULL;
}

/* Load all sixteen ymm registers, spin with nothing else touching them,
 * store them: whatever froze and restored the thread meanwhile must have
 * kept them. */
__attribute__((target("avx"))) static void avx_spin(const uint8_t *in, uint8_t *out,
						     unsigned long spins)
{
	__asm__ volatile(
		"vmovdqu 0(%[in]), %%ymm0\n\t"
		"vmovdqu 32(%[in]), %%ymm1\n\t"
		"vmovdqu 64(%[in]), %%ymm2\n\t"
		"vmovdqu 96(%[in]), %%ymm3\n\t"
		"vmovdqu 128(%[in]), %%ymm4\n\t"
		"vmovdqu 160(%[in]), %%ymm5\n\t"
		"vmovdqu 192(%[in]), %%ymm6\n\t"
		"vmovdqu 224(%[in]), %%ymm7\n\t"
		"vmovdqu 256(%[in]), %%ymm8\n\t"
		"vmovdqu 288(%[in]), %%ymm9\n\t"
		"vmovdqu 320(%[in]), %%ymm10\n\t"
		"vmovdqu 352(%[in]), %%ymm11\n\t"
		"vmovdqu 384(%[in]), %%ymm12\n\t"
		"vmovdqu 416(%[in]), %%ymm13\n\t"
		"vmovdqu 448(%[in]), %%ymm14\n\t"
		"vmovdqu 480(%[in]), %%ymm15\n\t"
		"1: dec %[n]\n\t"
		"jnz 1b\n\t"
		"vmovdqu %%ymm0, 0(%[out])\n\t"
		"vmovdqu %%ymm1, 32(%[out])\n\t"
		"vmovdqu %%ymm2, 64(%[out])\n\t"
		"vmovdqu %%ymm3, 96(%[out])\n\t"
		"vmovdqu %%ymm4, 128(%[out])\n\t"
		"vmovdqu %%ymm5, 160(%[out])\n\t"
		"vmovdqu %%ymm6, 192(%[out])\n\t"
		"vmovdqu %%ymm7, 224(%[out])\n\t"
		"vmovdqu %%ymm8, 256(%[out])\n\t"
		"vmovdqu %%ymm9, 288(%[out])\n\t"
		"vmovdqu %%ymm10, 320(%[out])\n\t"
		"vmovdqu %%ymm11, 352(%[out])\n\t"
		"vmovdqu %%ymm12, 384(%[out])\n\t"
		"vmovdqu %%ymm13, 416(%[out])\n\t"
		"vmovdqu %%ymm14, 448(%[out])\n\t"
		"vmovdqu %%ymm15, 480(%[out])\n\t"
		"vzeroupper\n\t"
		: [n] "+r"(spins)
		: [in] "r"(in), [out] "r"(out)
		: "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

static void *avx_thread(void *arg)
{
	uint8_t in[512], out[512];

	(void)arg;
	for (uint64_t round = 1;; round++) {
		patt_fill(in, round, sizeof(in), 77);
		avx_spin(in, out, 20000000ul);
		if (memcmp(in, out, sizeof(in)))
			avx_bad++;
		avx_rounds++;
	}
	return NULL;
}

/* The shared mapping and the file must be the same pages: reading the file
 * shows what the process wrote through the mapping. */
static int shared_matches_file(void)
{
	char path[4096];
	uint8_t *buf = malloc(SHARED_PAGES * ps);
	int fd, same;

	snprintf(path, sizeof(path), "%s/shared", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	same = buf && fd >= 0 && pread(fd, buf, SHARED_PAGES * ps, 0) == (ssize_t)(SHARED_PAGES * ps) &&
	       !memcmp(buf, (const void *)shared, SHARED_PAGES * ps) && shared[0] != 0;
	if (fd >= 0)
		close(fd);
	free(buf);
	return same;
}

/* The forked child's part: the heap pattern and a working counter file. */
static int child_check(void)
{
	for (size_t p = 0; p < HEAP_PAGES; p++)
		if (patt_check(heap + p * ps, (uintptr_t)(heap + p * ps), ps, 5))
			return 1;
	return 0;
}

static void self_check(int rt_sig)
{
	char path[4096], msg[512];
	uint64_t lo = UINT64_MAX, hi = 0, total = 0;
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	int status, pending = 0;
	pid_t pid;
	FILE *f;

	pthread_mutex_lock(&turn_lock);
	for (int i = 0; i < WORKERS; i++) {
		lo = turns[i] < lo ? turns[i] : lo;
		hi = turns[i] > hi ? turns[i] : hi;
		total += turns[i];
	}
	pthread_mutex_unlock(&turn_lock);
	{
		sigset_t s;

		sigemptyset(&s);
		sigaddset(&s, rt_sig);
		while (sigtimedwait(&s, &si, &zero) == rt_sig)
			pending++;
	}
	pid = fork();
	if (pid == 0)
		_exit(child_check());
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		snprintf(msg, sizeof(msg), "bad fork (child status 0x%x)\n", pid < 0 ? -1 : status);
	else if (child_check())
		snprintf(msg, sizeof(msg), "bad heap pattern\n");
	else if (hi - lo > 1)
		snprintf(msg, sizeof(msg), "bad turns: %" PRIu64 "..%" PRIu64 "\n", lo, hi);
	else if (!shared_matches_file())
		snprintf(msg, sizeof(msg), "bad shared file mapping: not the file's pages\n");
	else if (avx_bad)
		snprintf(msg, sizeof(msg), "bad avx: %" PRIu64 " of %" PRIu64 " rounds\n", avx_bad,
			 avx_rounds);
	else
		snprintf(msg, sizeof(msg), "ok counter=%" PRIu64 " turns=%" PRIu64 " avx=%" PRIu64
			 " usr2=%d fork=ok pending=%d\n", counter, total, avx_rounds,
			 (int)usr2_count, pending);
	snprintf(path, sizeof(path), "%s/check.tmp", dir);
	f = fopen(path, "w");
	if (f) {
		fputs(msg, f);
		fclose(f);
		snprintf(msg, sizeof(msg), "%s/check", dir);
		rename(path, msg);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_usr2, .sa_flags = SA_SIGINFO | SA_RESTART };
	int rt_sig = SIGRTMIN + 1;
	char path[4096], line[32];
	pthread_t th;
	sigset_t block;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: rsttest DIR\n");
		return 2;
	}
	dir = argv[1];
	ps = (size_t)sysconf(_SC_PAGESIZE);
	syscall(SYS_close_range, 3, ~0u, 0);
	/* The real-time signal stays blocked everywhere: sent before a dump, it
	 * must still be pending after the restore. */
	sigemptyset(&block);
	sigaddset(&block, rt_sig);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	{
		/* An alternate signal stack for the handlers of the main thread. */
		stack_t ss = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16 };
		sigaltstack(&ss, NULL);
		sa.sa_flags |= SA_ONSTACK;
	}
	signal(SIGUSR1, on_usr1);
	sigaction(SIGUSR2, &sa, NULL);

	heap = malloc(HEAP_PAGES * ps + ps);
	heap = (uint8_t *)(((uintptr_t)heap + ps - 1) & ~(uintptr_t)(ps - 1));
	for (size_t p = 0; p < HEAP_PAGES; p++)
		patt_fill(heap + p * ps, (uintptr_t)(heap + p * ps), ps, 5);

	snprintf(path, sizeof(path), "%s/shared", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)(SHARED_PAGES * ps)) < 0)
		return perror(path), 1;
	shared = mmap(NULL, SHARED_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (shared == MAP_FAILED)
		return perror("mmap shared"), 1;
	shared[0] = 1;

	snprintf(path, sizeof(path), "%s/log", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return perror(path), 1;
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&th, NULL, worker, (void *)(intptr_t)i);
	if (__builtin_cpu_supports("avx"))
		pthread_create(&th, NULL, avx_thread, NULL);
	snprintf(path, sizeof(path), "%s/ready", dir);
	close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	for (;;) {
		int n = snprintf(line, sizeof(line), "%" PRIu64 "\n", counter);

		if (write(fd, line, (size_t)n) != n)
			return 1;
		counter++;
		shared[(counter % SHARED_PAGES) * (ps / 8) + 1] = counter;
		if (check_requested) {
			check_requested = 0;
			self_check(rt_sig);
		}
		usleep(500);
	}
}
