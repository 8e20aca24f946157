/* libFuzzer target for the page server's side of the migration stream: an
 * input is everything an authenticated client sends (its HELLO, FILE
 * frames with their bytes, ROUND frames, ...). The server must answer every
 * input with success or a clean error, write nothing outside its DIR, and
 * never allocate what a length field asks for before checking it. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/pageserver.h"

#define STREAM_MAX (60u << 10)   /* fits a socketpair's buffer: no writer thread */

static char root[64], dir[96];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	if (strcmp(path, root))
		remove(path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_opts o = { .dir = dir, .max_file = 1 << 20 };
	struct net_conn c = NET_CONN_INIT;
	struct ps_result res;
	struct ferr err;
	int sv[2];
	DIR *d;
	struct dirent *e;

	if (!root[0]) {
		snprintf(root, sizeof(root), "/tmp/ferry-fuzz-stream-%d", (int)getpid());
		mkdir(root, 0700);
		snprintf(dir, sizeof(dir), "%s/dir", root);
	}
	if (size > STREAM_MAX || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	mkdir(dir, 0700);
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	ferr_clear(&err);
	memset(&res, 0, sizeof(res));
	c.fd = sv[0];
	(void)!ps_serve(&c, &o, &res, &err);
	close(sv[0]);
	close(sv[1]);
	/* Nothing may appear next to DIR, only in it. */
	d = opendir(root);
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "dir"))
			abort();
	if (d)
		closedir(d);
	nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
