/* The requests that move a process: DUMP, PRE_DUMP and RESTORE, on ferry's
 * dump and restore jobs, with CRIU's callbacks around them. */
#ifndef FERRY_CRIU_JOBS_H
#define FERRY_CRIU_JOBS_H

#include "criu/rpc.h"

/* Serve one DUMP (pre false) or PRE_DUMP: the answer sent, 0, or an error
 * of the connection itself. */
int __must_check swrk_dump(struct swrk_req *q, bool pre, struct ferr *err);
/* Serve one RESTORE. */
int __must_check swrk_restore(struct swrk_req *q, struct ferr *err);

#endif
