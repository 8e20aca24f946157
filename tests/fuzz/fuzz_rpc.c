/* libFuzzer target: ferryd's request checks (service/request.c), every
 * packet a client could send, with a number of fds taken from its first
 * byte. A request that passes must be one ferryd can act on: its words
 * bounded (a START's typed command turned into them), its fds as its type
 * wants, a job named where its type needs one. A first byte of 0xff makes
 * the rest a job's event line instead, for the typed events' parser. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "service/event.h"
#include "service/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Ferry__Rpc__Request *q;
	char why[256];
	size_t nfds;
	int err = 0;

	if (!size)
		return 0;
	if (data[0] == 0xff) {
		/* A job's event line, as ferryd reads one from a job. */
		char line[4096];
		Ferry__Rpc__Event ev;

		if (size - 1 >= sizeof(line))
			return 0;
		memcpy(line, data + 1, size - 1);
		line[size - 1] = '\0';
		if (event_parse(line, &ev) == 0)
			assert(ev.kind && strlen(ev.kind) < sizeof(line));
		return 0;
	}
	nfds = data[0] % 9;
	q = rpc_request_parse(data + 1, size - 1, nfds, &err, why, sizeof(why));
	if (!q) {
		assert(err > 0 && why[0]);
		return 0;
	}
	if (q->type == FERRY__RPC__REQ_TYPE__RUN || q->type == FERRY__RPC__REQ_TYPE__START) {
		/* A START comes back as the words of its typed command. */
		assert(nfds == 4 && q->n_argv >= 1 && q->n_argv <= RPC_ARGV_MAX);
		for (size_t i = 0; i < q->n_argv; i++)
			assert(q->argv[i] && strlen(q->argv[i]) < RPC_ARG_MAX);
	} else {
		assert(nfds == 0);
		assert(q->type == FERRY__RPC__REQ_TYPE__LIST || q->has_job);
	}
	ferry__rpc__request__free_unpacked(q, NULL);
	return 0;
}
