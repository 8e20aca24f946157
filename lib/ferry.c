/* libferry (include/ferry/ferry.h): ferryd's RPC (proto/rpc.proto,
 * docs/RPC.md) from a program. Only the header's functions are exported
 * (built with -fvisibility=hidden); the protobuf code and common/fdpass.c
 * are linked in privately. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "include/ferry/ferry.h"
#include "proto/rpc.pb-c.h"

#define API __attribute__((visibility("default")))
#define PACKET_MAX 65536

struct ferry_client {
	int sk;
	char err[512];
	ferry_event_cb cb;
	void *arg;
	unsigned job;
};

static int fail(ferry_client *c, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ferry_client *c, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -e;
}

API int ferry_connect(const char *path, ferry_client **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	ferry_client *c;

	*out = NULL;
	if (!path)
		path = getenv("FERRY_SOCKET");
	if (!path || !*path)
		path = "/run/ferry/ferryd.sock";
	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	strcpy(a.sun_path, path);
	c->sk = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sk < 0 || connect(c->sk, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;

		if (c->sk >= 0)
			close(c->sk);
		free(c);
		return -e;
	}
	snprintf(c->err, sizeof(c->err), "no error");
	*out = c;
	return 0;
}

API void ferry_close(ferry_client *c)
{
	if (!c)
		return;
	close(c->sk);
	free(c);
}

API const char *ferry_error(const ferry_client *c)
{
	return c ? c->err : "no client";
}

API int ferry_fd(const ferry_client *c)
{
	return c->sk;
}

static int send_req(ferry_client *c, Ferry__Rpc__Request *q, const int *fds, size_t nfds)
{
	uint8_t buf[PACKET_MAX];
	size_t len = ferry__rpc__request__get_packed_size(q);
	int ret;

	if (len > sizeof(buf))
		return fail(c, EMSGSIZE, "request larger than 64 KiB");
	ferry__rpc__request__pack(q, buf);
	ret = fdpass_send(c->sk, buf, len, fds, nfds);
	return ret ? fail(c, -ret, "send to ferryd: %s", strerror(-ret)) : 0;
}

static int recv_resp(ferry_client *c, Ferry__Rpc__Response **r)
{
	uint8_t buf[PACKET_MAX];
	int fds[FDPASS_MAX_FDS];
	size_t nfds;
	ssize_t n = fdpass_recv(c->sk, buf, sizeof(buf), fds, &nfds);

	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (n <= 0)
		return fail(c, n ? (int)-n : ECONNRESET, "ferryd went away");
	*r = ferry__rpc__response__unpack(NULL, (size_t)n, buf);
	return *r ? 0 : fail(c, EBADMSG, "ferryd's answer cannot be read");
}

/* A job's request (RUN or START) with the caller's cwd and the stdio given. */
static int start_job(ferry_client *c, Ferry__Rpc__Request *q, int in_fd, int out_fd, int err_fd,
		     unsigned flags, ferry_event_cb cb, void *arg)
{
	int null = -1, fds[4];
	int ret;

	if (in_fd < 0 || out_fd < 0 || err_fd < 0)
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
	fds[0] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	fds[1] = in_fd >= 0 ? in_fd : null;
	fds[2] = out_fd >= 0 ? out_fd : null;
	fds[3] = err_fd >= 0 ? err_fd : null;
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || fds[3] < 0) {
		ret = fail(c, errno ? errno : EBADF, "the working directory or /dev/null");
	} else {
		q->has_events = true;
		q->events = (flags & FERRY_EVENTS) != 0;
		c->cb = cb;
		c->arg = arg;
		c->job = 0;
		ret = send_req(c, q, fds, 4);
	}
	if (fds[0] >= 0)
		close(fds[0]);
	if (null >= 0)
		close(null);
	return ret;
}

API int ferry_start(ferry_client *c, const char *const argv[], int in_fd, int out_fd, int err_fd,
		    unsigned flags, ferry_event_cb cb, void *arg)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;
	size_t n = 0;

	while (argv[n])
		n++;
	if (!n)
		return fail(c, EINVAL, "no command");
	q.type = FERRY__RPC__REQ_TYPE__RUN;
	q.n_argv = n;
	q.argv = (char **)argv;
	return start_job(c, &q, in_fd, out_fd, err_fd, flags, cb, arg);
}

