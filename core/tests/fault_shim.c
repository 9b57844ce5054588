/* An LD_PRELOAD shim for core.faults: makes flock(2) fail the way this machine cannot.
 * PORTALOCK_FAULT_FLOCK=ENOLCK: every call fails with ENOLCK (a lock table that is full, or a
 * network mount without locks). PORTALOCK_FAULT_FLOCK=EINTR: every other call fails with
 * EINTR, as when a signal arrives. PORTALOCK_FAULT_FLOCK=RENAME: the next call first renames
 * PORTALOCK_FAULT_RENAME_FROM over PORTALOCK_FAULT_RENAME_TO, as another process replacing the
 * file between the caller's open and its lock would (once; the fault then ends itself).
 * Unset: the real flock.
 * PORTALOCK_FAULT_FSYNC=ENOSPC: every fsync(2) fails with ENOSPC (a full disk);
 * PORTALOCK_FAULT_FSYNC=DIR: fsync of a directory fails with EIO, of a file it works.
 * PORTALOCK_FAULT_FSTATFS=NFS: fstatfs(2) says every file is on an NFS mount (Linux, 64-bit:
 * where _FILE_OFFSET_BITS=64 changes fstatfs to fstatfs64, the fault is not injected).
 * PORTALOCK_FAULT_SEM_OPEN=ELSEWHERE: a semaphore sem_open creates has its file moved from
 * /dev/shm/sem.NAME to /dev/shm/elsewhere.NAME, as if the C library kept it on another tmpfs
 * (glibc before 2.34 without /dev/shm).
 * PORTALOCK_FAULT_SIGNALFD=EMFILE: signalfd(2) fails with EMFILE (Linux; as on a system that
 * has no signalfd, a watching command run then looks at its descriptor between short waits). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/signalfd.h>
#include <sys/vfs.h>
#endif

int flock(int fd, int operation) {
  static int (*real_flock)(int, int);
  static unsigned calls;
  if (real_flock == NULL) real_flock = (int (*)(int, int))dlsym(RTLD_NEXT, "flock");
  const char *fault = getenv("PORTALOCK_FAULT_FLOCK");
  if (fault != NULL && strcmp(fault, "ENOLCK") == 0) {
    errno = ENOLCK;
    return -1;
  }
  if (fault != NULL && strcmp(fault, "EINTR") == 0 && calls++ % 2 == 0) {
    errno = EINTR;
    return -1;
  }
  if (fault != NULL && strcmp(fault, "RENAME") == 0) {
    const char *from = getenv("PORTALOCK_FAULT_RENAME_FROM");
    const char *to = getenv("PORTALOCK_FAULT_RENAME_TO");
    if (from != NULL && to != NULL) rename(from, to);
    unsetenv("PORTALOCK_FAULT_FLOCK");
  }
  return real_flock(fd, operation);
}

int fsync(int fd) {
  static int (*real_fsync)(int);
  if (real_fsync == NULL) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  const char *fault = getenv("PORTALOCK_FAULT_FSYNC");
  struct stat st;
  if (fault != NULL && strcmp(fault, "ENOSPC") == 0) {
    errno = ENOSPC;
    return -1;
  }
  if (fault != NULL && strcmp(fault, "DIR") == 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    errno = EIO;
    return -1;
  }
  return real_fsync(fd);
}

#ifdef __linux__
int fstatfs(int fd, struct statfs *buf) {
  static int (*real_fstatfs)(int, struct statfs *);
  if (real_fstatfs == NULL)
    real_fstatfs = (int (*)(int, struct statfs *))dlsym(RTLD_NEXT, "fstatfs");
  const char *fault = getenv("PORTALOCK_FAULT_FSTATFS");
  int r = real_fstatfs(fd, buf);
  if (r == 0 && fault != NULL && strcmp(fault, "NFS") == 0) buf->f_type = 0x6969; /* NFS */
  return r;
}

int signalfd(int fd, const sigset_t *mask, int flags) {
  static int (*real_signalfd)(int, const sigset_t *, int);
  if (real_signalfd == NULL)
    real_signalfd = (int (*)(int, const sigset_t *, int))dlsym(RTLD_NEXT, "signalfd");
  const char *fault = getenv("PORTALOCK_FAULT_SIGNALFD");
  if (fault != NULL && strcmp(fault, "EMFILE") == 0) {
    errno = EMFILE;
    return -1;
  }
  return real_signalfd(fd, mask, flags);
}
#endif

sem_t *sem_open(const char *name, int oflag, ...) {
  static sem_t *(*real_sem_open)(const char *, int, ...);
  if (real_sem_open == NULL)
    real_sem_open = (sem_t * (*)(const char *, int, ...)) dlsym(RTLD_NEXT, "sem_open");
  mode_t mode = 0;
  unsigned value = 0;
  if (oflag & O_CREAT) {
    va_list ap;
    va_start(ap, oflag);
    mode = (mode_t)va_arg(ap, int);
    value = va_arg(ap, unsigned);
    va_end(ap);
  }
  sem_t *sem = real_sem_open(name, oflag, mode, value);
  const char *fault = getenv("PORTALOCK_FAULT_SEM_OPEN");
  if (sem != SEM_FAILED && (oflag & O_CREAT) && fault != NULL && strcmp(fault, "ELSEWHERE") == 0) {
    char from[512], to[512];
    const char *bare = name[0] == '/' ? name + 1 : name;
    snprintf(from, sizeof from, "/dev/shm/sem.%s", bare);
    snprintf(to, sizeof to, "/dev/shm/elsewhere.%s", bare);
    rename(from, to);
  }
  return sem;
}
