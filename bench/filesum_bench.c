/* Bench tool: what the content identity of a set of files costs (the
 * build-id and XXH3-128 that a dump records for each file behind the
 * process, proc/filesum.c). usage: filesum_bench FILE...
 * Prints "files=N bytes=N ns=N". */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc/filesum.h"

int main(int argc, char **argv)
{
	uint64_t bytes = 0, t0 = now_ns();
	uint8_t sum[FILESUM_LEN], bid[FILESUM_BUILD_ID_MAX];
	struct ferr err;

	for (int i = 1; i < argc; i++) {
		cleanup_close int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
		struct stat st;
		size_t bid_len;

		if (fd < 0 || fstat(fd, &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (filesum_build_id(fd, (uint64_t)st.st_size, bid, &bid_len, &err) ||
		    filesum_hash(fd, (uint64_t)st.st_size, argv[i], sum, &err)) {
			fprintf(stderr, "filesum_bench: %s\n", err.msg);
			return 1;
		}
		bytes += (uint64_t)st.st_size;
	}
	printf("files=%d bytes=%llu ns=%llu\n", argc - 1, (unsigned long long)bytes,
	       (unsigned long long)(now_ns() - t0));
	return 0;
}
