/* Error values with messages that read as a sentence naming what failed. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

static int ferr_vset(struct ferr *e, int code, int with_errno, const char *fmt, va_list ap)
{
	int n;

	if (code <= 0)
		code = EIO;
	e->code = code;
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	if (n < 0)
		e->msg[0] = '\0';
	else if (with_errno && (size_t)n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(code));
	return -code;
}

int ferr_sys(struct ferr *e, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = ferr_vset(e, code, 1, fmt, ap);
	va_end(ap);
	return ret;
}

int ferr_new(struct ferr *e, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = ferr_vset(e, code, 0, fmt, ap);
	va_end(ap);
	return ret;
}

int ferr_wrap(struct ferr *e, const char *fmt, ...)
{
	char old[FERR_MSG_MAX];
	va_list ap;
	int n;

	if (e->code == 0)
		e->code = EIO;
	memcpy(old, e->msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n + 3 < sizeof(e->msg)) {
		size_t room = sizeof(e->msg) - (size_t)n - 3, olen = strnlen(old, sizeof(old));

		if (olen > room)
			olen = room;
		memcpy(e->msg + n, ": ", 2);
		memcpy(e->msg + n + 2, old, olen);
		e->msg[n + 2 + olen] = '\0';
	}
	return -e->code;
}

int err_text(char *buf, size_t len, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (e && strlen(buf) + 3 < len)
		snprintf(buf + strlen(buf), len - strlen(buf), ": %s", strerror(e));
	return -1;
}
