/* ferryd's job record (record.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/ferryd.h"
#include "service/record.h"

static FILE *state;

void record_line(const char *fmt, ...)
{
	va_list ap;

	if (!state)
		return;
	va_start(ap, fmt);
	vfprintf(state, fmt, ap);
	va_end(ap);
	fflush(state);
}

static struct rec_job *find(struct rec_job *v, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return &v[i];
	return NULL;
}

size_t record_load(const char *path, struct rec_job *out, size_t max)
{
	FILE *f = fopen(path, "re");
	char line[1200], tmp[4300];
	size_t n = 0;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned id, pid, uid;
		unsigned long long ms;
		int st, used = 0;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "start %u %u %u %llu %n", &id, &pid, &uid, &ms, &used) == 4 &&
		    used) {
			/* The oldest goes when the table is full: the last ones stay. */
			if (n == max && max) {
				free(out[0].command);
				memmove(&out[0], &out[1], (n - 1) * sizeof(*out));
				n--;
			}
			if (n < max)
				out[n++] = (struct rec_job){ .id = id, .pid = (pid_t)pid, .uid = uid,
							     .command = strdup(line + used),
							     .started_ms = ms };
		} else if (sscanf(line, "end %u %d", &id, &st) == 2) {
			struct rec_job *j = find(out, n, id);

			if (j) {
				j->ended = true;
				j->status = st;
			}
		}
	}
	if (f)
		fclose(f);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	state = fopen(tmp, "we");
	for (size_t i = 0; state && i < n; i++) {
		const struct rec_job *j = &out[i];

		fprintf(state, "start %u %d %u %llu %s\n", j->id, j->pid, j->uid,
			(unsigned long long)j->started_ms, j->command ? j->command : "?");
		if (j->ended)
			fprintf(state, "end %u %d\n", j->id, j->status);
	}
	if (state && (fflush(state) || rename(tmp, path) < 0)) {
		fclose(state);
		state = NULL;
	}
	if (!state)
		ferryd_say("no job record at %s: %s", path, strerror(errno));
	return n;
}
