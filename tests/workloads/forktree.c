/* A parent that fills MB MiB of private memory and forks N children that
 * never write it, so the tree shares it copy-on-write: for measuring what a
 * tree costs in memory before a dump and after a restore (bench/b_tree.sh).
 *
 * usage: forktree MB N. Prints the parent's pid (a session leader), then the
 * launcher exits; everything sleeps for ever. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "detach.h"

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
	int n = argc > 2 ? atoi(argv[2]) : 3;
	char *p;

	detach();
	p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < mb << 20; i += 4096)
		p[i] = (char)((i >> 12) | 1);
	for (int k = 0; k < n; k++)
		if (fork() == 0)
			for (;;)
				pause();
	for (;;)
		pause();
}
