/* Test helper: hold a process traced (PTRACE_SEIZE, no stop) until stdin
 * closes or SECONDS pass, so a test can check that ferry refuses a target
 * that already has a tracer. Prints "ready" once attached.
 * usage: holdtrace PID SECONDS */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t pid;

	if (argc != 3)
		return 2;
	pid = atoi(argv[1]);
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) < 0) {
		perror("PTRACE_SEIZE");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	sleep((unsigned)atoi(argv[2]));
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	return 0;
}
