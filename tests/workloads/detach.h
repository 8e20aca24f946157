/* For workloads a test starts as $(workload ...): the launcher prints the
 * PID of the process that goes on and exits at once; that process leads a
 * session of its own, with nothing of the launcher's stdio (so that the
 * command substitution sees end of file). */
#ifndef FERRY_TESTS_DETACH_H
#define FERRY_TESTS_DETACH_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void detach(void)
{
	pid_t r = fork();

	if (r != 0) {
		printf("%d\n", r);
		exit(r < 0);
	}
	setsid();
	if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout) ||
	    !freopen("/dev/null", "w", stderr))
		_exit(1);
}

#endif
