/* Lock: a kernel lock on a named file, taken one step at a time. TemporaryFileLock and
 * PidFileLock are Locks whose kind adds work after locking and before unlocking. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/platform.h"

static const pl_kind pl_plain_kind = {.name = "Lock"};

/* How long a lock counts as crowded after a wake-up lost the race to another waiter. */
#define PL_CROWDED_SECONDS 1.0

/* The absolute form of `filename`: joined to the working directory, nothing else. */
static char *pl_absolute(const char *filename, const char *suffix) {
  size_t cap = 256;
  char *cwd = NULL;
  if (filename[0] != '/') {
    for (;;) {
      char *grown = realloc(cwd, cap);
      if (grown == NULL) {
        free(cwd);
        errno = ENOMEM;
        return NULL;
      }
      cwd = grown;
      if (getcwd(cwd, cap) != NULL) break;
      if (errno != ERANGE) {
        free(cwd);
        return NULL;
      }
      cap *= 2;
    }
  }
  const char *sep = cwd == NULL || cwd[strlen(cwd) - 1] == '/' ? "" : "/";
  const char *dir = cwd == NULL ? "" : cwd;
  size_t len = strlen(dir) + strlen(sep) + strlen(filename) + strlen(suffix) + 1;
  char *path = malloc(len);
  if (path != NULL)
    snprintf(path, len, "%s%s%s%s", dir, sep, filename, suffix);
  else
    errno = ENOMEM;
  free(cwd);
  return path;
}

portalock_status pl_lock_create(portalock_lock_t **out, const pl_kind *kind, const char *filename,
                                const portalock_lock_options *opts, portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  portalock_lock_options o;
  if (opts != NULL) {
    o = *opts;
  } else {
    portalock_lock_options_init(&o);
    o.fail_when_locked = kind->default_fail_when_locked;
  }
  /* A kind with a fixed mode ignores the options' mode: the struct cannot tell a mode the
   * caller chose from the default. */
  if (kind->mode != NULL) o.mode = kind->mode;
  if (filename == NULL) filename = kind->default_filename;
  if (filename == NULL || filename[0] == '\0')
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'filename' (%s): must be a non-empty path",
                   filename == NULL ? "NULL" : "\"\"");
  /* Before the other checks: with a forced mode, LOCK_SH would otherwise be blamed on it. */
  if (kind->exclusive_only && !(o.flags & PORTALOCK_LOCK_EX))
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'flags' (%d): %s is exclusive only (LOCK_EX)", o.flags, kind->name);
  pl_mode mode;
  portalock_status status = pl_check_options(&o, &mode, err);
  if (status != PORTALOCK_OK) return status;
  portalock_lock_t *lock = calloc(1, sizeof *lock);
  if (lock == NULL) return pl_fail_sys(err, ENOMEM, "new lock", filename);
  lock->kind = kind;
  lock->fd = -1;
  lock->fs_remote = -1;
  lock->waiting.file_fd = -1;
  lock->waiting.watch_fd = -1;
  lock->waiting.watch = -1;
  lock->mode = mode;
  snprintf(lock->mode_buf, sizeof lock->mode_buf, "%s", o.mode);
  lock->opts = o;
  lock->opts.mode = lock->mode_buf;
  lock->filename = pl_absolute(filename, "");
  lock->lock_filename = lock->filename;
  if (lock->filename != NULL && kind->lock_suffix != NULL)
    lock->lock_filename = pl_absolute(filename, kind->lock_suffix);
  if (lock->filename == NULL || lock->lock_filename == NULL) {
    int errnum = errno;
    portalock_lock_free(lock);
    return pl_fail_sys(err, errnum, "getcwd for", filename);
  }
  *out = lock;
  return PORTALOCK_OK;
}

portalock_status portalock_lock_new(portalock_lock_t **out, const char *filename,
                                    const portalock_lock_options *opts, portalock_error *err) {
  return pl_lock_create(out, &pl_plain_kind, filename, opts, err);
}

