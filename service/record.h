/* ferryd's job record: one line per event, so that a ferryd started after
 * one that died can tell which jobs that one left running (their workers
 * got SIGTERM with it):
 *   start ID PID UID MS COMMAND
 *   end ID WAITSTATUS */
#ifndef FERRY_SERVICE_RECORD_H
#define FERRY_SERVICE_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct rec_job {
	uint32_t id;
	pid_t pid;
	uid_t uid;
	char *command;          /* the caller's to free */
	uint64_t started_ms;
	bool ended;             /* false: cut off (no "end" line) */
	int status;
};

/* Read the record at path: its last jobs (at most max) into out, written
 * back compacted, the file kept open for record_line. How many. */
size_t record_load(const char *path, struct rec_job *out, size_t max);
/* One line appended (and flushed); nothing without a record. */
void record_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
