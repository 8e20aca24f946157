/* ferryd: ferry as a service (docs/RPC.md). It listens on a Unix
 * SOCK_SEQPACKET socket; each RUN request becomes a job: a worker process
 * that runs the ferry command asked for, with the caller's credentials (a
 * user gets nothing they could not do themselves: the kernel's own checks
 * on ptrace, files and capabilities apply to the job), the caller's working
 * directory and stdio (passed as fds), so its output and exit status are
 * the command's own. Jobs run side by side, each in its own process: one
 * that fails, hangs or crashes harms no other, nor the service. A worker
 * gets SIGTERM when ferryd dies, which ferry's dump, pre-dump and migrate
 * answer by letting their target go untouched (docs/SECURITY.md,
 * "Signals"); SIGTERM to ferryd does the same to every job, then it exits.
 * One thread and poll(2): a client that never speaks is dropped after its
 * deadline, a malformed or oversized packet answered with an error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/util.h"
#include "service/event.h"
#include "service/ferryd.h"
#include "service/record.h"
#include "service/request.h"
#include "service/trackers.h"
#include "service/watch.h"
#include "proto/rpc.pb-c.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.0.0-dev"
#endif

#define say ferryd_say
#define MAX_CONNS 128
#define MAX_JOBS 1024
#define PACKET_MAX 65536
#define STOP_GRACE_MS 30000     /* SIGTERM: how long jobs get to end */

struct conn {
	int fd;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	uint64_t deadline_ms;   /* 0 once it has spoken */
	uint32_t job;           /* the job it waits for, or 0 */
	uint32_t watching;      /* a job it subscribed to (never cancelled by it), or 0 */
};

struct job {
	uint32_t id;
	pid_t pid;
	uid_t uid;
	char *command;
	uint64_t started_ms;
	bool running;
	bool cut_off;           /* a ferryd before this one died while it ran */
	int status;             /* wait status once ended */
	pid_t target;           /* the process it works on (-t PID), or 0 */
	int err_fd;             /* the caller's stderr while it runs, or -1 */
	int ev_fd;              /* the read end of its events (FERRY_EVENT_FD), or -1 */
	int keep_fd;            /* ours of the socket it gives trackers on (FERRY_KEEPER_FD) */
	bool events;            /* its caller wants them */
	char ev_buf[4096];      /* a line not yet whole */
	size_t ev_len;
};

static struct conn conns[MAX_CONNS];
static size_t nconns;
static struct job jobs[MAX_JOBS];
static size_t njobs;
static uint32_t next_job = 1;
static const char *ferry_bin;
static int verbose;
static uint64_t first_word_ms = 10000; /* a client that connects and never speaks */
static uint64_t tracker_ms = 3600000;  /* a tracker nobody takes is released after */

static uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void send_resp(int fd, Ferry__Rpc__Response *r)
{
	uint8_t buf[PACKET_MAX];
	size_t len = ferry__rpc__response__get_packed_size(r);

	if (len > sizeof(buf))
		return;
	ferry__rpc__response__pack(r, buf);
	(void)fdpass_send(fd, buf, len, NULL, 0);
}