/* Ends this wait's watch; the instance stays until the wait ends. */
static void pl_lock_unwatch(pl_waiting *w) {
  if (w->watch >= 0) pl_watch_remove(w->watch_fd, w->watch);
  w->watch = -1;
}

void portalock_lock_wait_done(portalock_lock_t *lock) {
  pl_waiting *w = &lock->waiting;
  if (w->file_fd >= 0) {
    pl_held_remove_serial(w->serial);
    close(w->file_fd);
  }
  if (w->watch_fd >= 0) close(w->watch_fd);
  *w = (pl_waiting){.file_fd = -1, .watch_fd = -1, .watch = -1};
}

/* In a forked child the handle's state is its parent's: forget it, closing only the copies
 * of the descriptors the handle owns (the fork handler pointed a held one at /dev/null). */
static void pl_lock_drop_foreign(portalock_lock_t *lock) {
  pid_t self = pl_self();
  pl_waiting *w = &lock->waiting;
  /* The parent's wait: only this process's copies of its descriptors are closed. */
  if ((w->file_fd >= 0 || w->watch_fd >= 0) && w->pid != self) portalock_lock_wait_done(lock);
  if (lock->fd < 0 || lock->holder == self) return;
  if (!lock->handed_over) close(lock->fd);
  lock->fd = -1;
  lock->handed_over = 0;
}

/* Whether the lock file, open as `fd` on device `dev`, is on a network file system: asked once
 * per device and handle, since on NFS each question is a round trip to the server. A failed
 * question counts as remote (the wait then polls) and is asked again next time. */
static int pl_lock_remote(portalock_lock_t *lock, int fd, dev_t dev) {
  if (lock->fs_remote >= 0 && lock->fs_dev == dev) return lock->fs_remote;
  int remote = pl_platform_network_file(fd);
  if (remote < 0) return 1;
  lock->fs_dev = dev;
  lock->fs_remote = remote;
  return remote;
}

/* Keeps the contended lock file open for the next attempt (a copy when `fd` is a target
 * descriptor, which belongs to its stream). Posix locks keep nothing: closing any descriptor
 * of the file would drop the other posix locks this process holds on it. */
static void pl_lock_keep(portalock_lock_t *lock, int fd, int owned, const struct stat *st) {
  pl_waiting *w = &lock->waiting;
  int kept = -1;
  if (lock->opts.backend != PORTALOCK_BACKEND_POSIX)
    kept = owned ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  else if (owned)
    close(fd);
  if (kept < 0) return;
  pl_held h = {.fd = kept,
               .identified = 1,
               .dev = st->st_dev,
               .ino = st->st_ino,
               .backend = lock->opts.backend,
               .type = 0,
               .pid = pl_self(),
               .detach_at_fork = 1};
  w->serial = pl_held_add(&h);
  if (w->serial == 0) {
    close(kept);
    return;
  }
  w->file_fd = kept;
  w->remote = pl_lock_remote(lock, kept, st->st_dev);
  w->dev = st->st_dev;
  w->ino = st->st_ino;
  w->pid = h.pid;
}

/* Takes the lock file kept by the last contended attempt, when the path still names it;
 * with `target_fd` >= 0 it is moved there. Returns 1 with *fd_out and *st filled, else 0. */
static int pl_lock_reuse(portalock_lock_t *lock, int target_fd, int *fd_out, struct stat *st) {
  pl_waiting *w = &lock->waiting;
  int fd = w->file_fd;
  if (fd < 0) return 0;
  w->file_fd = -1;
  pl_held_remove_serial(w->serial);
  if (lstat(lock->lock_filename, st) != 0 || st->st_dev != w->dev || st->st_ino != w->ino) {
    close(fd);
    pl_lock_unwatch(w); /* it watches the old file: the next contention watches the new one */
    return 0;
  }
  if (target_fd >= 0) {
    int moved = pl_platform_dup_cloexec(fd, target_fd);
    close(fd);
    if (moved < 0) return 0;
    fd = target_fd;
  }
  *fd_out = fd;
  return 1;
}

