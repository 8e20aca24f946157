/* `ferry swrk FD`: CRIU's RPC worker, as container runtimes start it (runc
 * execs `criu swrk 3` with a SOCK_SEQPACKET socketpair's end on fd 3).
 * docs/CONTAINERS.md says what is honoured and what is refused. */
#ifndef FERRY_CRIU_SWRK_H
#define FERRY_CRIU_SWRK_H

#include "common/err.h"
#include "common/util.h"

/* The version ferry reports to VERSION: runtimes gate features on it (runc
 * wants 3.0 for checkpoint at all, 3.14 for the cgroup v2 freezer). */
#define SWRK_CRIU_MAJOR 4
#define SWRK_CRIU_MINOR 0

/* Serve requests on sk, one after another, until the runtime closes it.
 * A request that fails is answered as failed and the next is served; the
 * error here is the connection's (a socket that is not one, a failed send). */
int __must_check swrk_serve(int sk, struct ferr *err);

#endif
