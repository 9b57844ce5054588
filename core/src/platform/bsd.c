/* macOS and the BSDs: how the file system's locality is told, and where dup3 exists. */
#include "../private.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#if defined(__NetBSD__)
#include <sys/statvfs.h>
#else
#include <sys/param.h>
#include <sys/mount.h>
#endif

#include "platform.h"

int pl_platform_dup_cloexec(int oldfd, int newfd) {
  int r;
#if defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
  do
    r = dup3(oldfd, newfd, O_CLOEXEC);
  while (r < 0 && errno == EINTR);
#else /* macOS, DragonFly */
  do
    r = dup2(oldfd, newfd);
  while (r < 0 && errno == EINTR);
  if (r >= 0 && fcntl(r, F_SETFD, FD_CLOEXEC) != 0) return -1;
#endif
  return r;
}

int pl_platform_network_file(int fd) {
#if defined(__NetBSD__)
  struct statvfs s;
  if (fstatvfs(fd, &s) != 0) return -1;
  return !(s.f_flag & ST_LOCAL);
#else
  struct statfs s;
  if (fstatfs(fd, &s) != 0) return -1;
  return !(s.f_flags & MNT_LOCAL);
#endif
}
