/* A workload with one fd of each kind ferry rebuilds as a kernel object,
 * each with state, that checks them all from inside on SIGUSR1:
 *
 *   eventfd    count 5 (non-blocking); a second one, count 0, in the epoll set
 *   semaphore  an EFD_SEMAPHORE eventfd of count 3: a read gives 1
 *   timerfd    CLOCK_MONOTONIC, 100 s to go, 7 s interval
 *   signalfd   SIGUSR2 (blocked): a raised SIGUSR2 is read from it
 *   epoll      the eventfds, the signalfd, the timerfd and the inotify fd,
 *              each with its own data: at the check only the first eventfd
 *              is ready, then the second once it is written
 *   inotify    IN_CREATE on DIR/watched: a file created there is reported
 *   memfd      "fdcheck", 128 KiB of pattern, seals SHRINK|GROW, position
 *              7, and mapped shared: the mapping and the fd see one file
 *   deleted    DIR/gone, 200 KiB of pattern, unlinked, position 12345
 *   devices    /dev/null, /dev/zero, /dev/urandom
 *
 * usage: fdcheck DIR [--extra uffd|io_uring|gap]
 * DIR/ready gets the PID once all is set up; SIGUSR1 writes DIR/verdict:
 * "ok" or "bad WHAT". --extra adds a kind ferry refuses (a userfaultfd, an
 * io_uring) or a watch-descriptor gap (watch 1 removed, watch 2 kept). */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MEMFD_SIZE (128u << 10)
#define DELETED_SIZE (200u << 10)
#define DELETED_POS 12345

static volatile sig_atomic_t want_check;
static const char *dir;
static int efd, efd2, sem, tfd, sfd, ep, ino, mfd, dfd, nullfd, zerofd, urfd;
static uint8_t *mmem;
static char bad[256];

static uint8_t pat(uint32_t seed, size_t i)
{
	return (uint8_t)((i * 2654435761u + seed) >> 13);
}

static void on_usr1(int sig)
{
	(void)sig;
	want_check = 1;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!bad[0] && !(cond))                                       \
			snprintf(bad, sizeof(bad), __VA_ARGS__);              \
	} while (0)

static void fill(int fd, uint32_t seed, size_t len)
{
	uint8_t *b = malloc(len);

	for (size_t i = 0; i < len; i++)
		b[i] = pat(seed, i);
	if (!b || pwrite(fd, b, len, 0) != (ssize_t)len)
		die("fill");
	free(b);
}

static bool same(int fd, uint32_t seed, size_t len)
{
	uint8_t *b = malloc(len);
	bool ok = b && pread(fd, b, len, 0) == (ssize_t)len;

	for (size_t i = 0; ok && i < len; i++)
		ok = b[i] == pat(seed, i);
	free(b);
	return ok;
}

