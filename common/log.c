/* stderr logging with a "ferry: " prefix and one verbosity knob. */
#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"

static enum log_level current_level = LOG_WARN;

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

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	va_list ap;

	if (level > current_level)
		return;
	fprintf(stderr, "ferry: %s", prefix[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