API int ferry_start_dump(ferry_client *c, const struct ferry_dump_args *a, int err_fd,
			 unsigned flags, ferry_event_cb cb, void *arg)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;
	Ferry__Rpc__Command cmd = FERRY__RPC__COMMAND__INIT;
	Ferry__Rpc__Dump d = FERRY__RPC__DUMP__INIT;

	if (!a || a->pid <= 0 || !a->images_dir)
		return fail(c, EINVAL, "a dump needs a pid and an images directory");
	d.pid = (uint32_t)a->pid;
	d.images_dir = (char *)a->images_dir;
	d.has_leave_running = d.leave_running = (a->flags & FERRY_LEAVE_RUNNING) != 0;
	d.has_no_tree = d.no_tree = (a->flags & FERRY_TREE_NO) != 0;
	d.has_pre_dump = d.pre_dump = (a->flags & FERRY_PRE_DUMP) != 0;
	d.has_iterative = d.iterative = (a->flags & FERRY_ITERATIVE) != 0;
	d.prev_images_dir = (char *)a->prev_images_dir;
	d.track = (char *)a->track;
	d.has_downtime_limit_ms = a->downtime_limit_ms != 0;
	d.downtime_limit_ms = a->downtime_limit_ms;
	d.has_max_rounds = a->max_rounds != 0;
	d.max_rounds = a->max_rounds;
	cmd.dump = &d;
	q.type = FERRY__RPC__REQ_TYPE__START;
	q.cmd = &cmd;
	return start_job(c, &q, -1, -1, err_fd, flags, cb, arg);
}

API int ferry_subscribe(ferry_client *c, unsigned job, ferry_event_cb cb, void *arg)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;

	q.type = FERRY__RPC__REQ_TYPE__SUBSCRIBE;
	q.has_job = true;
	q.job = job;
	c->cb = cb;
	c->arg = arg;
	c->job = job;
	return send_req(c, &q, NULL, 0);
}

static void typed_event(struct ferry_event *o, const Ferry__Rpc__Event *e)
{
	o->kind = e->kind;
	o->round = e->has_round ? e->round : 0;
	o->pages = e->has_pages ? e->pages : 0;
	o->mib = e->has_mib ? e->mib : 0;
	o->seconds = e->has_seconds ? e->seconds : 0;
	o->dirty_mbs = e->has_dirty_mbs ? e->dirty_mbs : 0;
	o->copy_mbs = e->has_copy_mbs ? e->copy_mbs : 0;
	o->predicted_ms = e->has_predicted_ms ? e->predicted_ms : 0;
	o->round_name = e->round_name;
	o->bytes = e->has_bytes ? e->bytes : 0;
	o->done = e->has_done && e->done;
	o->remote_pid = e->has_remote_pid ? (int)e->remote_pid : 0;
	o->downtime_ms = e->has_downtime_ms ? e->downtime_ms : 0;
	o->handover_ms = e->has_handover_ms ? e->handover_ms : 0;
	o->errnum = e->has_err ? e->err : 0;
	o->error = e->error;
	o->message = e->message;
}

API int ferry_dispatch(ferry_client *c)
{
	Ferry__Rpc__Response *r;
	struct ferry_event ev = { 0 };
	int ret = recv_resp(c, &r);

	if (ret)
		return ret;
	ev.job = r->has_job ? r->job : c->job;
	switch (r->type) {
	case FERRY__RPC__RESP_TYPE__STARTED:
		ev.type = FERRY_EV_STARTED;
		ev.pid = (int)r->pid;
		c->job = r->job;
		break;
	case FERRY__RPC__RESP_TYPE__DONE:
		ev.type = FERRY_EV_DONE;
		ev.signal = r->has_signal ? r->signal : 0;
		ev.exit_status = ev.signal ? -1 : r->exit_status;
		ret = 1;
		break;
	case FERRY__RPC__RESP_TYPE__EVENT:
		ev.type = FERRY_EV_PROGRESS;
		ev.json = r->event ? r->event : "{}";
		if (r->ev)
			typed_event(&ev, r->ev);
		break;
	case FERRY__RPC__RESP_TYPE__ERROR:
		ev.type = FERRY_EV_ERROR;
		ev.err = r->err;
		ev.msg = r->msg;
		fail(c, r->err, "ferryd: %s", r->msg ? r->msg : strerror(r->err));
		ret = 1;
		break;
	default:
		ret = fail(c, EPROTO, "ferryd answered a job with type %d", r->type);
		ferry__rpc__response__free_unpacked(r, NULL);
		return ret;
	}
	if (c->cb)
		c->cb(c->arg, &ev);
	ferry__rpc__response__free_unpacked(r, NULL);
	return ret;
}

struct sync {
	int status, err;
	bool done;
};

static void on_sync(void *arg, const struct ferry_event *ev)
{
	struct sync *s = arg;

	if (ev->type == FERRY_EV_DONE)
		s->status = ev->signal ? 128 + ev->signal : ev->exit_status;
	else if (ev->type == FERRY_EV_ERROR)
		s->err = ev->err ? ev->err : EIO;
}

/* A job started (ret: how its start went) run to its end: its status. */
static int sync_end(ferry_client *c, struct sync *s, int ret, int *status)
{
	while (!ret)
		ret = ferry_dispatch(c);
	if (ret < 0)
		return ret;
	if (s->err)
		return -s->err;
	*status = s->status;
	return 0;
}

API int ferry_run(ferry_client *c, const char *const argv[], int in_fd, int out_fd, int err_fd,
		  int *status)
{
	struct sync s = { .status = -1 };

	return sync_end(c, &s, ferry_start(c, argv, in_fd, out_fd, err_fd, 0, on_sync, &s),
			status);
}