static int pl_lock_crowded(const portalock_lock_t *lock) {
  return lock->crowded_until > 0 && portalock_monotonic() < lock->crowded_until;
}

/* Whether this wait queues in the kernel, not on a watch: a wait with no end, or a crowded
 * lock, on a local file system whose kernel can queue it. */
static int pl_lock_queues(const portalock_lock_t *lock) {
  const pl_waiting *w = &lock->waiting;
  portalock_backend backend = lock->opts.backend;
  if (w->remote) return 0;
  if (w->forever) return pl_kernel_queue_forever_available(backend);
  return pl_lock_crowded(lock) && pl_kernel_queue_available(backend);
}

/* Starts watching the lock file for this wait, unless the wait does without (posix locks,
 * whose attempts close the file each time; a wait that queues in the kernel).
 * Returns 1 when a watch was just made: a release before it went unseen. */
static int pl_lock_watch(portalock_lock_t *lock) {
  pl_waiting *w = &lock->waiting;
  if (w->watch >= 0 || w->unwatched || lock->unwatched ||
      lock->opts.backend == PORTALOCK_BACKEND_POSIX || pl_lock_queues(lock))
    return 0;
  if (w->watch_fd < 0) {
    w->watch_fd = pl_watch_open();
    w->pid = pl_self();
  }
  if (w->watch_fd >= 0) {
    pl_watch_drain(w->watch_fd); /* what a watch removed earlier in this wait left */
    w->watch = pl_watch_add(w->watch_fd, lock->lock_filename);
    if (w->watch < 0) pl_count(PL_UNWATCHED);
  }
  w->unwatched = w->watch < 0;
  return !w->unwatched;
}

static portalock_status pl_contended(portalock_lock_t *lock, int errnum, portalock_error *err) {
  pl_fail(err, PORTALOCK_CONTENDED, errnum, lock->lock_filename, "'%s': locked by another holder",
          lock->lock_filename);
  if (lock->kind->on_contended != NULL) lock->kind->on_contended(lock, err);
  return PORTALOCK_CONTENDED;
}

/* Everything after the kernel lock is taken on `fd`. On failure or replacement the caller
 * unlocks and closes; the held-table entry is already gone. */
static portalock_status pl_lock_finish(portalock_lock_t *lock, int fd, const struct stat *st,
                                       int *replaced, portalock_error *err) {
  const portalock_lock_options *o = &lock->opts;
  pl_held h = {.fd = fd,
               .identified = 1,
               .dev = st->st_dev,
               .ino = st->st_ino,
               .backend = o->backend,
               .type = o->flags & (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX),
               .pid = pl_self(),
               .detach_at_fork = 1};
  /* Registered first, so that a fork by another thread from here on detaches it. */
  uint64_t serial = pl_held_add(&h);
  if (serial == 0) return pl_fail_sys(err, ENOMEM, "lock", lock->lock_filename);
  lock->dev = st->st_dev;
  lock->ino = st->st_ino;
  portalock_status status = PORTALOCK_OK;
  if (lock->kind->after_lock != NULL) status = lock->kind->after_lock(lock, fd, replaced, err);
  if (status == PORTALOCK_OK && !*replaced && lock->mode.truncate && pl_lockfile_truncate(fd) != 0)
    status = pl_fail_sys(err, errno, "truncate", lock->lock_filename);
  if (status != PORTALOCK_OK || *replaced) {
    pl_held_remove_serial(serial);
    return status;
  }
  lock->fd = fd;
  lock->holder = pl_self();
  lock->serial = serial;
  return PORTALOCK_OK;
}

