/* Events for a program watching a command (cli/events.c). */
#ifndef FERRY_CLI_EVENTS_H
#define FERRY_CLI_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "dump/iter.h"

bool cli_events_on(void);
void cli_event_round(const struct iter_round *r);
void cli_event_bytes(const char *round, uint64_t bytes, bool done);
void cli_event_handover(pid_t remote_pid, uint64_t downtime_ns, uint64_t handover_ns);
void cli_event_failed(const struct ferr *err);

#endif
