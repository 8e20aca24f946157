/* ferryd's log lines. */
#include <stdarg.h>
#include <stdio.h>

#include "service/ferryd.h"

void ferryd_say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ferryd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