/* Opens the lock file; with `target_fd` >= 0 its descriptor is moved onto target_fd. */
static portalock_status pl_lock_open(portalock_lock_t *lock, int target_fd, int *fd_out,
                                     struct stat *st, portalock_error *err) {
  const portalock_lock_options *o = &lock->opts;
  if (o->backend == PORTALOCK_BACKEND_POSIX) {
    portalock_status status = pl_lockfile_posix_check(lock->lock_filename, err);
    if (status != PORTALOCK_OK) return status;
  }
  int fd = -1;
  portalock_status status =
      pl_lockfile_open(lock->lock_filename, lock->mode.oflags, o->perm, &fd, st, err);
  if (status != PORTALOCK_OK || target_fd < 0) {
    *fd_out = fd;
    return status;
  }
  int moved = pl_platform_dup_cloexec(fd, target_fd);
  int errnum = errno;
  close(fd);
  if (moved < 0) return pl_fail_sys(err, errnum, "move descriptor of", lock->lock_filename);
  *fd_out = target_fd;
  return PORTALOCK_OK;
}

/* One attempt: OK, CONTENDED (the file kept for the next attempt), or a failure. */
static portalock_status pl_lock_attempt(portalock_lock_t *lock, int target_fd,
                                        portalock_error *err) {
  const portalock_lock_options *o = &lock->opts;
  int type = o->flags & (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX);
  for (int round = 0; round < PL_ROUNDS; round++) {
    int fd = -1;
    struct stat st;
    portalock_status status = PORTALOCK_OK;
    if (!pl_lock_reuse(lock, target_fd, &fd, &st))
      status = pl_lock_open(lock, target_fd, &fd, &st, err);
    if (status != PORTALOCK_OK) return status;
    /* A target descriptor belongs to its stream: whatever happens, its owner closes it. */
    int owned = fd != target_fd;
    /* Never blocks in the kernel: waiting belongs to the loop that honours the timeout. */
    if (pl_backend_apply(fd, type, 0, o->backend) != 0) {
      int errnum = errno;
      if (pl_backend_contended(o->backend, errnum)) {
        pl_lock_keep(lock, fd, owned, &st);
        return pl_contended(lock, errnum, err);
      }
      if (owned) close(fd);
      return pl_fail_sys(err, errnum, "lock", lock->lock_filename);
    }
    int replaced = 0;
    status = pl_lock_finish(lock, fd, &st, &replaced, err);
    if (status == PORTALOCK_OK && !replaced) {
      lock->handed_over = !owned;
      return PORTALOCK_OK;
    }
    pl_backend_apply(fd, PORTALOCK_LOCK_UN, 0, o->backend);
    if (owned) close(fd);
    if (status != PORTALOCK_OK) return status;
  }
  /* The file kept being replaced under us: another holder is busy with it. */
  return pl_contended(lock, 0, err);
}

portalock_status portalock_lock_try_onto(portalock_lock_t *lock, int target_fd,
                                         portalock_wait *wait, portalock_error *err) {
  pl_clear(err);
  pl_lock_drop_foreign(lock);
  if (lock->fd >= 0) return PORTALOCK_OK;
  pl_waiting *w = &lock->waiting;
  /* Drained before the attempt, so that a release from here on wakes the next wait. */
  if (w->watch >= 0) pl_watch_drain(w->watch_fd);
  int woke = w->woke;
  w->woke = 0;
  portalock_status status = pl_lock_attempt(lock, target_fd, err);
  if (status == PORTALOCK_CONTENDED && pl_lock_watch(lock))
    status = pl_lock_attempt(lock, target_fd, err);
  if (status == PORTALOCK_OK) {
    /* The watch stays until the release: closing an inotify instance waits for an RCU
     * grace period (hundreds of microseconds), which would delay every handoff. */
    return status;
  }
  if (status != PORTALOCK_CONTENDED) {
    portalock_lock_wait_done(lock);
    return status;
  }
  if (woke) {
    /* Every release wakes every watcher: among many waiters, queue in the kernel instead. */
    pl_count(PL_LOST_RACE);
    lock->crowded_until = portalock_monotonic() + PL_CROWDED_SECONDS;
    if (pl_lock_queues(lock)) pl_lock_unwatch(w);
  }
  if (wait != NULL) {
    wait->fd = w->watch >= 0 ? w->watch_fd : -1;
    wait->next_attempt = portalock_monotonic() + pl_check_period(lock->opts.check_interval);
  }
  return status;
}