static int send_error(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int send_error(int fd, int err, const char *fmt, ...)
{
	Ferry__Rpc__Response r = FERRY__RPC__RESPONSE__INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.type = FERRY__RPC__RESP_TYPE__ERROR;
	r.has_err = true;
	r.err = err;
	r.msg = msg;
	send_resp(fd, &r);
	return -err;
}

static struct job *job_by_id(uint32_t id)
{
	for (size_t i = 0; i < njobs; i++)
		if (jobs[i].id == id)
			return &jobs[i];
	return NULL;
}

/* The job record (record.c): the jobs a ferryd before this one left, as
 * they ended or cut off; numbering goes on from the last. */
static void load_record(const char *path)
{
	static struct rec_job rec[MAX_JOBS / 2];
	size_t n = record_load(path, rec, MAX_JOBS / 2);

	for (size_t i = 0; i < n; i++) {
		jobs[njobs++] = (struct job){ .id = rec[i].id, .pid = rec[i].pid, .uid = rec[i].uid,
					      .command = rec[i].command,
					      .started_ms = rec[i].started_ms,
					      .cut_off = !rec[i].ended, .status = rec[i].status,
					      .err_fd = -1, .ev_fd = -1, .keep_fd = -1 };
		if (rec[i].id >= next_job)
			next_job = rec[i].id + 1;
		if (!rec[i].ended)
			say("job %u (%s) was cut off when ferryd stopped", rec[i].id,
			    rec[i].command ? rec[i].command : "?");
	}
}

static int run_job(struct conn *c, Ferry__Rpc__Request *q, const int *fds)
{
	Ferry__Rpc__Response r = FERRY__RPC__RESPONSE__INIT;
	char cmd[1024] = "";
	size_t used = 0;
	struct job *j;
	sigset_t all, old;
	int ev[2], keep[2];
	pid_t pid;

	if (c->job)
		return send_error(c->fd, EBUSY, "this connection runs job %u already", c->job);
	if (njobs == MAX_JOBS) {
		/* Forget the oldest ended job to make room. */
		size_t k = 0;

		while (k < njobs && jobs[k].running)
			k++;
		if (k == njobs)
			return send_error(c->fd, EAGAIN, "%d jobs run already", MAX_JOBS);
		free(jobs[k].command);
		memmove(&jobs[k], &jobs[k + 1], (njobs - k - 1) * sizeof(*jobs));
		njobs--;
	}
	for (size_t i = 0; i < q->n_argv && used + 1 < sizeof(cmd); i++)
		used += (size_t)snprintf(cmd + used, sizeof(cmd) - used, "%s%s", i ? " " : "",
					 q->argv[i]);
	if (pipe2(ev, O_CLOEXEC) < 0)
		ev[0] = ev[1] = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, keep) < 0)
		keep[0] = keep[1] = -1;
	fflush(NULL);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		ferryd_worker(c->uid, c->gid, c->pid, fds, ev[1], keep[1], ferry_bin, q->argv,
			      q->n_argv);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (ev[1] >= 0)
		close(ev[1]);
	if (keep[1] >= 0)
		close(keep[1]);
	if (pid < 0) {
		if (ev[0] >= 0)
			close(ev[0]);
		if (keep[0] >= 0)
			close(keep[0]);
		return send_error(c->fd, errno, "fork: %s", strerror(errno));
	}
	if (ev[0] >= 0)
		fcntl(ev[0], F_SETFL, O_NONBLOCK);
	if (keep[0] >= 0)
		fcntl(keep[0], F_SETFL, O_NONBLOCK);
	j = &jobs[njobs++];
	*j = (struct job){ .id = next_job++, .pid = pid, .uid = c->uid, .command = strdup(cmd),
			   .started_ms = wall_ms(), .running = true,
			   .target = watch_target_of(q->argv, q->n_argv),
			   .err_fd = fcntl(fds[3], F_DUPFD_CLOEXEC, 3), .ev_fd = ev[0],
			   .keep_fd = keep[0],
			   .events = q->has_events && q->events };
	c->job = j->id;
	say("job %u (uid %u, pid %d): %s: started as %d", j->id, c->uid, c->pid, cmd, pid);
	record_line("start %u %d %u %llu %s\n", j->id, pid, c->uid, (unsigned long long)j->started_ms, cmd);
	r.type = FERRY__RPC__RESP_TYPE__STARTED;
	r.has_job = r.has_pid = true;
	r.job = j->id;
	r.pid = (uint32_t)pid;
	send_resp(c->fd, &r);
	return 0;
}

