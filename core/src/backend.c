/* The low level: flags, the three kernel lock backends, portalock_lock and portalock_unlock. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "platform/platform.h"

#define PL_FLAGS_RULE                                                                              \
  "must be exactly one of LOCK_SH (1) or LOCK_EX (2), optionally with LOCK_NB (4)"

const char *pl_flags_problem(int flags) {
  int type = flags & (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX);
  if (flags & PORTALOCK_LOCK_UN) return PL_FLAGS_RULE "; LOCK_UN belongs to unlock";
  if ((flags & ~(PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB)) != 0 ||
      (type != PORTALOCK_LOCK_SH && type != PORTALOCK_LOCK_EX))
    return PL_FLAGS_RULE;
  return NULL;
}

const char *portalock_backend_name(portalock_backend backend) {
  switch (backend) {
  case PORTALOCK_BACKEND_FLOCK:
    return "flock";
  case PORTALOCK_BACKEND_OFD:
    return "ofd";
  case PORTALOCK_BACKEND_POSIX:
    return "posix";
  }
  return NULL;
}

portalock_status pl_check_backend(portalock_backend backend, const char *what,
                                  portalock_error *err) {
  if (portalock_backend_name(backend) != NULL) return PORTALOCK_OK;
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                 "bad %s (%d): must be flock (0), ofd (1) or posix (2)", what, (int)backend);
}

static int pl_flock(int fd, int op, int block) {
  int how = op == PORTALOCK_LOCK_SH ? LOCK_SH : op == PORTALOCK_LOCK_EX ? LOCK_EX : LOCK_UN;
  int r;
  do
    r = flock(fd, how | (block ? 0 : LOCK_NB));
  while (r != 0 && errno == EINTR && block != PL_BLOCK_UNTIL_SIGNAL);
  return r;
}

static int pl_posix(int fd, short type, int block) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file, however it grows */
  int r;
  do
    r = fcntl(fd, block ? F_SETLKW : F_SETLK, &fl);
  while (r != 0 && errno == EINTR && block != PL_BLOCK_UNTIL_SIGNAL);
  return r;
}

int pl_backend_apply(int fd, int op, int block, portalock_backend backend) {
  short type = op == PORTALOCK_LOCK_SH ? F_RDLCK : op == PORTALOCK_LOCK_EX ? F_WRLCK : F_UNLCK;
  switch (backend) {
  case PORTALOCK_BACKEND_FLOCK:
    return pl_flock(fd, op, block);
  case PORTALOCK_BACKEND_OFD:
    return pl_platform_ofd_lock(fd, type, block);
  case PORTALOCK_BACKEND_POSIX:
    return pl_posix(fd, type, block);
  }
  errno = EINVAL;
  return -1;
}

int pl_backend_contended(portalock_backend backend, int errnum) {
  if (errnum == EAGAIN || errnum == EWOULDBLOCK) return 1;
  /* fcntl(2) may say EACCES for a conflicting lock; flock(2) never does. */
  return backend != PORTALOCK_BACKEND_FLOCK && errnum == EACCES;
}

static portalock_status pl_lock_failed(portalock_error *err, int fd, int errnum, int contended,
                                       int lost) {
  char why[128];
  pl_strerror(errnum, why, sizeof why);
  portalock_status status = contended ? PORTALOCK_ALREADY_LOCKED : PORTALOCK_LOCK_EXCEPTION;
  pl_fail(err, status, errnum, NULL, "lock fd %d: %s%s", fd, why,
          lost ? " (the failed shared<->exclusive conversion left the file unlocked)" : "");
  if (err != NULL) err->lost = lost;
  return status;
}

portalock_status portalock_lock(int fd, int flags, portalock_backend backend,
                                portalock_error *err) {
  pl_clear(err);
  const char *problem = pl_flags_problem(flags);
  if (problem != NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad flags (%d): %s", flags, problem);
  portalock_status status = pl_check_backend(backend, "backend", err);
  if (status != PORTALOCK_OK) return status;
  int type = flags & (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX);
  pl_held h = {.fd = fd, .backend = backend, .type = type, .detach_at_fork = 0};
  if (backend == PORTALOCK_BACKEND_POSIX) {
    h.pid = pl_self(); /* a child does not inherit posix locks: its copy of the entry is stale */
    /* Only a posix lock needs the file's identity: to refuse a second descriptor of it. */
    struct stat st;
    if (fstat(fd, &st) != 0) return pl_lock_failed(err, fd, errno, 0, 0);
    int other = pl_held_posix_fd(st.st_dev, st.st_ino, fd);
    if (other >= 0)
      return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EDEADLK, NULL,
                     "lock fd %d: this process already holds a posix lock on the same file "
                     "through fd %d (closing either descriptor would drop both)",
                     fd, other);
    h.identified = 1;
    h.dev = st.st_dev;
    h.ino = st.st_ino;
  }
  if (pl_backend_apply(fd, type, !(flags & PORTALOCK_LOCK_NB), backend) != 0) {
    int errnum = errno;
    /* flock(2) drops the old lock before it tries the new one. */
    int held = backend == PORTALOCK_BACKEND_FLOCK ? pl_held_type(fd, backend) : 0;
    int lost = held != 0 && held != type;
    if (lost) pl_held_forget(fd, backend);
    return pl_lock_failed(err, fd, errnum, pl_backend_contended(backend, errnum), lost);
  }
  if (!pl_held_record(&h)) {
    pl_backend_apply(fd, PORTALOCK_LOCK_UN, 0, backend);
    return pl_lock_failed(err, fd, ENOMEM, 0, 0);
  }
  return PORTALOCK_OK;
}

portalock_status portalock_unlock(int fd, portalock_backend backend, portalock_error *err) {
  pl_clear(err);
  portalock_status status = pl_check_backend(backend, "backend", err);
  if (status != PORTALOCK_OK) return status;
  pl_held_forget(fd, backend);
  if (pl_backend_apply(fd, PORTALOCK_LOCK_UN, 0, backend) != 0) {
    int errnum = errno;
    char why[128];
    pl_strerror(errnum, why, sizeof why);
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, NULL, "unlock fd %d: %s", fd, why);
  }
  return PORTALOCK_OK;
}
