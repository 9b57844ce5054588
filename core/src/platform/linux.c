/* Linux: dup3, the file system's magic number, named semaphores in /dev/shm, renameat2,
 * getrandom, sem_clockwait. */
#define _GNU_SOURCE /* dup3, syscall numbers, sem_clockwait */
#include "../private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0) /* from <linux/fs.h> */
#endif

int pl_platform_dup_cloexec(int oldfd, int newfd) {
  int r;
  do
    r = dup3(oldfd, newfd, O_CLOEXEC);
  while (r < 0 && errno == EINTR);
  return r;
}

int pl_platform_network_file(int fd) {
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
}

int pl_platform_sem_path(const char *name, char *path, size_t cap) {
  /* glibc (since 2.34 always) and musl: SHMDIR "sem." and the name without its '/' */
  int n = snprintf(path, cap, "/dev/shm/sem.%s", name[0] == '/' ? name + 1 : name);
  if (n >= 0 && (size_t)n < cap) return 0;
  errno = ENAMETOOLONG;
  return -1;
}

#if PL_HAVE_SEM_CLOCKWAIT
int pl_platform_sem_clockwait(sem_t *sem, const struct timespec *abs) {
  return sem_clockwait(sem, CLOCK_MONOTONIC, abs);
}
#endif

int pl_platform_rename_noreplace(int dirfd, const char *from, const char *to) {
#ifdef SYS_renameat2
  /* The system call itself: renameat2() is missing from C libraries older than glibc 2.28. */
  return (int)syscall(SYS_renameat2, dirfd, from, dirfd, to, RENAME_NOREPLACE);
#else
  (void)dirfd;
  (void)from;
  (void)to;
  errno = ENOSYS;
  return -1;
#endif
}

long pl_platform_getrandom(void *buf, size_t len) {
#ifdef SYS_getrandom
  /* The system call itself: getrandom() is missing from C libraries older than the call. */
  return syscall(SYS_getrandom, buf, len, 0);
#else
  (void)buf;
  (void)len;
  errno = ENOSYS;
  return -1;
#endif
}
