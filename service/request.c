/* ferryd's request checks (service/request.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/request.h"
#include "service/typed.h"

static Ferry__Rpc__Request *refuse(Ferry__Rpc__Request *q, int e, int *err, char *why, size_t len,
				   const char *msg, ...) __attribute__((format(printf, 6, 7)));
static Ferry__Rpc__Request *refuse(Ferry__Rpc__Request *q, int e, int *err, char *why, size_t len,
				   const char *msg, ...)
{
	va_list ap;

	*err = e;
	va_start(ap, msg);
	vsnprintf(why, len, msg, ap);
	va_end(ap);
	if (q)
		ferry__rpc__request__free_unpacked(q, NULL);
	return NULL;
}

Ferry__Rpc__Request *rpc_request_parse(const uint8_t *buf, size_t len, size_t nfds, int *err,
				       char *why, size_t whylen)
{
	Ferry__Rpc__Request *q = ferry__rpc__request__unpack(NULL, len, buf);

	if (!q)
		return refuse(NULL, EBADMSG, err, why, whylen, "not a ferry request");
	switch (q->type) {
	case FERRY__RPC__REQ_TYPE__RUN:
		if (nfds != 4)
			return refuse(q, EINVAL, err, why, whylen,
				      "RUN takes 4 fds (cwd, stdin, stdout, stderr), not %zu", nfds);
		if (!q->n_argv || q->n_argv > RPC_ARGV_MAX)
			return refuse(q, EINVAL, err, why, whylen, "RUN takes 1 to %zu words",
				      (size_t)RPC_ARGV_MAX);
		for (size_t i = 0; i < q->n_argv; i++)
			if (strnlen(q->argv[i], RPC_ARG_MAX) == RPC_ARG_MAX)
				return refuse(q, EINVAL, err, why, whylen, "word %zu is too long", i);
		break;
	case FERRY__RPC__REQ_TYPE__START: {
		char **argv, tw[256];
		size_t argc = 0;

		if (nfds != 4)
			return refuse(q, EINVAL, err, why, whylen,
				      "START takes 4 fds (cwd, stdin, stdout, stderr), not %zu", nfds);
		if (q->n_argv)
			return refuse(q, EINVAL, err, why, whylen, "START takes a command, not words");
		argv = typed_argv(q->cmd, &argc, tw, sizeof(tw));
		if (!argv)
			return refuse(q, EINVAL, err, why, whylen, "%s", tw);
		/* From here on it is a RUN of those words (freed with q). */
		free(q->argv);
		q->argv = argv;
		q->n_argv = argc;
		break;
	}
	case FERRY__RPC__REQ_TYPE__LIST:
		break;
	case FERRY__RPC__REQ_TYPE__STATUS:
		if (!q->has_job)
			return refuse(q, EINVAL, err, why, whylen, "STATUS without a job");
		break;
	case FERRY__RPC__REQ_TYPE__CANCEL:
	case FERRY__RPC__REQ_TYPE__SUBSCRIBE:
		if (!q->has_job)
			return refuse(q, EINVAL, err, why, whylen, "%s without a job",
				      q->type == FERRY__RPC__REQ_TYPE__CANCEL ? "CANCEL" : "SUBSCRIBE");
		break;
	default:
		return refuse(q, EINVAL, err, why, whylen, "request type %zu unknown",
			      (size_t)q->type);
	}
	if (q->type != FERRY__RPC__REQ_TYPE__RUN && q->type != FERRY__RPC__REQ_TYPE__START && nfds)
		return refuse(q, EINVAL, err, why, whylen, "%zu fds with a request that takes none",
			      nfds);
	return q;
}
