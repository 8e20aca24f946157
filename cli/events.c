/* Events for a program watching a command (FERRY_EVENT_FD=N in the
 * environment; ferryd sets it for its jobs and forwards each line to the
 * callers that asked, docs/RPC.md): one JSON object per line, written as
 * things happen.
 *   {"event":"round","round":N,"pages":..,"mib":..,"seconds":..,"dirty_mbs":..,
 *    "copy_mbs":..,"predicted_ms":..}     a pre-copy round is done
 *   {"event":"bytes","round":"pre-1","bytes":N,"done":false}   sending
 *   {"event":"handover","remote_pid":N,"downtime_ms":..,"handover_ms":..}
 *   {"event":"failed","errno":3,"error":"ESRCH","message":"..."}
 *                                      what the command says on failure */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/events.h"
#include "common/json.h"

static FILE *out;
static bool looked;

static FILE *stream(void)
{
	const char *v;
	char *end;
	long fd;

	if (looked)
		return out;
	looked = true;
	v = getenv("FERRY_EVENT_FD");
	if (!v)
		return NULL;
	fd = strtol(v, &end, 10);
	if (*end || fd < 3 || fd > 1 << 20 || fcntl((int)fd, F_GETFD) < 0)
		return NULL;
	fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	out = fdopen((int)fd, "w");
	return out;
}

static bool begin(struct json *j, const char *type)
{
	FILE *f = stream();

	if (!f)
		return false;
	json_init(j, f);
	json_obj_begin(j, NULL);
	json_str(j, "event", type);
	return true;
}

static void end(struct json *j)
{
	json_obj_end(j);
	fputc('\n', out);
	fflush(out);
}

void cli_event_round(const struct iter_round *r)
{
	struct json j;

	if (!begin(&j, "round"))
		return;
	json_u64(&j, "round", r->n);
	json_u64(&j, "pages", r->pages);
	json_f64(&j, "mib", r->bytes / 1048576.0);
	json_f64(&j, "seconds", r->seconds);
	json_f64(&j, "dirty_mbs", r->dirty_rate / 1e6);
	json_f64(&j, "copy_mbs", r->bandwidth / 1e6);
	json_f64(&j, "predicted_ms", r->predicted_ns / 1e6);
	end(&j);
}

void cli_event_bytes(const char *round, uint64_t bytes, bool done)
{
	struct json j;

	if (!begin(&j, "bytes"))
		return;
	json_str(&j, "round", round);
	json_u64(&j, "bytes", bytes);
	json_bool(&j, "done", done);
	end(&j);
}

void cli_event_handover(pid_t remote_pid, uint64_t downtime_ns, uint64_t handover_ns)
{
	struct json j;

	if (!begin(&j, "handover"))
		return;
	json_u64(&j, "remote_pid", (uint64_t)remote_pid);
	json_f64(&j, "downtime_ms", downtime_ns / 1e6);
	json_f64(&j, "handover_ms", handover_ns / 1e6);
	end(&j);
}

void cli_event_failed(const struct ferr *err)
{
	const char *name = strerrorname_np(err->code);
	struct json j;

	if (!begin(&j, "failed"))
		return;
	json_u64(&j, "errno", (uint64_t)(err->code > 0 ? err->code : 0));
	json_str(&j, "error", name ? name : "");
	json_str(&j, "message", err->msg);
	end(&j);
}

bool cli_events_on(void)
{
	return stream() != NULL;
}
