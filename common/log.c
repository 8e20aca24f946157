/* stderr logging with a "ferry: " prefix and one verbosity knob; and, for
 * `ferry swrk`, a copy of the messages in a log file in CRIU's form, which
 * container runtimes read back and quote ("Error" lines). */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static enum log_level current_level = LOG_WARN;

/* The log file: its level, and the process that set it (a forked helper,
 * which may have closed or reused its descriptor, writes nothing there). */
static FILE *tee_file;
static enum log_level tee_level;
static pid_t tee_pid;
static struct timespec tee_start;

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

enum log_level log_more_verbose(void)
{
	current_level = current_level < LOG_INFO ? LOG_INFO : LOG_DEBUG;
	return current_level;
}

void log_tee(FILE *f, enum log_level level)
{
	tee_file = f;
	tee_level = level;
	tee_pid = getpid();
	clock_gettime(CLOCK_MONOTONIC, &tee_start);
}

static void tee_msg(enum log_level level, const char *fmt, va_list ap)
{
	/* CRIU's line: "(seconds) Error (where): message". */
	static const char *const tag[] = { "Error (ferry): ", "Warn  (ferry): ", "", "" };
	struct timespec now;
	double s;

	clock_gettime(CLOCK_MONOTONIC, &now);
	s = (double)(now.tv_sec - tee_start.tv_sec) + (now.tv_nsec - tee_start.tv_nsec) / 1e9;
	fprintf(tee_file, "(%09.6f) %s", s, tag[level]);
	vfprintf(tee_file, fmt, ap);
	fputc('\n', tee_file);
	fflush(tee_file);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	va_list ap;

	if (tee_file && level <= tee_level && getpid() == tee_pid) {
		va_start(ap, fmt);
		tee_msg(level, fmt, ap);
		va_end(ap);
	}
	if (level > current_level)
		return;
	fprintf(stderr, "ferry: %s", prefix[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
