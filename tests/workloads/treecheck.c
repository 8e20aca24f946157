/* A tree of processes that checks itself, for tests of tree dumps and
 * restores: a pipeline through a pipe and a socketpair with data always left
 * queued in both, shared memory, its own session and process group, and a
 * zombie.
 *
 *   root R   session leader (setsid), watches everything through the shared
 *            page, reads C's datagrams, keeps zombie Z unreaped
 *   A        writes a counting byte stream into a pipe, as fast as it goes
 *            (so the pipe is always full)
 *   B        reads the pipe slowly, checks every byte, relays the bytes into
 *            a stream socketpair (so its queue is always full too)
 *   C        reads the socket even more slowly, checks every byte, and sends
 *            R a numbered datagram (a SOCK_DGRAM socketpair) every 50 ms
 *   Z        exits at once with status 7, never reaped
 *
 * Every process checks that its parent is R and that its session and group
 * are R's, and keeps a private buffer of known bytes it rechecks; the shared
 * page holds each process's turn count and the first error any of them saw.
 * R writes OUT every 100 ms: "ok BYTES DGRAMS" (bytes C verified, datagrams
 * R received in order) or "bad WHY". A gap or a wrong byte anywhere in the
 * stream, a lost or repeated datagram, a changed parent, group or session, a
 * corrupted buffer or a zombie gone is "bad".
 *
 * usage: treecheck OUT. Prints R's pid, then the parent exits. R's children
 * are A, B, C, Z in that order; OUT.pids gets "R A B C Z". SIGUSR2 to R
 * forks one more child L, which checks itself as the others do; OUT.late
 * gets its pid. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PRIV_SIZE (256u << 10)

struct shared {
	pid_t root;
	uint64_t turns[5];      /* R, A, B, C, L */
	uint64_t verified;      /* bytes C checked */
	char error[256];        /* the first problem anyone saw */
};

static struct shared *sh;
static uint8_t *priv;
static uint8_t priv_seed;

static uint8_t stream_byte(uint64_t i)
{
	return (uint8_t)((i * 0x9E3779B97F4A7C15ull) >> 56);
}

static void fail(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* First one wins; good enough for a verdict. */
	if (!sh->error[0])
		snprintf(sh->error, sizeof(sh->error), "%s", msg);
}

static void priv_fill(uint8_t seed)
{
	priv = mmap(NULL, PRIV_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (priv == MAP_FAILED)
		exit(1);
	priv_seed = seed;
	for (size_t i = 0; i < PRIV_SIZE; i++)
		priv[i] = (uint8_t)(i * 7 + seed);
}

/* The process's own checks, every turn. */
static void self_check(const char *who, int idx)
{
	static size_t at;

	if (getppid() != sh->root && idx)
		fail("%s: parent is %d, not %d", who, getppid(), sh->root);
	if (getsid(0) != sh->root || getpgrp() != sh->root)
		fail("%s: session %d group %d, not %d", who, getsid(0), getpgrp(), sh->root);
	for (size_t k = 0; k < 4096; k++, at = (at + 1) % PRIV_SIZE)
		if (priv[at] != (uint8_t)(at * 7 + priv_seed)) {
			fail("%s: private byte %zu corrupt", who, at);
			break;
		}
	sh->turns[idx]++;
}

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void run_a(int out)
{
	uint8_t buf[4096];
	uint64_t pos = 0;

	priv_fill(1);
	for (;;) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = stream_byte(pos + i);
		for (size_t off = 0; off < sizeof(buf);) {
			ssize_t n = write(out, buf + off, sizeof(buf) - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fail("A: write: %s", strerror(errno));
				pause();
			}
			off += (size_t)n;
		}
		pos += sizeof(buf);
		self_check("A", 1);
	}
}

static void run_b(int in, int out)
{
	uint8_t buf[1024];
	uint64_t pos = 0;

	priv_fill(2);
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail("B: pipe read returned %zd (%s)", n, strerror(errno));
			pause();
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != stream_byte(pos + (uint64_t)i)) {
				fail("B: pipe byte %llu wrong", (unsigned long long)(pos + (uint64_t)i));
				pause();
			}
		pos += (uint64_t)n;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fail("B: socket write: %s", strerror(errno));
				pause();
			}
			off += w;
		}
		self_check("B", 2);
		msleep(1);
	}
}

