/* The floor under any dump to one tmpfs file: write BYTES from a 1 MiB
 * buffer that stays in cache (no target is read at all) with THREADS
 * threads, each pwrite()ing its own 1 MiB chunks of the one file. Prints the
 * seconds it took.
 * usage: write_floor FILE BYTES THREADS */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static int out, nthreads;
static unsigned long long total;

static void *writer(void *arg)
{
	long id = (long)arg;
	char *buf = malloc(CHUNK);

	if (!buf)
		return (void *)1;
	memset(buf, (int)id + 1, CHUNK);
	for (unsigned long long off = (unsigned long long)id * CHUNK; off < total;
	     off += (unsigned long long)nthreads * CHUNK)
		if (pwrite(out, buf, CHUNK, (off_t)off) != CHUNK)
			return free(buf), (void *)1;
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[16];
	struct timespec a, b;
	void *r;
	int bad = 0;

	if (argc != 4)
		return 2;
	total = strtoull(argv[2], NULL, 10) / CHUNK * CHUNK;
	nthreads = atoi(argv[3]);
	if (nthreads < 1 || nthreads > 16)
		return 2;
	out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0)
		return perror(argv[1]), 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, writer, (void *)i);
	for (int i = 0; i < nthreads; i++)
		bad |= pthread_join(th[i], &r) || r;
	clock_gettime(CLOCK_MONOTONIC, &b);
	close(out);
	if (bad)
		return fprintf(stderr, "write_floor: write failed\n"), 1;
	printf("%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
	return 0;
}
