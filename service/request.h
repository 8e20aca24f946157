/* ferryd's requests as they arrive, checked before anything acts on them:
 * the packet unpacked, its type known, its fields and fds bounded. The
 * request fuzzer (tests/fuzz/fuzz_rpc.c) drives exactly this. */
#ifndef FERRY_SERVICE_REQUEST_H
#define FERRY_SERVICE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "proto/rpc.pb-c.h"

#define RPC_ARGV_MAX 256
#define RPC_ARG_MAX 4096

/* The request in buf, with nfds fds, or NULL with an errno in *err and the
 * reason in why. A START comes back with its command's words in argv (as a
 * RUN's; service/typed.c). Free with ferry__rpc__request__free_unpacked. */
Ferry__Rpc__Request *rpc_request_parse(const uint8_t *buf, size_t len, size_t nfds, int *err,
				       char *why, size_t whylen);

#endif