static void run_c(int in, int dgram)
{
	uint8_t buf[512];
	uint64_t pos = 0, seq = 0, last = 0;

	priv_fill(3);
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		struct timespec now;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail("C: socket read returned %zd (%s)", n, strerror(errno));
			pause();
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != stream_byte(pos + (uint64_t)i)) {
				fail("C: stream byte %llu wrong", (unsigned long long)(pos + (uint64_t)i));
				pause();
			}
		pos += (uint64_t)n;
		sh->verified = pos;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000 >= last + 50) {
			last = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
			if (send(dgram, &seq, sizeof(seq), 0) == sizeof(seq))
				seq++;
		}
		self_check("C", 3);
		msleep(1);
	}
}

static void report(const char *out, uint64_t dgrams)
{
	char tmp[4200], line[400];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	if (sh->error[0])
		snprintf(line, sizeof(line), "bad %s\n", sh->error);
	else
		snprintf(line, sizeof(line), "ok %llu %llu\n", (unsigned long long)sh->verified,
			 (unsigned long long)dgrams);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, strlen(line)) < 0)
		fail("R: write %s", tmp);
	close(fd);
	rename(tmp, out);
}

static volatile sig_atomic_t fork_late;

static void on_usr2(int sig)
{
	(void)sig;
	fork_late = 1;
}

/* L, forked on SIGUSR2: a child that joins late (after a pre-dump, say)
 * and checks itself like the others; its pid goes to OUT.late. */
static void start_late(const char *out, int dgram)
{
	char path[4200];
	pid_t l = fork();
	int fd;

	if (l == 0) {
		close(dgram);
		priv_fill(4);
		for (;;) {
			self_check("L", 4);
			msleep(50);
		}
	}
	snprintf(path, sizeof(path), "%s.late", out);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dprintf(fd, "%d\n", l);
		close(fd);
	}
}

static void run_root(const char *out, int dgram, pid_t z)
{
	struct sigaction sa = { .sa_handler = on_usr2, .sa_flags = SA_RESTART };
	uint64_t expect = 0;

	priv_fill(0);
	sigaction(SIGUSR2, &sa, NULL);
	for (;;) {
		if (fork_late) {
			fork_late = 0;
			start_late(out, dgram);
		}
		uint64_t seq;
		siginfo_t si;

		/* Datagrams only every 100 ms: a few always wait in the queue. */
		while (recv(dgram, &seq, sizeof(seq), MSG_DONTWAIT) == sizeof(seq)) {
			if (seq != expect)
				fail("R: datagram %llu, expected %llu", (unsigned long long)seq,
				     (unsigned long long)expect);
			expect = seq + 1;
		}
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)z, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid != z ||
		    si.si_code != CLD_EXITED || si.si_status != 7)
			fail("R: zombie %d gone or changed (pid %d code %d status %d)", z, si.si_pid,
			     si.si_code, si.si_status);
		self_check("R", 0);
		report(out, expect);
		msleep(100);
	}
}

int main(int argc, char **argv)
{
	int p[2], s[2], d[2], fd;
	pid_t r, a, b, c, z;
	char path[4200];

	if (argc != 2) {
		fprintf(stderr, "usage: treecheck OUT\n");
		return 2;
	}
	r = fork();
	if (r < 0)
		return 1;
	if (r > 0) {
		printf("%d\n", r);
		return 0;
	}
	setsid();
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	sh->root = getpid();
	if (pipe2(p, O_CLOEXEC) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, d))
		return 1;
	/* Only what each needs, no stdio: nothing of the test's. */
	fd = open("/dev/null", O_RDWR);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
	a = fork();
	if (a == 0) {
		close(p[0]), close(s[0]), close(s[1]), close(d[0]), close(d[1]);
		run_a(p[1]);
	}
	b = fork();
	if (b == 0) {
		close(p[1]), close(s[1]), close(d[0]), close(d[1]);
		run_b(p[0], s[0]);
	}
	c = fork();
	if (c == 0) {
		close(p[0]), close(p[1]), close(s[0]), close(d[0]);
		run_c(s[1], d[1]);
	}
	z = fork();
	if (z == 0)
		_exit(7);
	{
		siginfo_t si; /* a zombie from here on, never reaped */

		waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT);
	}
	close(p[0]), close(p[1]), close(s[0]), close(s[1]), close(d[1]);
	snprintf(path, sizeof(path), "%s.pids", argv[1]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dprintf(fd, "%d %d %d %d %d\n", getpid(), a, b, c, z);
		close(fd);
	}
	run_root(argv[1], d[0], z);
	return 0;
}
