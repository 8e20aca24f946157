/* Dump a process through ferryd with libferry:
 *
 *   cc examples/dump_client.c $(pkg-config --cflags --libs ferry) -o dump_client
 *   ./dump_client /run/ferry/ferryd.sock PID DIR
 *
 * The process is dumped into DIR and left running; the program prints what
 * happened and exits with ferry's exit status. */
#include <stdio.h>
#include <stdlib.h>

#include <ferry/ferry.h>

int main(int argc, char **argv)
{
	ferry_client *c;
	int status, ret;

	if (argc != 4) {
		fprintf(stderr, "usage: %s SOCKET PID DIR\n", argv[0]);
		return 2;
	}
	ret = ferry_connect(argv[1], &c);
	if (ret) {
		fprintf(stderr, "cannot reach ferryd at %s: error %d\n", argv[1], -ret);
		return 1;
	}
	ret = ferry_dump(c, atoi(argv[2]), argv[3], FERRY_LEAVE_RUNNING, 2, &status);
	if (ret) {
		fprintf(stderr, "dump failed: %s\n", ferry_error(c));
		ferry_close(c);
		return 1;
	}
	printf("dumped process %s into %s: ferry exited %d\n", argv[2], argv[3], status);
	ferry_close(c);
	return status;
}
