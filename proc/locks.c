/* fdinfo's lock lines, as fs/locks.c prints them:
 *   lock:\t1: POSIX  ADVISORY  WRITE 1234 00:1f:5678 0 EOF
 *   lock:\t2: FLOCK  ADVISORY  READ  1234 00:1f:5678 0 EOF
 *   lock:\t3: OFDLCK ADVISORY  WRITE -1 00:1f:5678 100 199
 * For POSIX locks fdinfo lists those of the fd's files_struct, for flock
 * and OFD locks those of its open file description: exactly what a restored
 * fd must take again. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc/locks.h"

static int add_lock(Ferry__Fd *e, uint32_t kind, bool write, uint64_t start, uint64_t len,
		    struct ferr *err)
{
	Ferry__FileLock **nl = realloc(e->locks, (e->n_locks + 1) * sizeof(*nl));
	Ferry__FileLock *l;

	if (!nl)
		return ferr_sys(err, ENOMEM, "file locks");
	e->locks = nl;
	l = malloc(sizeof(*l));
	if (!l)
		return ferr_sys(err, ENOMEM, "file locks");
	ferry__file_lock__init(l);
	l->kind = kind;
	l->write = write;
	if (kind != LOCK_KIND_FLOCK) {
		l->has_start = l->has_len = true;
		l->start = start;
		l->len = len;
	}
	e->locks[e->n_locks++] = l;
	return 0;
}

int locks_parse(const char *fdinfo, Ferry__Fd *e, pid_t pid, struct ferr *err)
{
	for (const char *p = strstr(fdinfo, "lock:"); p; p = strstr(p + 5, "lock:")) {
		char kind[16], mode[16], type[16], end[32];
		unsigned long long start;
		uint32_t k;
		int n;

		if (strstr(p, "->") && strstr(p, "->") < strchr(p, '\n'))
			continue; /* a waiter, not a holder */
		n = sscanf(p, "lock:\t%*d: %15s %15s %15s %*s %*s %llu %31s", kind, mode, type, &start,
			   end);
		if (n != 5)
			return ferr_new(err, EPROTO, "process %d fd %u: cannot read its lock line", pid,
					e->fd);
		if (!strcmp(kind, "POSIX"))
			k = LOCK_KIND_POSIX;
		else if (!strcmp(kind, "FLOCK"))
			k = LOCK_KIND_FLOCK;
		else if (!strcmp(kind, "OFDLCK"))
			k = LOCK_KIND_OFD;
		else
			return ferr_new(err, EOPNOTSUPP, "process %d fd %u holds a %s (%s): ferry cannot "
					"dump it", pid, e->fd, kind, e->path ? e->path : "?");
		if (strcmp(mode, "ADVISORY"))
			return ferr_new(err, EOPNOTSUPP, "process %d fd %u holds a %s lock: ferry "
					"restores advisory locks only", pid, e->fd, mode);
		if (add_lock(e, k, !strcmp(type, "WRITE"), start,
			     strcmp(end, "EOF") ? strtoull(end, NULL, 10) - start + 1 : 0, err))
			return -err->code;
	}
	return 0;
}

const Ferry__Fd *locks_first(Ferry__Fd *const *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i]->n_locks)
			return fds[i];
	return NULL;
}
