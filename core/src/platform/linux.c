/* Linux: the file system's magic number, named semaphores in /dev/shm, renameat2, getrandom,
 * sem_clockwait, eventfd, signalfd, inotify, /proc/locks. */
#define _GNU_SOURCE /* syscall numbers, sem_clockwait */
#include "../private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

#define PL_LOCKS_FILE "/proc/locks"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0) /* from <linux/fs.h> */
#endif

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

int pl_platform_event_open(int *read_fd, int *write_fd) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return -1;
  *read_fd = *write_fd = fd;
  return 0;
}

int pl_platform_signal_open(const sigset_t *signals) {
  return signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK);
}

int pl_platform_watch_open(void) {
  return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int pl_platform_watch_add(int watch_fd, const char *path) {
  /* Closes end holds; attribute, move and delete events mean the path may name another file
   * now, which the next attempt checks. */
  uint32_t mask = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF |
                  IN_DONT_FOLLOW;
  return inotify_add_watch(watch_fd, path, mask);
}

void pl_platform_watch_remove(int watch_fd, int watch) {
  /* Unlike closing the instance, this returns at once (the kernel frees the mark later). */
  inotify_rm_watch(watch_fd, watch);
}

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

static portalock_status pl_locks_unreadable(portalock_error *err, int errnum, const char *path) {
  char why[128];
  pl_strerror(errnum, why, sizeof why);
  /* A missing /proc/locks: no procfs, or not Linux underneath. */
  int reported = errnum == ENOENT || errnum == ENOTDIR ? ENOSYS : errnum;
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, reported, path,
                 "lock holders of '%s': cannot read " PL_LOCKS_FILE
                 " (lock holders are only known on Linux): %s",
                 path, why);
}

portalock_status pl_platform_lock_holders(const char *path, const struct stat *st,
                                          portalock_holder *out, size_t cap, size_t *count,
                                          portalock_error *err) {
  int fd = open(PL_LOCKS_FILE, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return pl_locks_unreadable(err, errno, path);
  FILE *f = fdopen(fd, "r");
  if (f == NULL) {
    int errnum = errno;
    close(fd);
    return pl_locks_unreadable(err, errnum, path);
  }

  unsigned long long want_major = (unsigned long long)major(st->st_dev);
  unsigned long long want_minor = (unsigned long long)minor(st->st_dev);
  unsigned long long want_ino = (unsigned long long)st->st_ino;
  char *line = NULL;
  size_t line_cap = 0;
  size_t found = 0;
  int errnum = 0;
  for (;;) {
    errno = 0;
    if (getline(&line, &line_cap, f) < 0) {
      errnum = errno; /* 0 at the end of the file */
      break;
    }
    pl_lock_line parsed;
    if (pl_parse_line(line, &parsed) != 0) continue;
    if (parsed.major != want_major || parsed.minor != want_minor || parsed.ino != want_ino)
      continue;
    if (found < cap) out[found] = parsed.holder;
    found++;
  }
  int failed = ferror(f) || !feof(f); /* getline may fail (ENOMEM) without ferror */
  free(line);
  fclose(f);
  if (failed) return pl_locks_unreadable(err, errnum != 0 ? errnum : EIO, path);
  *count = found;
  return PORTALOCK_OK;
}
