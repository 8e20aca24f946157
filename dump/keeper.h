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

#include <stdbool.h>
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

/* Under ferryd (FERRY_KEEPER_FD in the environment, a socket to it),
 * keeper_spawn gives the tracker to the service, which holds it in place
 * of a keeper process (service/trackers.c) with what follows. */

/* The listening socket of process pid's holder (an older one is told to
 * drop its tracker first), or -errno with err set. */
int keeper_listen(pid_t pid, struct ferr *err);
/* One asker on lfd answered, for the tracker uffd of dump id on pid, whose
 * owner (and root) alone may take or drop it: 1 when it is gone from here
 * (handed over, or dropped: *uffd is closed and -1), 0 when still held. */
int keeper_answer(int lfd, const uint8_t id[IMG_ID_SIZE], pid_t pid, int *uffd, uid_t owner);

/* A tracker given to the service: read from sk (a SOCK_SEQPACKET socket;
 * -EAGAIN when none waits on a non-blocking one), answered by keeper_reply.
 * 0, or -errno (-EBADMSG: not a tracker; -EPIPE: closed). */
struct keeper_given {
	pid_t pid;
	uint8_t id[IMG_ID_SIZE];
	int uffd, pidfd;
};
int keeper_receive(int sk, struct keeper_given *g);
int keeper_reply(int sk, bool ok);

#endif
