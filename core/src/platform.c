/* System-specific code: OFD locks and dup3 exist on Linux (and dup3 on some BSDs) only. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* F_OFD_SETLK, dup3 */
#endif
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "platform.h"

int pl_platform_ofd_lock(int fd, short type, int block) {
#if defined(F_OFD_SETLK) && defined(F_OFD_SETLKW)
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file; l_pid must be 0 */
  int r;
  do
    r = fcntl(fd, block ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  while (r != 0 && errno == EINTR && (block || type == F_UNLCK));
  return r;
#else
  (void)fd;
  (void)type;
  (void)block;
  errno = ENOTSUP;
  return -1;
#endif
}

int pl_platform_dup_cloexec(int oldfd, int newfd) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
  int r;
  do
    r = dup3(oldfd, newfd, O_CLOEXEC);
  while (r < 0 && errno == EINTR);
  return r;
#else
  int r;
  do
    r = dup2(oldfd, newfd);
  while (r < 0 && errno == EINTR);
  if (r >= 0 && fcntl(r, F_SETFD, FD_CLOEXEC) != 0) return -1;
  return r;
#endif
}
