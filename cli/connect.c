/* `ferry --connect PATH COMMAND ...` (or FERRY_SOCKET): the command runs
 * as a job of ferryd (service/ferryd.c) with this process's credentials,
 * working directory and stdio, and this process exits with its exit status
 * (128 + N for a job ended by signal N). SIGINT, SIGTERM and SIGHUP here
 * cancel the job, which ferry's commands answer as they answer the signal
 * themselves. Four commands exist only here: `jobs` lists the jobs,
 * `status ID` shows one, `cancel ID` stops one, `follow ID` prints another
 * caller's job's events and exits with its status. The protocol is libferry's (lib/ferry.c), linked in. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "include/ferry/ferry.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

/* A job number for command cmd, in *job; false (said) if id is none. */
static bool job_number(const char *cmd, const char *id, unsigned *job)
{
	char *end;
	unsigned long v = strtoul(id, &end, 10);

	if (*end || !v || v > UINT32_MAX) {
		fprintf(stderr, "ferry: %s takes a job number, not `%s`\n", cmd, id);
		return false;
	}
	*job = (unsigned)v;
	return true;
}

/* After the jobs: the trackers ferryd keeps, if any. */
static int list_trackers(ferry_client *c)
{
	struct ferry_tracker_info *t;
	size_t n;

	if (ferry_trackers(c, &t, &n)) {
		fprintf(stderr, "ferry: %s\n", ferry_error(c));
		return EXIT_FAIL;
	}
	if (n)
		printf("\n%-8s %-6s %s\n", "TRACKER", "UID", "KEPT FOR");
	for (size_t i = 0; i < n; i++)
		printf("%-8d %-6u %.1f s\n", t[i].pid, t[i].uid, t[i].age_ms / 1000.0);
	free(t);
	return EXIT_OK;
}

/* jobs, or status ID (one job): a line each under a header. */
static int list(ferry_client *c, const char *id)
{
	struct ferry_job_info *jobs;
	unsigned job = 0;
	size_t n = 1;
	int ret;

	if (id && !job_number("status", id, &job))
		return EXIT_USAGE;
	ret = id ? ferry_job_status(c, job, &jobs) : ferry_jobs(c, &jobs, &n);
	if (ret) {
		fprintf(stderr, "ferry: %s\n", ferry_error(c));
		return EXIT_FAIL;
	}
	printf("%-6s %-8s %-6s %-12s %s\n", "JOB", "PID", "UID", "STATE", "COMMAND");
	for (size_t i = 0; i < n; i++) {
		const struct ferry_job_info *j = &jobs[i];
		char st[32];

		if (j->running)
			snprintf(st, sizeof(st), "running");
		else if (j->cut_off)
			snprintf(st, sizeof(st), "cut off");
		else if (j->signal)
			snprintf(st, sizeof(st), "signal %d", j->signal);
		else
			snprintf(st, sizeof(st), "exit %d", j->exit_status);
		printf("%-6u %-8u %-6u %-12s %s\n", j->id, j->pid, j->uid, st,
		       j->command ? j->command : "?");
	}
	ferry_jobs_free(jobs, n);
	return id ? EXIT_OK : list_trackers(c);
}

static int cancel(ferry_client *c, const char *id)
{
	char *end;
	unsigned long job = strtoul(id, &end, 10);

	if (*end || !*id) {
		fprintf(stderr, "ferry: cancel takes a job number, not `%s`\n", id);
		return EXIT_USAGE;
	}
	if (ferry_cancel(c, (unsigned)job)) {
		fprintf(stderr, "ferry: %s\n", ferry_error(c));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

struct run {
	unsigned job;
	int status;              /* -1 until the job has ended */
	bool print;              /* follow: its events to stdout */
};

static void on_event(void *arg, const struct ferry_event *ev)
{
	struct run *r = arg;

	if (ev->type == FERRY_EV_PROGRESS && r->print) {
		printf("%s\n", ev->json);
		fflush(stdout);
	} else if (ev->type == FERRY_EV_STARTED) {
		r->job = ev->job;
	} else if (ev->type == FERRY_EV_DONE) {
		r->status = ev->signal ? 128 + ev->signal : ev->exit_status;
	} else if (ev->type == FERRY_EV_ERROR) {
		fprintf(stderr, "ferry: ferryd: %s\n", ev->msg ? ev->msg : strerror(ev->err));
		r->status = EXIT_FAIL;
	}
}

static int run(ferry_client *c, const char *path, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct run r = { .status = -1 };
	bool asked = false;
	int ret;

	ret = ferry_start(c, (const char *const *)argv, 0, 1, 2, 0, on_event, &r);
	if (ret) {
		fprintf(stderr, "ferry: cannot send the request to ferryd: %s\n", ferry_error(c));
		return EXIT_FAIL;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (!ret) {
		struct pollfd p = { .fd = ferry_fd(c), .events = POLLIN };

		/* Cancelled on a connection of its own: this one carries the
		 * job's answers. */
		if (interrupted && r.job && !asked) {
			ferry_client *k;

			asked = true;
			if (ferry_connect(path, &k) == 0) {
				(void)ferry_cancel(k, r.job);
				ferry_close(k);
			}
		}
		if (poll(&p, 1, 200) > 0)
			ret = ferry_dispatch(c);
	}
	if (ret < 0) {
		fprintf(stderr, "ferry: ferryd went away%s\n", r.job ?
			"; the job was told to stop (SIGTERM)" : "");
		return EXIT_FAIL;
	}
	return r.status;
}

/* follow ID: another caller's job (or one's own from elsewhere): its
 * events as JSON lines on stdout, then its exit status as this process's. */
static int follow(ferry_client *c, const char *id)
{
	struct run r = { .status = -1, .print = true };
	unsigned job;
	int ret;

	if (!job_number("follow", id, &job))
		return EXIT_USAGE;
	ret = ferry_subscribe(c, job, on_event, &r);
	while (!ret)
		ret = ferry_dispatch(c);
	if (ret < 0) {
		fprintf(stderr, "ferry: %s\n", ferry_error(c));
		return EXIT_FAIL;
	}
	return r.status < 0 ? EXIT_FAIL : r.status;
}

int cli_connect(const char *path, int argc, char **argv)
{
	ferry_client *c;
	int ret;

	if (argc < 1) {
		fprintf(stderr, "ferry: --connect needs a command\n");
		return EXIT_USAGE;
	}
	ret = ferry_connect(path, &c);
	if (ret) {
		fprintf(stderr, "ferry: cannot reach ferryd at %s: %s\n", path, strerror(-ret));
		return EXIT_FAIL;
	}
	if (!strcmp(argv[0], "jobs"))
		ret = list(c, NULL);
	else if (!strcmp(argv[0], "status"))
		ret = argc == 2 ? list(c, argv[1]) : (fprintf(stderr, "ferry: status ID\n"),
						      EXIT_USAGE);
	else if (!strcmp(argv[0], "cancel"))
		ret = argc == 2 ? cancel(c, argv[1]) : (fprintf(stderr, "ferry: cancel ID\n"),
							EXIT_USAGE);
	else if (!strcmp(argv[0], "follow"))
		ret = argc == 2 ? follow(c, argv[1]) : (fprintf(stderr, "ferry: follow ID\n"),
							EXIT_USAGE);
	else
		ret = run(c, path, argv);
	ferry_close(c);
	return ret;
}
