/* A job's worker, forked by ferryd: it takes the caller's credentials,
 * working directory and stdio, then runs ferry. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "service/ferryd.h"

/* The worker: the caller's credentials, cwd and stdio, then ferry. */
void ferryd_worker(uid_t uid, gid_t gid, pid_t caller, const int *fds, int ev_wr, int keep,
		   const char *ferry_bin, char **argv, size_t argc)
{
	gid_t groups[256];
	int ng = uid ? ferryd_caller_groups(caller, groups, 256) : -1;
	char **args = calloc(argc + 2, sizeof(*args));

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(127); /* ferryd is gone already */
	setsid();
	if (uid && (ng < 0 || setgroups((size_t)ng, groups) < 0 ||
		       setresgid(gid, gid, gid) < 0 ||
		       setresuid(uid, uid, uid) < 0)) {
		dprintf(fds[3], "ferryd: cannot take the caller's credentials: %s\n", strerror(errno));
		_exit(126);
	}
	/* Out of the way of the numbers they and stdio are given below. */
	if (ev_wr >= 0)
		ev_wr = fcntl(ev_wr, F_DUPFD, 100);
	if (keep >= 0)
		keep = fcntl(keep, F_DUPFD, 100);
	if (fchdir(fds[0]) < 0 || dup2(fds[1], 0) < 0 || dup2(fds[2], 1) < 0 ||
	    dup2(fds[3], 2) < 0 || !args) {
		dprintf(fds[3], "ferryd: cannot set the job up: %s\n", strerror(errno));
		_exit(126);
	}
	/* Events go to fd 3 (FERRY_EVENT_FD), trackers to ferryd on fd 4
	 * (FERRY_KEEPER_FD), everything else of ferryd's goes. */
	if (ev_wr >= 0 && dup2(ev_wr, 3) == 3)
		setenv("FERRY_EVENT_FD", "3", 1);
	else
		unsetenv("FERRY_EVENT_FD");
	if (keep >= 0 && dup2(keep, 4) == 4)
		setenv("FERRY_KEEPER_FD", "4", 1);
	else
		unsetenv("FERRY_KEEPER_FD");
	for (int fd = 5; fd < 1024; fd++)
		close(fd);
	if (ev_wr < 0)
		close(3);
	if (keep < 0)
		close(4);
	args[0] = (char *)"ferry";
	for (size_t i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	unsetenv("FERRY_SOCKET");
	signal(SIGPIPE, SIG_DFL);
	execv(ferry_bin, args);
	fprintf(stderr, "ferryd: cannot run %s: %s\n", ferry_bin, strerror(errno));
	_exit(127);
}
