/* Test tool: run a command as a child subreaper, so that processes it lets
 * go (a restore with -d) are reaped when they end and free their PIDs; this
 * machine's PID 1 does not reap. Exits with the command's status once every
 * descendant is gone. usage: subreaper CMD [ARGS...] */
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int status, rc = 127;
	pid_t cmd, p;

	if (argc < 2) {
		fprintf(stderr, "usage: subreaper CMD [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("PR_SET_CHILD_SUBREAPER");
		return 1;
	}
	cmd = fork();
	if (cmd < 0)
		return perror("fork"), 1;
	if (cmd == 0) {
		execvp(argv[1], argv + 1);
		perror(argv[1]);
		_exit(127);
	}
	while ((p = wait(&status)) > 0 || errno == EINTR) {
		if (p == cmd)
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	return rc;
}
