/* ferryd's socket, and what it learns of a caller on it. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "service/ferryd.h"

/* The socket: systemd's (socket activation), or one made at path. */
int ferryd_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	const char *pid = getenv("LISTEN_PID"), *nfd = getenv("LISTEN_FDS");
	char dir[sizeof(a.sun_path)];
	struct stat st;
	int fd;

	if (pid && nfd && atoi(pid) == getpid() && atoi(nfd) == 1) {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		fcntl(3, F_SETFD, FD_CLOEXEC);
		return 3;
	}
	if (strlen(path) >= sizeof(a.sun_path)) {
		ferryd_say("socket path too long: %s", path);
		return -1;
	}
	strcpy(a.sun_path, path);
	snprintf(dir, sizeof(dir), "%s", path);
	mkdir(dirname(dir), 0755);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A socket left by a ferryd that died is replaced; a live one is not. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			ferryd_say("another ferryd listens on %s", path);
			close(fd);
			return -1;
		}
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || chmod(path, 0666) < 0 ||
	    listen(fd, 64) < 0) {
		ferryd_say("listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The caller's supplementary groups, from its /proc status: the job gets
 * exactly the caller's credentials. */
int ferryd_caller_groups(pid_t pid, gid_t *g, size_t max)
{
	char path[64], line[4096];
	FILE *f;
	int n = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + 7, *end;

		if (strncmp(line, "Groups:", 7))
			continue;
		n = 0;
		while ((size_t)n < max) {
			unsigned long v = strtoul(p, &end, 10);

			if (end == p)
				break;
			g[n++] = (gid_t)v;
			p = end;
		}
	}
	fclose(f);
	return n;
}