/* LIST: the jobs c may see; STATUS (id): that one alone, or ESRCH. */
static int list_jobs(struct conn *c, uint32_t id)
{
	Ferry__Rpc__Response r = FERRY__RPC__RESPONSE__INIT;
	Ferry__Rpc__Job *v = calloc(njobs ? njobs : 1, sizeof(*v));
	Ferry__Rpc__Job **p = calloc(njobs ? njobs : 1, sizeof(*p));

	if (!v || !p) {
		free(v);
		free(p);
		return send_error(c->fd, ENOMEM, "out of memory");
	}
	r.type = FERRY__RPC__RESP_TYPE__JOBS;
	for (size_t i = 0; i < njobs; i++) {
		const struct job *j = &jobs[i];
		Ferry__Rpc__Job *o = &v[r.n_jobs];

		if ((c->uid && j->uid != c->uid) || (id && j->id != id))
			continue; /* another user's, or not the one asked for */
		ferry__rpc__job__init(o);
		o->id = j->id;
		o->pid = (uint32_t)j->pid;
		o->uid = j->uid;
		o->command = j->command ? j->command : (char *)"?";
		o->started_ms = j->started_ms;
		o->has_running = true;
		o->running = j->running;
		o->has_cut_off = o->cut_off = j->cut_off;
		if (j->cut_off) {
			/* neither status nor signal: nobody saw it end */
		} else if (!j->running && WIFEXITED(j->status)) {
			o->has_exit_status = true;
			o->exit_status = WEXITSTATUS(j->status);
		} else if (!j->running) {
			o->has_signal = true;
			o->signal = WTERMSIG(j->status);
		}
		p[r.n_jobs++] = o;
	}
	r.jobs = p;
	if (!id) {
		static struct tracker_info ti[256];
		static Ferry__Rpc__Tracker tv[256], *tp[256];

		r.n_trackers = trackers_list(c->uid, ti, 256, now_ms());
		for (size_t i = 0; i < r.n_trackers; i++) {
			ferry__rpc__tracker__init(&tv[i]);
			tv[i].pid = (uint32_t)ti[i].pid;
			tv[i].uid = ti[i].owner;
			tv[i].age_ms = ti[i].age_ms;
			tp[i] = &tv[i];
		}
		r.trackers = tp;
	}
	if (id && !r.n_jobs)
		send_error(c->fd, ESRCH, "no job %u of yours", id);
	else
		send_resp(c->fd, &r);
	free(v);
	free(p);
	return 0;
}

static int cancel_job(struct conn *c, uint32_t id)
{
	Ferry__Rpc__Response r = FERRY__RPC__RESPONSE__INIT;
	struct job *j = job_by_id(id);

	if (!j || (c->uid && j->uid != c->uid))
		return send_error(c->fd, j ? EPERM : ESRCH, "no job %u of yours", id);
	if (!j->running)
		return send_error(c->fd, ESRCH, "job %u has ended", id);
	kill(j->pid, SIGTERM);
	say("job %u: cancelled by uid %u (pid %d)", id, c->uid, c->pid);
	r.type = FERRY__RPC__RESP_TYPE__CANCELLED;
	r.has_job = true;
	r.job = id;
	send_resp(c->fd, &r);
	return 0;
}

/* SUBSCRIBE: the job's events and end go to c too, as to its own caller
 * (who alone cancels it by hanging up). */
static int subscribe(struct conn *c, uint32_t id)
{
	Ferry__Rpc__Response r = FERRY__RPC__RESPONSE__INIT;
	struct job *j = job_by_id(id);

	if (!j || (c->uid && j->uid != c->uid))
		return send_error(c->fd, ESRCH, "no job %u of yours", id);
	if (c->job || c->watching)
		return send_error(c->fd, EBUSY, "this connection follows job %u already",
				  c->job ? c->job : c->watching);
	r.has_job = r.has_pid = true;
	r.job = id;
	r.pid = (uint32_t)j->pid;
	if (!j->running) {
		/* Ended already: its end, at once. */
		r.type = FERRY__RPC__RESP_TYPE__DONE;
		r.has_exit_status = !j->cut_off && WIFEXITED(j->status);
		r.exit_status = r.has_exit_status ? WEXITSTATUS(j->status) : 0;
		r.has_signal = !j->cut_off && WIFSIGNALED(j->status);
		r.signal = r.has_signal ? WTERMSIG(j->status) : 0;
		send_resp(c->fd, &r);
		return 0;
	}
	c->watching = id;
	if (verbose)
		say("uid %u pid %d follows job %u", c->uid, c->pid, id);
	r.type = FERRY__RPC__RESP_TYPE__STARTED;
	send_resp(c->fd, &r);
	return 0;
}

static void drop_conn(size_t i)
{
	struct job *j = conns[i].job ? job_by_id(conns[i].job) : NULL;

	/* A caller that went away takes its job with it, as a command ended
	 * by its terminal would end. */
	if (j && j->running) {
		kill(j->pid, SIGTERM);
		say("job %u: its caller hung up: cancelled", j->id);
	}
	close(conns[i].fd);
	conns[i] = conns[--nconns];
}

