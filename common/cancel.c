/* The cancellation flag and its signal handler (see cancel.h). */
#include <signal.h>
#include <string.h>

#include "common/cancel.h"

static volatile sig_atomic_t cancel_sig;

static void on_cancel(int sig)
{
	/* The first signal is the one reported; a second does not force an
	 * exit that would leave the target half-undone (SIGKILL still does). */
	if (!cancel_sig)
		cancel_sig = sig;
}

static void cancel_sigset(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGINT);
	sigaddset(s, SIGTERM);
	sigaddset(s, SIGHUP);
}

void cancel_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_cancel;
	cancel_sigset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocking call returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int cancel_signal(void)
{
	return cancel_sig;
}

int cancel_check(struct ferr *err)
{
	int sig = cancel_sig;

	if (!sig)
		return 0;
	return ferr_new(err, ECANCELED, "interrupted by SIG%s", sigabbrev_np(sig));
}

int cancel_thread_create(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t block, old;
	int ret;

	cancel_sigset(&block);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	ret = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}
