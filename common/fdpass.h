/* A packet and the fds that go with it (SCM_RIGHTS), on a SOCK_SEQPACKET
 * socket: ferryd's requests carry the caller's cwd and stdio. */
#ifndef FERRY_COMMON_FDPASS_H
#define FERRY_COMMON_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#define FDPASS_MAX_FDS 8

/* 0, or -errno. */
int fdpass_send(int sk, const void *buf, size_t len, const int *fds, size_t nfds);
/* The packet's length (0: the peer hung up), or -errno; -EMSGSIZE for a
 * packet longer than len (nothing kept), -EBADMSG for more fds than
 * FDPASS_MAX_FDS. The fds received (close-on-exec) are in fds, *nfds of
 * them; on an error none is left open. */
ssize_t fdpass_recv(int sk, void *buf, size_t len, int *fds, size_t *nfds);
/* Connect to the SOCK_STREAM Unix socket at path and send one message with
 * fd (as runc sends a terminal's master to its --console-socket). 0, or
 * -errno. */
int fdpass_send_to(const char *path, const void *buf, size_t len, int fd);

#endif