int pl_lock_wait(portalock_lock_t *lock, const portalock_wait *wait, double deadline, int patient) {
  pl_lock_drop_foreign(lock);
  pl_waiting *w = &lock->waiting;
  const portalock_lock_options *o = &lock->opts;
  pl_counter woke;
  /* The kernel queue misses nothing, so a patient caller (the C loops, which have no hooks
   * to run) waits in it up to the deadline rather than re-queueing every check_interval,
   * and without a deadline in its own thread. A wait with no watch queues there too (no
   * inotify instance left), except on a network file system. */
  int type = o->flags & (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX);
  int queued = lock->fd < 0 && w->file_fd >= 0 && w->watch < 0 && !w->remote;
  if (queued && w->forever && pl_kernel_queue_forever_available(o->backend))
    woke = pl_kernel_queue_wait_forever(w->file_fd, type, o->backend, wait->next_attempt);
  else if (queued && pl_kernel_queue_available(o->backend))
    woke =
        pl_kernel_queue_wait(w->file_fd, type, o->backend, patient ? deadline : wait->next_attempt,
                             deadline, &lock->queue_stack);
  else /* a held lock's watch (kept until its release) says nothing about this wait */
    woke = pl_sleep(lock->fd < 0 && w->watch >= 0 ? w->watch_fd : -1, wait->next_attempt, deadline);
  w->woke = woke == PL_WOKE_EVENT;
  return pl_wait_result(woke);
}

portalock_status portalock_lock_try(portalock_lock_t *lock, portalock_wait *wait,
                                    portalock_error *err) {
  return portalock_lock_try_onto(lock, -1, wait, err);
}

static portalock_status pl_lock_try_cb(void *ctx, portalock_wait *wait, portalock_error *err) {
  return portalock_lock_try(ctx, wait, err);
}

int portalock_lock_wait(portalock_lock_t *lock, const portalock_wait *wait, double deadline) {
  return pl_lock_wait(lock, wait, deadline, 0);
}

static void pl_lock_end_forever(void *lock) {
  ((portalock_lock_t *)lock)->waiting.forever = 0;
}

portalock_status pl_lock_acquire_loop(portalock_lock_t *lock, const pl_waitable *waitable,
                                      void *ctx, double timeout, double check_interval,
                                      int fail_when_locked, portalock_error *err) {
  /* With no deadline to keep, the kernel's blocking lock call is the quickest wait there is;
   * a watch would only add an inotify instance to make and close, and a wake-up for every
   * release. The flag is set after pl_lock_drop_foreign, which resets a forked child's wait
   * (flag included), and cleared however the loop ends: returning, or cancelled in one of
   * its cancellation points (F_OFD_SETLKW, poll, nanosleep, open, close...). */
  pl_lock_drop_foreign(lock);
  lock->waiting.forever = isinf(timeout) && timeout > 0 && !fail_when_locked;
  portalock_status status;
  pthread_cleanup_push(pl_lock_end_forever, lock);
  status = pl_acquire_loop(waitable, ctx, timeout, check_interval, fail_when_locked, err);
  pthread_cleanup_pop(1);
  return status;
}

static int pl_lock_wait_cb(void *ctx, const portalock_wait *wait, double deadline) {
  return pl_lock_wait(ctx, wait, deadline, 1);
}

static void pl_lock_wait_done_cb(void *ctx) {
  portalock_lock_wait_done(ctx);
}

static const pl_waitable pl_lock_waitable = {pl_lock_try_cb, pl_lock_wait_cb, pl_lock_wait_done_cb};

