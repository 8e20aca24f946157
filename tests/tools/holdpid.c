/* Test fixture: a process that takes a given PID (clone3 with set_tid, as
 * root) and sleeps, standing for an unrelated process that happens to hold
 * a PID a restore wants. Prints nothing; exits 1 if the PID is not free.
 *
 * usage: holdpid PID */
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct clone_args ca;
	pid_t want, pid;

	if (argc != 2)
		return 2;
	want = (pid_t)atoi(argv[1]);
	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uintptr_t)&want;
	ca.set_tid_size = 1;
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(0);
		close(1);
		close(2);
		for (;;)
			pause();
	}
	return 0;
}
