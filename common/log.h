/* Leveled messages on stderr. The level is the one process-wide setting:
 * main() sets it from -v/-q before any work starts, and a command's own -v
 * raises it with log_more_verbose(), still before the work starts. */
#ifndef FERRY_COMMON_LOG_H
#define FERRY_COMMON_LOG_H

#include <stdio.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* A command's -v: informational messages at least, debug messages if they
 * were on already (main's -v, or a second -v). Returns the new level. */
enum log_level log_more_verbose(void);
/* Also write every message up to level to f (NULL: stop), each line in
 * CRIU's log form, errors as "Error (ferry): ..." (`ferry swrk`'s log_file).
 * Only this process writes there, not a child it forks. */
void log_tee(FILE *f, enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_err(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define pr_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define pr_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define pr_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