portalock_status portalock_lock_acquire_with(portalock_lock_t *lock, double timeout,
                                             double check_interval, int fail_when_locked,
                                             portalock_error *err) {
  return pl_lock_acquire_loop(lock, &pl_lock_waitable, lock, timeout, check_interval,
                              fail_when_locked, err);
}

portalock_status portalock_lock_acquire(portalock_lock_t *lock, portalock_error *err) {
  const portalock_lock_options *o = &lock->opts;
  return portalock_lock_acquire_with(lock, o->timeout, o->check_interval, o->fail_when_locked, err);
}

portalock_status portalock_lock_release(portalock_lock_t *lock, portalock_error *err) {
  pl_clear(err);
  pl_lock_drop_foreign(lock);
  if (lock->fd < 0) return PORTALOCK_OK;
  /* Claimed first: whatever fails below, the handle no longer holds the lock. */
  int fd = lock->fd, handed_over = lock->handed_over;
  lock->fd = -1;
  lock->handed_over = 0;
  portalock_status status = PORTALOCK_OK;
  if (lock->kind->before_unlock != NULL) status = lock->kind->before_unlock(lock, fd, err);
  pl_held_remove_serial(lock->serial);
  if (pl_backend_apply(fd, PORTALOCK_LOCK_UN, 0, lock->opts.backend) != 0 && status == PORTALOCK_OK)
    status = pl_fail_sys(err, errno, "unlock", lock->lock_filename);
  if (!handed_over && close(fd) != 0 && status == PORTALOCK_OK)
    status = pl_fail_sys(err, errno, "close", lock->lock_filename);
  /* After the close that wakes the next waiter (a handed-over descriptor's owner calls
   * portalock_lock_wait_done once it has closed it). */
  if (!handed_over) portalock_lock_wait_done(lock);
  return status;
}

void portalock_lock_free(portalock_lock_t *lock) {
  if (lock == NULL) return;
  pl_lock_drop_foreign(lock);
  /* A handed-over descriptor keeps holding the lock inside its stream, and keeps its
   * held-table entry so that a fork still detaches it. */
  if (lock->fd >= 0 && !lock->handed_over) portalock_lock_release(lock, NULL);
  portalock_lock_wait_done(lock);
  pl_kernel_queue_stack_free(lock->queue_stack);
  if (lock->lock_filename != lock->filename) free(lock->lock_filename);
  free(lock->filename);
  free(lock);
}

const char *portalock_lock_filename(const portalock_lock_t *lock) {
  return lock->filename;
}

const char *portalock_lock_lock_filename(const portalock_lock_t *lock) {
  return lock->lock_filename;
}

const portalock_lock_options *portalock_lock_options_of(const portalock_lock_t *lock) {
  return &lock->opts;
}

int portalock_lock_locked(const portalock_lock_t *lock) {
  return lock->fd >= 0 && lock->holder == pl_self();
}

int portalock_lock_fd(const portalock_lock_t *lock) {
  return portalock_lock_locked(lock) ? lock->fd : -1;
}

portalock_status portalock_lock_hand_over(portalock_lock_t *lock, portalock_error *err) {
  pl_clear(err);
  pl_lock_drop_foreign(lock);
  if (lock->fd < 0)
    return pl_fail(err, PORTALOCK_INVALID, 0, lock->filename,
                   "hand-over of '%s': the lock is not held", lock->filename);
  lock->handed_over = 1;
  return PORTALOCK_OK;
}

void portalock_lock_forget(portalock_lock_t *lock) {
  pl_lock_drop_foreign(lock);
  /* Only a handed-over descriptor can have been closed by someone else; a handle that still
   * owns its descriptor keeps holding. */
  if (lock->fd < 0 || !lock->handed_over) return;
  pl_held_remove_serial(lock->serial);
  lock->fd = -1;
  lock->handed_over = 0;
  portalock_lock_wait_done(lock);
}
