/* Cancellation: SIGINT, SIGTERM or SIGHUP asks a running job to stop and
 * undo what it did to its target. The flag is the one piece of process-wide
 * state the engine reads: only main()'s signal handler sets it, through
 * cancel_install(); the engine asks cancel_check() at safe points (between
 * rounds, batches, injected calls) and fails with ECANCELED through its
 * normal error paths, which release the target. */
#ifndef FERRY_COMMON_CANCEL_H
#define FERRY_COMMON_CANCEL_H

#include <pthread.h>
#include <stdbool.h>

#include "common/err.h"

/* Install the handler for SIGINT, SIGTERM and SIGHUP, without SA_RESTART
 * so that a blocking call returns EINTR. For main() only. */
void cancel_install(void);
/* The signal that asked to stop, or 0. */
int cancel_signal(void);
static inline bool cancel_requested(void)
{
	return cancel_signal() != 0;
}
/* 0, or -ECANCELED with err saying which signal interrupted the job. */
int __attribute__((warn_unused_result)) cancel_check(struct ferr *err);
/* pthread_create with the cancel signals blocked in the new thread, so that
 * they reach the thread that checks for them (and never turn a worker's
 * I/O into EINTR). */
int cancel_thread_create(pthread_t *th, void *(*fn)(void *), void *arg);

#endif
