/* Keeping a uffd-wp tracker alive between separate ferry commands.
 *
 * A userfaultfd stops tracking when its last reference closes, so after
 * `ferry pre-dump` exits someone must hold it until the next round. That is
 * the keeper: a small detached process that holds only the userfaultfd and
 * the target's pidfd, listens on an abstract unix socket named after the
 * target's PID, hands the fd to the next round of the same chain (a peer
 * with the same uid, naming the dump it continues) and exits; it also exits
 * when the target does. A round that takes the fd
 * and then fails closes it, so a later round finds no keeper and copies
 * everything: slower, never wrong. */
#ifndef FERRY_DUMP_KEEPER_H
#define FERRY_DUMP_KEEPER_H

#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "images/img.h"

/* Start a keeper for the dump named id, holding uffd for process pid. */
int __must_check keeper_spawn(const uint8_t id[IMG_ID_SIZE], pid_t pid, int pidfd, int uffd,
			      struct ferr *err);
/* Tell the keeper of process pid, if any, to drop its tracking and exit. */
void keeper_drop(pid_t pid);
/* Take the userfaultfd of process pid from the keeper of dump id: the fd,
 * or -ENOENT (no keeper), or another negative errno with err set. */
int keeper_take(const uint8_t id[IMG_ID_SIZE], pid_t pid, struct ferr *err);

#endif
