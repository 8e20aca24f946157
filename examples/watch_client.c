/* Run a ferry command through ferryd and watch it, with libferry's
 * asynchronous API:
 *
 *   cc examples/watch_client.c $(pkg-config --cflags --libs ferry) -o watch_client
 *   ./watch_client /run/ferry/ferryd.sock migrate -t PID --to HOST:PORT --auth-key KEY
 *
 * Each event of the job is printed as it comes: "started JOB PID", one
 * "event {JSON}" line per round, bytes sent, hand-over... (rounds,
 * hand-over and failure again from the typed fields), and "done
 * STATUS" (or "error ..."); the command's own output goes to this program's
 * stdout and stderr. Exits with the command's exit status. */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

static int status = 1;

static void on_event(void *arg, const struct ferry_event *ev)
{
	(void)arg;
	switch (ev->type) {
	case FERRY_EV_STARTED:
		printf("started %u %d\n", ev->job, ev->pid);
		break;
	case FERRY_EV_PROGRESS:
		printf("event %s\n", ev->json);
		/* The same, as fields. */
		if (ev->kind && !strcmp(ev->kind, "round"))
			printf("round %u: %llu pages, predicted freeze %.1f ms\n", ev->round,
			       ev->pages, ev->predicted_ms);
		else if (ev->kind && !strcmp(ev->kind, "handover"))
			printf("handover: now process %d, downtime %.1f ms\n", ev->remote_pid,
			       ev->downtime_ms);
		else if (ev->kind && !strcmp(ev->kind, "failed"))
			printf("failed: %s (%s)\n", ev->message ? ev->message : "",
			       ev->error ? ev->error : "");
		break;
	case FERRY_EV_DONE:
		status = ev->signal ? 128 + ev->signal : ev->exit_status;
		printf("done %d\n", status);
		break;
	case FERRY_EV_ERROR:
		printf("error %d %s\n", ev->err, ev->msg ? ev->msg : "");
		break;
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	ferry_client *c;
	int ret;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SOCKET COMMAND [OPTIONS...]\n", argv[0]);
		return 2;
	}
	if (ferry_connect(argv[1], &c)) {
		fprintf(stderr, "cannot reach ferryd at %s\n", argv[1]);
		return 1;
	}
	ret = ferry_start(c, (const char *const *)argv + 2, 0, 1, 2, FERRY_EVENTS, on_event, NULL);
	while (!ret) {
		struct pollfd p = { .fd = ferry_fd(c), .events = POLLIN };

		/* A program would poll this fd with its others. */
		if (poll(&p, 1, -1) > 0)
			ret = ferry_dispatch(c);
	}
	if (ret < 0)
		fprintf(stderr, "%s\n", ferry_error(c));
	ferry_close(c);
	return ret < 0 ? 1 : status;
}
