/* One error value carried up the stack: the failing call sets it where the
 * context is known, callers prepend what they were doing. */
#ifndef FERRY_COMMON_ERR_H
#define FERRY_COMMON_ERR_H

#include <errno.h>

#define FERR_MSG_MAX 1024

struct ferr {
	int code;                /* positive errno; 0 while no error is set */
	char msg[FERR_MSG_MAX];
};

/* Set an error from a failed system call: the message gets ": strerror(code)"
 * appended. Returns -code so callers can write `return ferr_sys(...)`. */
int ferr_sys(struct ferr *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Set an error that is not a failed system call (bad input, unsupported). */
int ferr_new(struct ferr *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix context to an error already set: "ctx: old message". */
int ferr_wrap(struct ferr *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Where no struct ferr can go (a forked child reporting through a pipe):
 * fmt, and for a nonzero e ": strerror(e)", into buf. Returns -1. */
int err_text(char *buf, size_t len, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline void ferr_clear(struct ferr *e)
{
	e->code = 0;
	e->msg[0] = '\0';
}

#endif