/* One packet from connection i: false if the connection is to go. */
static bool serve(size_t i)
{
	struct conn *c = &conns[i];
	uint8_t buf[PACKET_MAX];
	int fds[FDPASS_MAX_FDS];
	size_t nfds = 0;
	ssize_t n = fdpass_recv(c->fd, buf, sizeof(buf), fds, &nfds);
	Ferry__Rpc__Request *q;
	char why[256];
	int err;

	if (n == 0 || n == -ECONNRESET)
		return false;
	if (n < 0) {
		send_error(c->fd, -(int)n, "%s", n == -EMSGSIZE ? "request larger than 64 KiB" :
			   strerror(-(int)n));
		say("uid %u pid %d: a bad packet: %s", c->uid, c->pid, strerror(-(int)n));
		return n != -ENOTCONN;
	}
	c->deadline_ms = 0;
	q = rpc_request_parse(buf, (size_t)n, nfds, &err, why, sizeof(why));
	if (!q) {
		send_error(c->fd, err, "%s", why);
		say("uid %u pid %d: a bad request: %s", c->uid, c->pid, why);
	} else if (q->type == FERRY__RPC__REQ_TYPE__RUN || q->type == FERRY__RPC__REQ_TYPE__START) {
		run_job(c, q, fds);
	} else if (q->type == FERRY__RPC__REQ_TYPE__LIST) {
		list_jobs(c, 0);
	} else if (q->type == FERRY__RPC__REQ_TYPE__STATUS) {
		list_jobs(c, q->job);
	} else if (q->type == FERRY__RPC__REQ_TYPE__SUBSCRIBE) {
		subscribe(c, q->job);
	} else {
		cancel_job(c, q->job);
	}
	for (size_t k = 0; k < nfds; k++)
		close(fds[k]);
	if (q)
		ferry__rpc__request__free_unpacked(q, NULL);
	return true;
}

/* A job's events: whole lines to its caller if it asked, else dropped. */
static void read_events(struct job *j)
{
	for (;;) {
		ssize_t n = read(j->ev_fd, j->ev_buf + j->ev_len, sizeof(j->ev_buf) - 1 - j->ev_len);
		char *line = j->ev_buf, *nl;

		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(j->ev_fd);
				j->ev_fd = -1;
			}
			return;
		}
		j->ev_len += (size_t)n;
		j->ev_buf[j->ev_len] = '\0';
		while ((nl = strchr(line, '\n'))) {
			Ferry__Rpc__Response r = FERRY__RPC__RESPONSE__INIT;
			Ferry__Rpc__Event ev;
			char typed[sizeof(j->ev_buf)];

			*nl = '\0';
			r.type = FERRY__RPC__RESP_TYPE__EVENT;
			r.has_job = true;
			r.job = j->id;
			/* The typed one reads a copy: it unescapes in place. */
			snprintf(typed, sizeof(typed), "%s", line);
			r.event = line;
			r.ev = event_parse(typed, &ev) == 0 ? &ev : NULL;
			for (size_t k = 0; k < nconns; k++)
				if ((j->events && conns[k].job == j->id) || conns[k].watching == j->id)
					send_resp(conns[k].fd, &r);
			line = nl + 1;
		}
		j->ev_len -= (size_t)(line - j->ev_buf);
		memmove(j->ev_buf, line, j->ev_len);
		if (j->ev_len == sizeof(j->ev_buf) - 1)
			j->ev_len = 0; /* a line too long for an event: dropped */
	}
}

/* A process exited: a job working on it ends now, its caller told why. */
static void target_gone(pid_t pid)
{
	for (size_t i = 0; i < njobs; i++) {
		struct job *j = &jobs[i];

		if (!j->running || j->target != pid)
			continue;
		say("job %u: its target %d exited: the job is ended", j->id, pid);
		if (j->err_fd >= 0)
			dprintf(j->err_fd, "ferryd: job %u: process %d exited; the job is ended\n",
				j->id, pid);
		kill(j->pid, SIGTERM);
		j->target = 0;
	}
}

/* A process ran a new program: its tracker (if ferryd keeps one) tracked
 * memory that is gone; a job on it carries on (its next round reads the
 * new layout whole). */
static void target_exec(pid_t pid)
{
	trackers_exec(pid);
	for (size_t i = 0; i < njobs; i++)
		if (jobs[i].running && jobs[i].target == pid)
			say("job %u: its target %d ran a new program (exec)", jobs[i].id, pid);
}

