/* libferry: the C client of ferryd, ferry's checkpoint and migration
 * service (docs/RPC.md). A program drives ferry through it as a person does
 * with `ferry --connect`: each call runs one ferry command as a job of the
 * service, with the caller's credentials (the service runs the job as the
 * calling user), and gives back the command's exit status.
 *
 *   ferry_client *c;
 *   int status;
 *   if (ferry_connect(NULL, &c) == 0 && ferry_dump(c, pid, "/var/lib/img", 0, &status) == 0)
 *           printf("dump: exit %d\n", status);
 *
 * Every function returns 0 or a negative errno value; ferry_error() says
 * what went wrong in words. A client is one connection and runs one job at
 * a time; use one client per thread. Build with
 * `cc prog.c $(pkg-config --cflags --libs ferry)`. */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_API_VERSION 1

typedef struct ferry_client ferry_client;

/* Connect to the ferryd at socket_path (NULL: $FERRY_SOCKET, else
 * /run/ferry/ferryd.sock). */
int ferry_connect(const char *socket_path, ferry_client **out);
void ferry_close(ferry_client *c);
/* The last failure on c in words (never NULL). */
const char *ferry_error(const ferry_client *c);

/* ---- synchronous ---- */

/* Run `ferry argv[0] argv[1] ...` (argv ends with NULL) as a job: its
 * stdin, stdout and stderr are the given fds (-1: /dev/null), its working
 * directory the caller's. *status gets the command's exit status, or 128 +
 * N for a job ended by signal N. */
int ferry_run(ferry_client *c, const char *const argv[], int in_fd, int out_fd, int err_fd,
	      int *status);

#define FERRY_LEAVE_RUNNING 1u   /* dump -R: the process runs on */
#define FERRY_TREE_NO 2u         /* --tree=no: the process only */

/* `ferry dump -t pid -D dir`, its output to stderr_fd (-1: discarded); sent
 * as a typed request (ferry_start_dump). */
int ferry_dump(ferry_client *c, int pid, const char *dir, unsigned flags, int err_fd,
	       int *status);

/* ---- asynchronous ---- */

enum ferry_event_type {
	FERRY_EV_STARTED = 1,    /* the job runs: job, pid */
	FERRY_EV_DONE,           /* it ended: exit_status or signal */
	FERRY_EV_ERROR,          /* the service refused or failed it: err, msg */
	FERRY_EV_PROGRESS,       /* with FERRY_EVENTS: one of the command's events, a JSON
				    object in json ("round", "bytes", "handover", "failed";
				    docs/RPC.md) */
};

struct ferry_event {
	enum ferry_event_type type;
	unsigned job;
	int pid;
	int exit_status;         /* FERRY_EV_DONE: -1 if ended by a signal */
	int signal;
	int err;                 /* FERRY_EV_ERROR: an errno value */
	const char *msg;         /* valid during the callback only */
	const char *json;        /* FERRY_EV_PROGRESS: valid during the callback only */
	/* FERRY_EV_PROGRESS, typed: the JSON object's fields (0 or NULL where it
	 * has none; strings valid during the callback only). kind is NULL from
	 * a ferryd that sends no typed events. */
	const char *kind;        /* "round", "bytes", "handover", "failed" */
	unsigned round;          /* round */
	unsigned long long pages;
	double mib, seconds, dirty_mbs, copy_mbs;
	double predicted_ms;     /* the freeze the next round predicts */
	const char *round_name;  /* bytes: the round's name on the page server */
	unsigned long long bytes;
	int done;
	int remote_pid;          /* handover */
	double downtime_ms, handover_ms;
	int errnum;              /* failed: an errno value, */
	const char *error;       /*   its name ("ESRCH"), */
	const char *message;     /*   and the command's message */
};

#define FERRY_EVENTS 1u          /* ferry_start: deliver FERRY_EV_PROGRESS events */

typedef void (*ferry_event_cb)(void *arg, const struct ferry_event *ev);

/* Start a job as ferry_run does; events come through cb from
 * ferry_dispatch(), which reads one answer when ferry_fd(c) is readable
 * (poll it) or blocks for one. ferry_dispatch returns 1 once the job has
 * ended (DONE or ERROR), 0 while it runs. */
int ferry_start(ferry_client *c, const char *const argv[], int in_fd, int out_fd, int err_fd,
		unsigned flags, ferry_event_cb cb, void *arg);
int ferry_fd(const ferry_client *c);
int ferry_dispatch(ferry_client *c);
/* Follow a job started elsewhere (the caller's; root: any): FERRY_EV_STARTED,
 * then its events (FERRY_EV_PROGRESS, whatever its starter asked) and its
 * FERRY_EV_DONE, through cb from ferry_dispatch() as for ferry_start; a job
 * that has ended gives FERRY_EV_DONE at once. Hanging up does not cancel it. */
int ferry_subscribe(ferry_client *c, unsigned job, ferry_event_cb cb, void *arg);

/* A dump, pre-dump or iterative dump as a typed request (proto/rpc.proto
 * Dump: each field the option it names), started as ferry_start starts a
 * job; its stdout and stdin are /dev/null, its stderr err_fd. */
#define FERRY_PRE_DUMP 4u        /* `pre-dump` */
#define FERRY_ITERATIVE 8u       /* `dump --iterative` */
struct ferry_dump_args {
	int pid;                 /* -t */
	const char *images_dir;  /* -D */
	unsigned flags;          /* FERRY_LEAVE_RUNNING, FERRY_TREE_NO, FERRY_PRE_DUMP,
				    FERRY_ITERATIVE */
	const char *prev_images_dir; /* --prev-images-dir, or NULL */
	const char *track;       /* --track, or NULL (auto) */
	unsigned downtime_limit_ms;  /* --downtime-limit, 0: ferry's default */
	unsigned max_rounds;     /* --max-rounds, 0: ferry's default */
};
int ferry_start_dump(ferry_client *c, const struct ferry_dump_args *a, int err_fd,
		     unsigned flags, ferry_event_cb cb, void *arg);
/* Ask the service to stop a job (as SIGTERM stops the command: a dump or
 * migration lets its target go untouched). Usable on another client. */
int ferry_cancel(ferry_client *c, unsigned job);

/* ---- jobs ---- */

struct ferry_job_info {
	unsigned id, pid, uid;
	char *command;
	long long started_ms;    /* since the epoch */
	int running;
	int exit_status;         /* -1 while running, if ended by a signal, or cut off */
	int signal;
	int cut_off;             /* a ferryd before this one died while it ran */
};

/* The caller's jobs (root: everyone's). Free with ferry_jobs_free. */
int ferry_jobs(ferry_client *c, struct ferry_job_info **out, size_t *n);
void ferry_jobs_free(struct ferry_job_info *jobs, size_t n);
/* One job of the caller's (root: any): -ESRCH if none. Free with
 * ferry_jobs_free(*out, 1). */
int ferry_job_status(ferry_client *c, unsigned job, struct ferry_job_info **out);

/* The dirty trackers ferryd keeps between pre-dump rounds (the caller's;
 * root: all): whose target, whose, since when. Free with free(). */
struct ferry_tracker_info {
	int pid;
	unsigned uid;
	long long age_ms;
};
int ferry_trackers(ferry_client *c, struct ferry_tracker_info **out, size_t *n);

#ifdef __cplusplus
}
#endif

#endif
