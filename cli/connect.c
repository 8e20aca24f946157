/* `ferry --connect PATH COMMAND ...` (or FERRY_SOCKET): the command runs
 * as a job of ferryd (service/ferryd.c) with this process's credentials,
 * working directory and stdio, and this process exits with its exit status
 * (128 + N for a job ended by signal N). SIGINT, SIGTERM and SIGHUP here
 * cancel the job, which ferry's commands answer as they answer the signal
 * themselves. Two commands exist only here: `jobs` lists the jobs, `cancel
 * ID` stops one. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fdpass.h"
#include "proto/rpc.pb-c.h"

#define PACKET_MAX 65536

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static int send_req(int sk, Ferry__Rpc__Request *q, const int *fds, size_t nfds)
{
	uint8_t buf[PACKET_MAX];
	size_t len = ferry__rpc__request__get_packed_size(q);

	if (len > sizeof(buf))
		return -EMSGSIZE;
	ferry__rpc__request__pack(q, buf);
	return fdpass_send(sk, buf, len, fds, nfds);
}

/* The next answer, or NULL (the service went away, or said nonsense). */
static Ferry__Rpc__Response *recv_resp(int sk)
{
	uint8_t buf[PACKET_MAX];
	int fds[FDPASS_MAX_FDS];
	size_t nfds;
	ssize_t n = fdpass_recv(sk, buf, sizeof(buf), fds, &nfds);

	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	return n > 0 ? ferry__rpc__response__unpack(NULL, (size_t)n, buf) : NULL;
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int sk;

	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "ferry: --connect %s: path too long\n", path);
		return -1;
	}
	strcpy(a.sun_path, path);
	sk = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sk < 0 || connect(sk, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "ferry: cannot reach ferryd at %s: %s\n", path, strerror(errno));
		if (sk >= 0)
			close(sk);
		return -1;
	}
	return sk;
}

static int print_error(const Ferry__Rpc__Response *r)
{
	fprintf(stderr, "ferry: ferryd: %s\n", r->msg ? r->msg : strerror(r->err));
	return EXIT_FAIL;
}

static int list(int sk)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;
	Ferry__Rpc__Response *r;
	int ret = EXIT_OK;

	q.type = FERRY__RPC__REQ_TYPE__LIST;
	if (send_req(sk, &q, NULL, 0) || !(r = recv_resp(sk))) {
		fprintf(stderr, "ferry: ferryd did not answer\n");
		return EXIT_FAIL;
	}
	if (r->type != FERRY__RPC__RESP_TYPE__JOBS) {
		ret = print_error(r);
	} else {
		printf("%-6s %-8s %-6s %-12s %s\n", "JOB", "PID", "UID", "STATE", "COMMAND");
		for (size_t i = 0; i < r->n_jobs; i++) {
			const Ferry__Rpc__Job *j = r->jobs[i];
			char st[32];

			if (j->running)
				snprintf(st, sizeof(st), "running");
			else if (j->cut_off)
				snprintf(st, sizeof(st), "cut off");
			else if (j->has_exit_status)
				snprintf(st, sizeof(st), "exit %d", j->exit_status);
			else
				snprintf(st, sizeof(st), "signal %d", j->signal);
			printf("%-6u %-8u %-6u %-12s %s\n", j->id, j->pid, j->uid, st, j->command);
		}
	}
	ferry__rpc__response__free_unpacked(r, NULL);
	return ret;
}

static int cancel(int sk, const char *id)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;
	Ferry__Rpc__Response *r;
	char *end;
	int ret = EXIT_OK;

	q.type = FERRY__RPC__REQ_TYPE__CANCEL;
	q.has_job = true;
	q.job = (uint32_t)strtoul(id, &end, 10);
	if (*end || !*id) {
		fprintf(stderr, "ferry: cancel takes a job number, not `%s`\n", id);
		return EXIT_USAGE;
	}
	if (send_req(sk, &q, NULL, 0) || !(r = recv_resp(sk))) {
		fprintf(stderr, "ferry: ferryd did not answer\n");
		return EXIT_FAIL;
	}
	if (r->type != FERRY__RPC__RESP_TYPE__CANCELLED)
		ret = print_error(r);
	ferry__rpc__response__free_unpacked(r, NULL);
	return ret;
}

static int run(int sk, int argc, char **argv)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;
	struct sigaction sa = { .sa_handler = on_signal };
	int fds[4] = { open(".", O_PATH | O_DIRECTORY | O_CLOEXEC), 0, 1, 2 };
	uint32_t job = 0;
	bool asked = false;
	int ret = -1;

	if (fds[0] < 0) {
		fprintf(stderr, "ferry: the working directory: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	q.type = FERRY__RPC__REQ_TYPE__RUN;
	q.n_argv = (size_t)argc;
	q.argv = argv;
	if (send_req(sk, &q, fds, 4)) {
		fprintf(stderr, "ferry: cannot send the request to ferryd: %s\n", strerror(errno));
		close(fds[0]);
		return EXIT_FAIL;
	}
	close(fds[0]);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (ret < 0) {
		struct pollfd p = { .fd = sk, .events = POLLIN };
		Ferry__Rpc__Response *r;

		if (interrupted && job && !asked) {
			Ferry__Rpc__Request c = FERRY__RPC__REQUEST__INIT;

			c.type = FERRY__RPC__REQ_TYPE__CANCEL;
			c.has_job = true;
			c.job = job;
			asked = send_req(sk, &c, NULL, 0) == 0;
		}
		if (poll(&p, 1, 200) <= 0)
			continue;
		r = recv_resp(sk);
		if (!r) {
			fprintf(stderr, "ferry: ferryd went away%s\n", job ?
				"; the job was told to stop (SIGTERM)" : "");
			return EXIT_FAIL;
		}
		if (r->type == FERRY__RPC__RESP_TYPE__STARTED)
			job = r->job;
		else if (r->type == FERRY__RPC__RESP_TYPE__DONE)
			ret = r->has_signal && r->signal ? 128 + r->signal : r->exit_status;
		else if (r->type == FERRY__RPC__RESP_TYPE__ERROR)
			ret = print_error(r);
		ferry__rpc__response__free_unpacked(r, NULL);
	}
	return ret;
}

int cli_connect(const char *path, int argc, char **argv)
{
	int sk, ret;

	if (argc < 1) {
		fprintf(stderr, "ferry: --connect needs a command\n");
		return EXIT_USAGE;
	}
	sk = connect_to(path);
	if (sk < 0)
		return EXIT_FAIL;
	if (!strcmp(argv[0], "jobs"))
		ret = list(sk);
	else if (!strcmp(argv[0], "cancel"))
		ret = argc == 2 ? cancel(sk, argv[1]) : (fprintf(stderr, "ferry: cancel ID\n"),
							 EXIT_USAGE);
	else
		ret = run(sk, argc, argv);
	close(sk);
	return ret;
}