/* A job's target forked: a tree's next round takes the child in. */
static void target_fork(pid_t pid, pid_t child)
{
	for (size_t i = 0; i < njobs; i++)
		if (jobs[i].running && jobs[i].target == pid && verbose)
			say("job %u: its target %d forked %d", jobs[i].id, pid, child);
}

static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < njobs; i++) {
			struct job *j = &jobs[i];
			Ferry__Rpc__Response r = FERRY__RPC__RESPONSE__INIT;

			if (j->pid != pid || !j->running)
				continue;
			j->running = false;
			j->status = status;
			if (j->err_fd >= 0)
				close(j->err_fd);
			j->err_fd = -1;
			if (j->keep_fd >= 0)
				close(j->keep_fd);
			j->keep_fd = -1;
			record_line("end %u %d\n", j->id, status);
			if (WIFEXITED(status))
				say("job %u: exit %d", j->id, WEXITSTATUS(status));
			else
				say("job %u: ended by signal %d", j->id, WTERMSIG(status));
			r.type = FERRY__RPC__RESP_TYPE__DONE;
			r.has_job = true;
			r.job = j->id;
			r.has_exit_status = WIFEXITED(status);
			r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
			r.has_signal = WIFSIGNALED(status);
			r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
			for (size_t k = 0; k < nconns; k++)
				if (conns[k].job == j->id || conns[k].watching == j->id) {
					send_resp(conns[k].fd, &r);
					conns[k].job = conns[k].watching = 0;
				}
		}
	}
}

static void accept_one(int lfd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (nconns == MAX_CONNS || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		say("refused a connection: %s", nconns == MAX_CONNS ? "too many" : strerror(errno));
		close(fd);
		return;
	}
	conns[nconns++] = (struct conn){ .fd = fd, .uid = cr.uid, .gid = cr.gid, .pid = cr.pid,
					 .deadline_ms = now_ms() + first_word_ms };
	if (verbose)
		say("connection from uid %u pid %d", cr.uid, cr.pid);
}

