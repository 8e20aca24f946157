/* The dump engine as a function, so that the CLI, the iterative loop and a
 * later service call the same code. */
#ifndef FERRY_DUMPER_DUMP_H
#define FERRY_DUMPER_DUMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"
#include "dumper/layout.h"
#include "dumper/pages.h"

struct dump_opts {
	pid_t pid;
	const char *dir;
	bool leave_running;
	bool skip_unsupported_fds;
	bool use_pidfd;            /* kernel has PROCESS_VM_PIDFD */
	const struct layout_ops *layout;
	const struct pages_ops *pages;
};

struct dump_result {
	size_t threads, vmas;
	uint64_t data_pages, zero_pages;
	uint64_t freeze_ns;
	double seconds;
	bool killed;
};

int __must_check dump_run(const struct dump_opts *o, struct dump_result *res, struct ferr *err);

#endif
