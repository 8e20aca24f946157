/* START's typed commands (proto/rpc.proto Command) as the words of the
 * ferry command they stand for. */
#ifndef FERRY_SERVICE_TYPED_H
#define FERRY_SERVICE_TYPED_H

#include <stddef.h>

#include "proto/rpc.pb-c.h"

/* The words after `ferry` (NULL-terminated, *argc of them), or NULL with
 * why set: no command or more than one, an empty or over-long string, a
 * PID or port out of range. Free with typed_argv_free, then free(). */
char **typed_argv(const Ferry__Rpc__Command *cmd, size_t *argc, char *why, size_t len);
void typed_argv_free(char **argv, size_t argc);

#endif
