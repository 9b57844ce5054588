/* TemporaryFileLock: a Lock whose file exists only while it is held. Its mechanism also
 * removes a PidFileLock's sidecar. */
#include "private.h"

#include <errno.h>
#include <unistd.h>

/* 1 when the lock file's path still names the file the lock was taken on, 0 when not, -1
 * with errno. */
static int pl_names_held_file(const portalock_lock_t *lock) {
  struct stat st;
  if (lstat(portalock_lock_lock_filename(lock), &st) != 0) return errno == ENOENT ? 0 : -1;
  dev_t dev;
  ino_t ino;
  pl_lock_held_file(lock, &dev, &ino);
  return st.st_dev == dev && st.st_ino == ino;
}

/* A previous holder unlinks the file before unlocking it, so a waiter can end up holding a
 * lock on an unlinked inode while a newcomer locks a fresh file: re-check, and start over. */
portalock_status pl_temporary_after_lock(portalock_lock_t *lock, int fd, int *replaced,
                                         portalock_error *err) {
  (void)fd;
  int same = pl_names_held_file(lock);
  if (same < 0) return pl_fail_sys(err, errno, "lstat", portalock_lock_lock_filename(lock));
  *replaced = !same;
  return PORTALOCK_OK;
}

/* Unlinked while still locked, so no newcomer can lock the old inode after we drop it. */
portalock_status pl_temporary_before_unlock(portalock_lock_t *lock, int fd, portalock_error *err) {
  (void)fd;
  if (pl_names_held_file(lock) == 1 && unlink(portalock_lock_lock_filename(lock)) != 0 &&
      errno != ENOENT)
    return pl_fail_sys(err, errno, "unlink", portalock_lock_lock_filename(lock));
  return PORTALOCK_OK;
}

const pl_kind pl_temporary_kind = {
    .name = "TemporaryFileLock",
    .default_filename = ".lock",
    .mode = "w",
    .exclusive_only = 1,
    .default_fail_when_locked = 1,
    .after_lock = pl_temporary_after_lock,
    .before_unlock = pl_temporary_before_unlock,
};

portalock_status portalock_temporary_file_lock_new(portalock_lock_t **out, const char *filename,
                                                   const portalock_lock_options *opts,
                                                   portalock_error *err) {
  return pl_lock_create(out, &pl_temporary_kind, filename, opts, err);
}