static void setup(const char *extra)
{
	struct itimerspec its = { .it_value = { 100, 0 }, .it_interval = { 7, 0 } };
	char path[4096];
	uint64_t v = 5;
	sigset_t ss;

	efd = eventfd(0, EFD_NONBLOCK);
	efd2 = eventfd(0, EFD_NONBLOCK);
	sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	if (efd < 0 || efd2 < 0 || sem < 0 || write(efd, &v, 8) != 8)
		die("eventfd");
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
		die("timerfd");
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR2);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd");
	snprintf(path, sizeof(path), "%s/watched", dir);
	mkdir(path, 0700);
	ino = inotify_init1(IN_NONBLOCK);
	if (ino < 0)
		die("inotify");
	if (extra && !strcmp(extra, "gap")) {
		char other[4200];

		snprintf(other, sizeof(other), "%s/other", dir);
		mkdir(other, 0700);
		int w1 = inotify_add_watch(ino, other, IN_CREATE);
		if (w1 < 0 || inotify_rm_watch(ino, w1) < 0)
			die("inotify gap");
		/* the IN_IGNORED event of the removal is read off */
		char evb[256];
		while (read(ino, evb, sizeof(evb)) > 0)
			;
	}
	if (inotify_add_watch(ino, path, IN_CREATE) < 0)
		die("inotify_add_watch");

	ep = epoll_create1(0);
	struct {
		int fd;
		uint64_t data;
	} set[] = { { efd, 0xE1 }, { efd2, 0xE2 }, { sfd, 0x51 }, { tfd, 0x71 }, { ino, 0x11 } };
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = set[i].data };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, set[i].fd, &ev) < 0)
			die("epoll_ctl");
	}

	mfd = memfd_create("fdcheck", MFD_ALLOW_SEALING);
	if (mfd < 0)
		die("memfd_create");
	fill(mfd, 1, MEMFD_SIZE);
	mmem = mmap(NULL, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (mmem == MAP_FAILED || fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0 ||
	    lseek(mfd, 7, SEEK_SET) != 7)
		die("memfd");

	snprintf(path, sizeof(path), "%s/gone", dir);
	dfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (dfd < 0)
		die("open gone");
	fill(dfd, 2, DELETED_SIZE);
	if (lseek(dfd, DELETED_POS, SEEK_SET) != DELETED_POS || unlink(path) < 0)
		die("gone");

	nullfd = open("/dev/null", O_WRONLY);
	zerofd = open("/dev/zero", O_RDONLY);
	urfd = open("/dev/urandom", O_RDONLY);
	if (nullfd < 0 || zerofd < 0 || urfd < 0)
		die("devices");

	if (extra && !strcmp(extra, "uffd") && syscall(SYS_userfaultfd, O_CLOEXEC) < 0)
		die("userfaultfd");
	if (extra && !strcmp(extra, "io_uring")) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		if (syscall(SYS_io_uring_setup, 4, &p) < 0)
			die("io_uring_setup");
	}
}

/* The data of every ready entry, as a bit per known value. */
static unsigned ready_set(void)
{
	struct epoll_event ev[8];
	unsigned set = 0;
	int n = epoll_wait(ep, ev, 8, 0);

	for (int i = 0; i < n; i++)
		switch (ev[i].data.u64) {
		case 0xE1: set |= 1; break;
		case 0xE2: set |= 2; break;
		case 0x51: set |= 4; break;
		case 0x71: set |= 8; break;
		case 0x11: set |= 16; break;
		default: set |= 32; break;
		}
	return set;
}

/* Does this kernel show EFD_SEMAPHORE in fdinfo (6.7 and later)? Before,
 * no one can see it, ferry included, and the restored eventfd is an
 * ordinary one of the same count (tests/integration/fdkinds.sh skips the
 * case, saying so). */
static bool semaphore_visible(void)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", sem);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, "eventfd-semaphore:") != NULL;
}

