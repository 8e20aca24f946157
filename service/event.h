/* A job's event line (one flat JSON object, cli/events.c) as the typed
 * Event message (proto/rpc.proto), for clients that read fields rather than
 * JSON. */
#ifndef FERRY_SERVICE_EVENT_H
#define FERRY_SERVICE_EVENT_H

#include "proto/rpc.pb-c.h"

/* ev from line, whose strings it unescapes in place and points into (line
 * must outlive ev). 0, or -EBADMSG for a line that is no flat object with
 * an "event" key; keys and types it does not know are left out. */
int event_parse(char *line, Ferry__Rpc__Event *ev);

#endif
