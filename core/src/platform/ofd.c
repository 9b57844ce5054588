/* Open-file-description locks, wherever the system has them (Linux since 3.15, illumos):
 * a feature of the C library's headers, not of one system. */
#define _GNU_SOURCE /* F_OFD_SETLK in glibc */
#include "../private.h"

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
  while (r != 0 && errno == EINTR && (block == PL_BLOCK || type == F_UNLCK));
  return r;
#else
  (void)fd;
  (void)type;
  (void)block;
  errno = ENOTSUP;
  return -1;
#endif
}