static void check(void)
{
	struct itimerspec its;
	struct signalfd_siginfo si;
	uint64_t v = 0, one = 1;
	char path[4200], evb[512], z[64];
	unsigned rs;

	bad[0] = '\0';
	CHECK(fcntl(efd, F_GETFL) & O_NONBLOCK, "eventfd lost O_NONBLOCK");
	rs = ready_set();
	CHECK(rs == 1, "epoll: ready set 0x%x before, want 0x1 (the eventfd of count 5)", rs);
	CHECK(write(efd2, &one, 8) == 8, "write the second eventfd");
	rs = ready_set();
	CHECK(rs == 3, "epoll: ready set 0x%x after a write, want 0x3", rs);
	CHECK(read(efd, &v, 8) == 8 && v == 5, "eventfd count %llu, want 5", (unsigned long long)v);
	if (semaphore_visible()) {
		CHECK(read(sem, &v, 8) == 8 && v == 1, "semaphore eventfd read %llu, want 1",
		      (unsigned long long)v);
		CHECK(read(sem, &v, 8) == 8 && read(sem, &v, 8) == 8 && read(sem, &v, 8) < 0,
		      "semaphore eventfd: not 3 reads of 1");
	} else {
		CHECK(read(sem, &v, 8) == 8 && (v == 3 || v == 1), "semaphore eventfd read %llu, "
		      "want its count", (unsigned long long)v);
	}

	CHECK(timerfd_gettime(tfd, &its) == 0, "timerfd_gettime: %s", strerror(errno));
	CHECK((its.it_value.tv_sec || its.it_value.tv_nsec) && its.it_value.tv_sec < 100 +
	      (its.it_value.tv_nsec == 0), "timerfd: %lld.%09ld s left, want (0, 100]",
	      (long long)its.it_value.tv_sec, its.it_value.tv_nsec);
	CHECK(its.it_interval.tv_sec == 7 && !its.it_interval.tv_nsec, "timerfd interval %lld s",
	      (long long)its.it_interval.tv_sec);

	raise(SIGUSR2);
	CHECK(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2,
	      "signalfd did not deliver SIGUSR2");

	snprintf(path, sizeof(path), "%s/watched/new", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	ssize_t n = read(ino, evb, sizeof(evb));
	struct inotify_event *ie = (struct inotify_event *)evb;
	CHECK(n >= (ssize_t)sizeof(*ie) && (ie->mask & IN_CREATE) && ie->len &&
	      !strcmp(ie->name, "new"), "inotify: no IN_CREATE for watched/new (read %zd)", n);
	rs = ready_set();
	CHECK(!(rs & 16), "epoll: the inotify fd still ready after its event was read");

	CHECK(same(mfd, 1, MEMFD_SIZE), "memfd contents differ");
	CHECK(lseek(mfd, 0, SEEK_CUR) == 7, "memfd position not 7");
	CHECK(fcntl(mfd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "memfd seals 0x%x",
	      fcntl(mfd, F_GET_SEALS));
	CHECK(mmem[100] == pat(1, 100), "memfd mapping differs from the file");
	mmem[100] ^= 0xff;
	uint8_t b = 0;
	CHECK(pread(mfd, &b, 1, 100) == 1 && (b ^ pat(1, 100)) == 0xff,
	      "a write to the memfd mapping is not seen through the fd");
	mmem[100] ^= 0xff;
	CHECK(ftruncate(mfd, 10) < 0 && errno == EPERM, "memfd shrinks despite F_SEAL_SHRINK");

	CHECK(same(dfd, 2, DELETED_SIZE), "deleted file contents differ");
	CHECK(lseek(dfd, 0, SEEK_CUR) == DELETED_POS, "deleted file position %lld",
	      (long long)lseek(dfd, 0, SEEK_CUR));
	struct stat st;
	CHECK(fstat(dfd, &st) == 0 && st.st_nlink == 0 && (st.st_mode & 0777) == 0640,
	      "deleted file: nlink %lu mode %o", (unsigned long)st.st_nlink, st.st_mode & 0777);
	CHECK((fcntl(dfd, F_GETFL) & O_ACCMODE) == O_RDWR, "deleted file not O_RDWR");

	memset(z, 1, sizeof(z));
	CHECK(read(zerofd, z, sizeof(z)) == sizeof(z) && !z[0] && !z[63], "/dev/zero");
	CHECK(write(nullfd, z, 8) == 8, "/dev/null");
	CHECK(read(urfd, z, 16) == 16, "/dev/urandom");
}

int main(int argc, char **argv)
{
	sigset_t usr1, waitmask;
	char path[4200], path2[4200];
	FILE *f;

	if (argc < 2)
		return 2;
	dir = argv[1];
	/* Only the fds it makes: none inherited from whoever started it. */
	syscall(SYS_close_range, 3, ~0u, 0);
	setup(argc > 3 && !strcmp(argv[2], "--extra") ? argv[3] : NULL);
	signal(SIGUSR1, on_usr1);
	snprintf(path, sizeof(path), "%s/ready", dir);
	f = fopen(path, "w");
	if (!f)
		die("ready");
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	/* SIGUSR1 blocked but while waiting for it, so that one that comes as
	 * the restored process restarts its wait is not lost (pause() would). */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &waitmask);
	sigdelset(&waitmask, SIGUSR1);
	for (;;) {
		while (!want_check)
			sigsuspend(&waitmask);
		want_check = 0;
		check();
		snprintf(path, sizeof(path), "%s/verdict.tmp", dir);
		f = fopen(path, "w");
		if (!f)
			die("verdict");
		fprintf(f, bad[0] ? "bad %s\n" : "ok\n", bad);
		fclose(f);
		snprintf(path2, sizeof(path2), "%s/verdict", dir);
		if (rename(path, path2) < 0)
			die("verdict");
	}
}
