/* System-specific code: OFD locks and dup3 exist on Linux (and dup3 on some BSDs) only;
 * the file system's type is told differently by Linux and the BSDs; only Linux keeps named
 * semaphores in files of its own. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* F_OFD_SETLK, dup3 */
#endif
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/vfs.h>
#elif defined(__NetBSD__)
#include <sys/statvfs.h>
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
#include <sys/param.h>
#include <sys/mount.h>
#endif

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

int pl_platform_network_file(int fd) {
#if defined(__linux__)
  /* The magic numbers of linux/magic.h (which not every libc installs). */
  static const unsigned long network[] = {
      0x6969,     /* NFS */
      0x517B,     /* SMB */
      0xFF534D42, /* CIFS */
      0xFE534D42, /* SMB2 */
      0x00C36400, /* Ceph */
      0x5346414F, /* AFS */
      0x6B414653, /* kAFS */
      0x01021997, /* 9P */
  };
  struct statfs s;
  if (fstatfs(fd, &s) != 0) return -1;
  for (size_t i = 0; i < sizeof network / sizeof network[0]; i++)
    if ((unsigned long)s.f_type == network[i]) return 1;
  return 0;
#elif defined(__NetBSD__)
  struct statvfs s;
  if (fstatvfs(fd, &s) != 0) return -1;
  return !(s.f_flag & ST_LOCAL);
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
  struct statfs s;
  if (fstatfs(fd, &s) != 0) return -1;
  return !(s.f_flags & MNT_LOCAL);
#else
  (void)fd;
  return 0;
#endif
}

int pl_platform_sem_path(const char *name, char *path, size_t cap) {
#if defined(__linux__)
  /* glibc (since 2.34 always) and musl: SHMDIR "sem." and the name without its '/' */
  int n = snprintf(path, cap, "/dev/shm/sem.%s", name[0] == '/' ? name + 1 : name);
  if (n >= 0 && (size_t)n < cap) return 0;
  errno = ENAMETOOLONG;
  return -1;
#else
  (void)name;
  (void)path;
  (void)cap;
  errno = ENOTSUP;
  return -1;
#endif
}
