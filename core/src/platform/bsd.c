/* macOS and the BSDs: how the file system's locality is told. */
#include "../private.h"

#if defined(__NetBSD__)
#include <sys/statvfs.h>
#else
#include <sys/param.h>
#include <sys/mount.h>
#endif

#include "platform.h"

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
