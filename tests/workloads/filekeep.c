/* A workload that holds the files a restore must find again: a directory
 * fd, a log opened O_WRONLY|O_APPEND, and a data file opened read-only.
 * A thread counts for ever. On SIGUSR1 it appends one line to the log
 * through its fd, counts the directory's entries through its fd, reads the
 * data file's first 4096 bytes through its fd, and writes DIR/check:
 *   "ok counter=N entries=N"   or   "bad WHAT".
 *
 * usage: filekeep DIR   (needs DIR/sub; creates DIR/log, DIR/data; writes
 * DIR/ready with its PID once everything is open) */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DATA_SIZE 4096

static volatile sig_atomic_t check_requested;
static volatile uint64_t counter;

static void on_usr1(int sig)
{
	(void)sig;
	check_requested = 1;
}

static void put(const char *dir, const char *name, const char *text)
{
	char tmp[4096], path[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
	rename(tmp, path);
}

static uint8_t expect(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static void check(const char *dir, int dfd, int logfd, int datafd)
{
	uint8_t buf[DATA_SIZE];
	char line[128], out[256];
	struct dirent *de;
	long entries = 0;
	DIR *d;
	int n;

	n = snprintf(line, sizeof(line), "tick %" PRIu64 "\n", counter);
	if (write(logfd, line, (size_t)n) != n) {
		put(dir, "check", "bad log write\n");
		return;
	}
	d = fdopendir(dup(dfd));
	if (!d) {
		put(dir, "check", "bad directory fd\n");
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)))
		entries += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	if (pread(datafd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
		put(dir, "check", "bad data read\n");
		return;
	}
	for (size_t i = 0; i < sizeof(buf); i++) {
		if (buf[i] != expect(i)) {
			snprintf(out, sizeof(out), "bad data byte %zu\n", i);
			put(dir, "check", out);
			return;
		}
	}
	snprintf(out, sizeof(out), "ok counter=%" PRIu64 " entries=%ld\n", counter, entries);
	put(dir, "check", out);
}

int main(int argc, char **argv)
{
	struct timespec ts = { 0, 1000000 };
	uint8_t buf[DATA_SIZE];
	char path[4096], pid[32];
	int dfd, logfd, datafd;

	if (argc != 2) {
		fprintf(stderr, "usage: filekeep DIR\n");
		return 2;
	}
	/* Only what it opens itself: nothing inherited a dump would refuse. */
	syscall(SYS_close_range, 3u, ~0u, 0u);
	snprintf(path, sizeof(path), "%s/sub", argv[1]);
	dfd = open(path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "%s/log", argv[1]);
	logfd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	snprintf(path, sizeof(path), "%s/data", argv[1]);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = expect(i);
	datafd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (dfd < 0 || logfd < 0 || datafd < 0 || write(datafd, buf, sizeof(buf)) != DATA_SIZE) {
		perror("filekeep: open");
		return 1;
	}
	close(datafd);
	datafd = open(path, O_RDONLY);
	if (datafd < 0 || write(logfd, "start\n", 6) != 6)
		return 1;
	signal(SIGUSR1, on_usr1);
	snprintf(pid, sizeof(pid), "%d\n", getpid());
	put(argv[1], "ready", pid);
	for (;;) {
		counter++;
		nanosleep(&ts, NULL);
		if (check_requested) {
			check_requested = 0;
			check(argv[1], dfd, logfd, datafd);
		}
	}
}