static bool any_running(void)
{
	for (size_t i = 0; i < njobs; i++)
		if (jobs[i].running)
			return true;
	return false;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: ferryd [--socket PATH] [--foreground] [--ferry PATH] [--idle-timeout S]\n"
		"              [--tracker-timeout S] [--state FILE] [-v]\n"
		"\n"
		"ferry as a service: every `ferry --connect PATH COMMAND ...` runs as a job\n"
		"here, with the caller's credentials, working directory and stdio.\n"
		"\n"
		"  --socket PATH   where to listen (default /run/ferry/ferryd.sock); a\n"
		"                  socket passed by systemd (socket activation) is used instead\n"
		"  --foreground    stay in the foreground (default: detach once listening)\n"
		"  --ferry PATH    the ferry binary jobs run (default: the one beside ferryd)\n"
		"  --idle-timeout S  drop a client that says nothing for S seconds (10)\n"
		"  --tracker-timeout S  release a pre-dump's dirty tracker that no round\n"
		"                  took for S seconds (3600); ferryd keeps them between rounds\n"
		"                  in place of a keeper process per target\n"
		"  --state FILE    the job record (default: the socket's path + .jobs): a\n"
		"                  ferryd started after one that died reports its jobs cut off\n"
		"  -v              log connections too\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "ferry", required_argument, NULL, 'F' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "tracker-timeout", required_argument, NULL, 'T' },
		{ "state", required_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "/run/ferry/ferryd.sock", *state_path = NULL;
	char state_buf[4200];
	static char self[4096];
	bool fg = false, stopping = false;
	uint64_t stop_deadline = 0;
	sigset_t set;
	int c, lfd, sfd, wfd;

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'f':
			fg = true;
			break;
		case 'F':
			ferry_bin = optarg;
			break;
		case 'S':
			state_path = optarg;
			break;
		case 'i': {
			char *end;
			double sec = strtod(optarg, &end);

			if (*end || sec <= 0 || sec > 3600) {
				say("--idle-timeout takes seconds (0 to 3600), not `%s`", optarg);
				return 2;
			}
			first_word_ms = (uint64_t)(sec * 1000);
			break;
		}
		case 'T': {
			char *end;
			double sec = strtod(optarg, &end);

			if (*end || sec <= 0 || sec > 7 * 86400) {
				say("--tracker-timeout takes seconds (up to a week), not `%s`", optarg);
				return 2;
			}
			tracker_ms = (uint64_t)(sec * 1000);
			break;
		}
		case 'v':
			verbose++;
			break;
		case 'V':
			printf("ferryd %s\n", FERRY_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!ferry_bin) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 8);

		if (n <= 0)
			return 1;
		self[n] = '\0';
		strcat(dirname(self), "/ferry");
		ferry_bin = self;
	}
	if (access(ferry_bin, X_OK) < 0) {
		say("no ferry binary at %s (--ferry PATH)", ferry_bin);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	lfd = ferryd_listen(path);
	if (lfd < 0 || sfd < 0)
		return 1;
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	if (!state_path) {
		snprintf(state_buf, sizeof(state_buf), "%s.jobs", path);
		state_path = state_buf;
	}
	load_record(state_path);
	trackers_init(ferryd_say, tracker_ms);
	wfd = watch_open();
	if (wfd < 0)
		say("no proc connector (%s): a job learns of its target's exit itself",
		    strerror(-wfd));
	if (!fg && daemon(0, 1) < 0)
		return 1;
	say("listening on %s, jobs run %s", path, ferry_bin);
	for (;;) {
		struct pollfd p[MAX_CONNS + 3 + 2 * MAX_JOBS + 512];
		size_t nev = 0, ntp;
		uint64_t now = now_ms();

		p[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = stopping ? -1 : lfd, .events = POLLIN };
		for (size_t i = 0; i < nconns; i++)
			p[i + 2] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
		p[nconns + 2] = (struct pollfd){ .fd = wfd, .events = POLLIN };
		for (size_t i = 0; i < njobs; i++) {
			if (jobs[i].running && jobs[i].ev_fd >= 0)
				p[nconns + 3 + nev++] = (struct pollfd){ .fd = jobs[i].ev_fd, .events = POLLIN };
			if (jobs[i].running && jobs[i].keep_fd >= 0)
				p[nconns + 3 + nev++] = (struct pollfd){ .fd = jobs[i].keep_fd,
									 .events = POLLIN };
		}
		ntp = trackers_pollfds(p + nconns + 3 + nev, 512);
		if (poll(p, nconns + 3 + nev + ntp, 200) < 0 && errno != EINTR)
			return 1;
		for (size_t i = 0; i < njobs; i++) {
			if (jobs[i].running && jobs[i].ev_fd >= 0)
				read_events(&jobs[i]);
			if (jobs[i].running && jobs[i].keep_fd >= 0)
				trackers_take_from(jobs[i].keep_fd, jobs[i].uid, jobs[i].pid);
		}
		trackers_serve(p + nconns + 3 + nev, ntp);
		trackers_expire(now);
		if (p[nconns + 2].revents & POLLIN) {
			enum watch_what what;
			pid_t pid, child;

			while ((pid = watch_next(wfd, &what, &child)) > 0) {
				if (what == WATCH_EXIT)
					target_gone(pid);
				else if (what == WATCH_EXEC)
					target_exec(pid);
				else
					target_fork(pid, child);
			}
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				if (!stopping) {
					say("SIG%s: every job is told to stop", sigabbrev_np((int)si.ssi_signo));
					for (size_t i = 0; i < njobs; i++)
						if (jobs[i].running)
							kill(jobs[i].pid, SIGTERM);
					stopping = true;
					stop_deadline = now + STOP_GRACE_MS;
				}
			}
			reap();
		}
		/* From the last: drop_conn moves the last one into i. */
		for (size_t i = nconns; i-- > 0;) {
			bool keep = true;

			if (p[i + 2].revents & POLLIN)
				keep = serve(i);
			else if (p[i + 2].revents & (POLLHUP | POLLERR))
				keep = false;
			if (keep && conns[i].deadline_ms && now > conns[i].deadline_ms) {
				say("uid %u pid %d said nothing: dropped", conns[i].uid, conns[i].pid);
				keep = false;
			}
			if (!keep)
				drop_conn(i);
		}
		if (p[1].revents & POLLIN)
			accept_one(lfd);
		reap();
		if (stopping && (!any_running() || now > stop_deadline)) {
			for (size_t i = 0; i < njobs; i++)
				if (jobs[i].running)
					kill(jobs[i].pid, SIGKILL);
			trackers_release_all();
			say("stopped");
			if (lfd != 3)
				unlink(path);
			return 0;
		}
	}
}
