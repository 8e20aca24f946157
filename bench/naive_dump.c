/* The naive baseline ferry is measured against: stop the process with
 * SIGSTOP, then process_vm_readv every readable mapping in 1 MiB chunks and
 * write() each chunk to one file. No page selection, no batching.
 * usage: naive_dump PID OUTFILE */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (1u << 20)

int main(int argc, char **argv)
{
	char path[64], line[4096];
	static char buf[CHUNK];
	uint64_t total = 0;
	pid_t pid;
	FILE *maps;
	int out;

	if (argc != 3)
		return 2;
	pid = atoi(argv[1]);
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0 || kill(pid, SIGSTOP) < 0 || !(maps = fopen(path, "r"))) {
		perror("naive_dump");
		return 1;
	}
	while (fgets(line, sizeof(line), maps)) {
		uint64_t s, e;
		char perms[5];

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s", &s, &e, perms) != 3 || perms[0] != 'r' ||
		    strstr(line, "[vvar") || strstr(line, "[vsyscall]"))
			continue;
		for (uint64_t a = s; a < e; a += CHUNK) {
			size_t len = e - a < CHUNK ? e - a : CHUNK;
			struct iovec l = { buf, len }, r = { (void *)(uintptr_t)a, len };
			ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

			if (n > 0 && write(out, buf, (size_t)n) != n) {
				perror("write");
				return 1;
			}
			total += n > 0 ? (uint64_t)n : 0;
		}
	}
	kill(pid, SIGCONT);
	fsync(out);
	close(out);
	printf("%" PRIu64 "\n", total);
	return 0;
}