API int ferry_dump(ferry_client *c, int pid, const char *dir, unsigned flags, int err_fd,
		   int *status)
{
	struct ferry_dump_args a = { .pid = pid, .images_dir = dir,
				     .flags = flags & (FERRY_LEAVE_RUNNING | FERRY_TREE_NO) };
	struct sync s = { .status = -1 };

	return sync_end(c, &s, ferry_start_dump(c, &a, err_fd, 0, on_sync, &s), status);
}

API int ferry_cancel(ferry_client *c, unsigned job)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;
	Ferry__Rpc__Response *r;
	int ret;

	q.type = FERRY__RPC__REQ_TYPE__CANCEL;
	q.has_job = true;
	q.job = job;
	ret = send_req(c, &q, NULL, 0);
	if (!ret)
		ret = recv_resp(c, &r);
	if (ret)
		return ret;
	if (r->type != FERRY__RPC__RESP_TYPE__CANCELLED)
		ret = fail(c, r->err ? r->err : EPROTO, "ferryd: %s", r->msg ? r->msg : "refused");
	ferry__rpc__response__free_unpacked(r, NULL);
	return ret;
}

API void ferry_jobs_free(struct ferry_job_info *jobs, size_t n)
{
	for (size_t i = 0; jobs && i < n; i++)
		free(jobs[i].command);
	free(jobs);
}

/* LIST, or STATUS of job (not 0): its JOBS answer in *r, or an error. */
static int ask_jobs(ferry_client *c, unsigned job, Ferry__Rpc__Response **r)
{
	Ferry__Rpc__Request q = FERRY__RPC__REQUEST__INIT;
	int ret;

	q.type = job ? FERRY__RPC__REQ_TYPE__STATUS : FERRY__RPC__REQ_TYPE__LIST;
	q.has_job = job != 0;
	q.job = job;
	ret = send_req(c, &q, NULL, 0);
	if (!ret)
		ret = recv_resp(c, r);
	if (ret)
		return ret;
	if ((*r)->type == FERRY__RPC__RESP_TYPE__JOBS)
		return 0;
	ret = fail(c, (*r)->err ? (*r)->err : EPROTO, "ferryd: %s",
		   (*r)->msg ? (*r)->msg : "refused");
	ferry__rpc__response__free_unpacked(*r, NULL);
	return ret;
}

static int jobs_of(ferry_client *c, unsigned job, struct ferry_job_info **out, size_t *n)
{
	Ferry__Rpc__Response *r;
	int ret;

	*out = NULL;
	*n = 0;
	ret = ask_jobs(c, job, &r);
	if (ret)
		return ret;
	if (r->n_jobs && !(*out = calloc(r->n_jobs, sizeof(**out)))) {
		ret = -ENOMEM;
	} else {
		for (size_t i = 0; i < r->n_jobs; i++) {
			const Ferry__Rpc__Job *j = r->jobs[i];
			struct ferry_job_info *o = &(*out)[i];

			o->id = j->id;
			o->pid = j->pid;
			o->uid = j->uid;
			o->command = strdup(j->command);
			o->started_ms = (long long)j->started_ms;
			o->running = j->running;
			o->exit_status = j->has_exit_status ? j->exit_status : -1;
			o->signal = j->has_signal ? j->signal : 0;
			o->cut_off = j->has_cut_off && j->cut_off;
		}
		*n = r->n_jobs;
	}
	ferry__rpc__response__free_unpacked(r, NULL);
	return ret;
}

API int ferry_jobs(ferry_client *c, struct ferry_job_info **out, size_t *n)
{
	return jobs_of(c, 0, out, n);
}

API int ferry_job_status(ferry_client *c, unsigned job, struct ferry_job_info **out)
{
	size_t n;
	int ret;

	if (!job)
		return fail(c, EINVAL, "job 0");
	ret = jobs_of(c, job, out, &n);
	if (!ret && n != 1) {
		ferry_jobs_free(*out, n);
		*out = NULL;
		ret = fail(c, EPROTO, "ferryd answered STATUS with %zu jobs", n);
	}
	return ret;
}

API int ferry_trackers(ferry_client *c, struct ferry_tracker_info **out, size_t *n)
{
	Ferry__Rpc__Response *r;
	int ret;

	*out = NULL;
	*n = 0;
	ret = ask_jobs(c, 0, &r);
	if (ret)
		return ret;
	if (r->n_trackers && !(*out = calloc(r->n_trackers, sizeof(**out)))) {
		ret = -ENOMEM;
	} else {
		for (size_t i = 0; i < r->n_trackers; i++)
			(*out)[i] = (struct ferry_tracker_info){ (int)r->trackers[i]->pid,
								 r->trackers[i]->uid,
								 (long long)r->trackers[i]->age_ms };
		*n = r->n_trackers;
	}
	ferry__rpc__response__free_unpacked(r, NULL);
	return ret;
}
