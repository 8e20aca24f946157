/* A process holding one file lock of each kind, for `dump --file-locks`:
 * a flock write lock on OUT.flock, a POSIX read lock on bytes 10-19 of
 * OUT.posix, an OFD write lock on bytes 0-4095 of OUT.ofd. Writes OUT.ready
 * with its pid once they are held, then sleeps.
 *
 * usage: lockcheck OUT
 *        lockcheck --probe OUT  (another process) prints, one per line, who
 *        holds each lock now: "flock held|free", "posix PID|free",
 *        "ofd held|free". */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int open_at(const char *out, const char *ext, int flags)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s.%s", out, ext);
	return open(path, flags | O_CLOEXEC, 0644);
}

static int probe(const char *out)
{
	int f = open_at(out, "flock", O_RDWR), p = open_at(out, "posix", O_RDWR),
	    o = open_at(out, "ofd", O_RDWR);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 12, .l_len = 1 };

	if (f < 0 || p < 0 || o < 0)
		return 1;
	printf("flock %s\n", flock(f, LOCK_EX | LOCK_NB) < 0 ? "held" : "free");
	if (fcntl(p, F_GETLK, &fl) < 0)
		return 1;
	if (fl.l_type == F_UNLCK)
		printf("posix free\n");
	else
		printf("posix %d %s\n", fl.l_pid, fl.l_type == F_RDLCK ? "read" : "write");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 1 };
	printf("ofd %s\n", fcntl(o, F_OFD_SETLK, &fl) < 0 ? "held" : "free");
	return 0;
}

int main(int argc, char **argv)
{
	struct flock fl;
	int f, p, o;
	FILE *r;
	char path[4200];

	if (argc == 3 && !strcmp(argv[1], "--probe"))
		return probe(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: lockcheck [--probe] OUT\n");
		return 2;
	}
	f = open_at(argv[1], "flock", O_RDWR | O_CREAT);
	p = open_at(argv[1], "posix", O_RDWR | O_CREAT);
	o = open_at(argv[1], "ofd", O_RDWR | O_CREAT);
	if (f < 0 || p < 0 || o < 0 || flock(f, LOCK_EX) < 0)
		return 1;
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10 };
	if (fcntl(p, F_SETLK, &fl) < 0)
		return 1;
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4096 };
	if (fcntl(o, F_OFD_SETLK, &fl) < 0)
		return 1;
	snprintf(path, sizeof(path), "%s.ready", argv[1]);
	r = fopen(path, "w");
	if (!r)
		return 1;
	fprintf(r, "%d\n", getpid());
	fclose(r);
	for (;;)
		pause();
}
