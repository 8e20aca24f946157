/* A request's options: each honoured, ignored (noted in the log) or refused
 * by name, and the images directory, work directory and log file they name. */
#ifndef FERRY_CRIU_OPTS_H
#define FERRY_CRIU_OPTS_H

#include "criu/rpc.h"

/* What a request does, for the option rules. */
enum swrk_kind {
	SWRK_DUMP = 1,
	SWRK_PRE_DUMP = 2,
	SWRK_RESTORE = 4,
};

/* The first option q sets that ferry refuses for kind, as an error naming
 * it and why; the options it ignores noted in the log. */
int __must_check swrk_opts_check(struct swrk_req *q, enum swrk_kind kind, struct ferr *err);

/* For tests: a rule naming no field of criu_opts, or a field of criu_opts
 * that is neither honoured nor ruled on; NULL when every one is placed. */
const char *swrk_opts_unclassified(void);

/* Resolve images_dir_fd (or images_dir) into q->dir, open log_file in the
 * work directory (work_dir_fd, else the images directory) and start the
 * log there at log_level. need_dir: no request without an images directory. */
int __must_check swrk_req_begin(struct swrk_req *q, bool need_dir, struct ferr *err);
/* The log closed. */
void swrk_req_end(struct swrk_req *q);

#endif
