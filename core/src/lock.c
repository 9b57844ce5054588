/* Lock: a kernel lock on a named file, taken one step at a time. TemporaryFileLock and
 * PidFileLock are Locks whose kind adds work after locking and before unlocking. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/platform.h"

/* A wait in progress on the lock file, from a contended attempt until the lock is taken or
 * the wait is given up. */
typedef struct pl_waiting {
  int file_fd; /* the lock file, open and unlocked, for the next attempt (-1: none): closing
                  it after each failed attempt would wake every other waiter */
  dev_t dev;
  ino_t ino;
  uint64_t serial;    /* file_fd's held-table entry: a forked child must not share it */
  pid_t pid;          /* the process that opened file_fd and the watcher's instance */
  pl_watcher watcher; /* this wait's inotify instance and wake-ups */
  int watch;          /* its watch on the lock file, or -1 (removed when the lock is crowded) */
  int remote;         /* file_fd is on a network file system (or that is unknown): its kernel
                         queue may be slow to answer (see pl_platform_network_file), so the
                         wait never queues there */
} pl_waiting;

#define PL_WAITING_NONE                                                                            \
  { .file_fd = -1, .watcher = PL_WATCHER_NONE, .watch = -1 }

struct portalock_lock {
  const pl_kind *kind;
  portalock_lock_options opts; /* opts.mode points at mode_buf */
  char mode_buf[4];
  pl_mode mode;
  char *filename;
  char *lock_filename; /* == filename unless the kind has a lock_suffix */
  int fd;              /* -1 when not held */
  int handed_over;
  pid_t holder; /* the process that took the lock: another pid means a forked child */
  dev_t dev;
  ino_t ino;
  uint64_t serial; /* of the held-table entry */
  pl_waiting waiting;
  double crowded_until; /* a wake-up lost the race: until then (monotonic seconds) blocking
                           waits queue in the kernel (see wake.c) */
  int unwatched;        /* its waits never watch the file (a bounded semaphore watches its slots) */
  void *queue_stack;    /* the kernel queue's thread stack, kept for the next wait, or NULL */
  dev_t fs_dev;         /* the device whose file system fs_remote describes */
  int fs_remote;        /* fs_dev is a network file system (1) or not (0); -1: not asked yet */
};

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
  portalock_status status;
  if (kind->exclusive_only) {
    char what[64];
    snprintf(what, sizeof what, "option 'flags' of a %s", kind->name);
    status = pl_check_rule(PORTALOCK_RULE_EXCLUSIVE_FLAGS, what, o.flags, err);
    if (status != PORTALOCK_OK) return status;
  }
  pl_mode mode;
  status = pl_check_options(&o, &mode, err);
  if (status != PORTALOCK_OK) return status;
  portalock_lock_t *lock = calloc(1, sizeof *lock);
  if (lock == NULL) return pl_fail_sys(err, ENOMEM, "new lock", filename);
  lock->kind = kind;
  lock->fd = -1;
  lock->fs_remote = -1;
  lock->waiting = (pl_waiting)PL_WAITING_NONE;
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
  if (w->watch >= 0) pl_watch_remove(w->watcher.fd, w->watch);
  w->watch = -1;
}

void portalock_lock_wait_done(portalock_lock_t *lock) {
  pl_waiting *w = &lock->waiting;
  if (w->file_fd >= 0) {
    pl_held_remove_serial(w->serial);
    close(w->file_fd);
  }
  pl_watcher_close(&w->watcher);
  *w = (pl_waiting)PL_WAITING_NONE;
}

/* In a forked child the handle's state is its parent's: forget it, closing only the copies
 * of the descriptors the handle owns (the fork handler pointed a held one at /dev/null). */
static void pl_lock_drop_foreign(portalock_lock_t *lock) {
  pid_t self = pl_self();
  pl_waiting *w = &lock->waiting;
  /* The parent's wait: only this process's copies of its descriptors are closed. */
  if ((w->file_fd >= 0 || w->watcher.fd >= 0) && w->pid != self) portalock_lock_wait_done(lock);
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

/* Registers `fd`, a descriptor of the lock file kept for the next attempt, in the held table
 * (a forked child must detach it): its serial, or 0. */
static uint64_t pl_lock_register_kept(const portalock_lock_t *lock, int fd, dev_t dev, ino_t ino) {
  pl_held h = {.fd = fd,
               .identified = 1,
               .dev = dev,
               .ino = ino,
               .backend = lock->opts.backend,
               .type = 0,
               .pid = pl_self(),
               .detach_at_fork = 1};
  return pl_held_add(&h);
}

/* Points a target descriptor back at /dev/null after a contended attempt. Its stream may be
 * kept for the next attempt, and the lock file must not stay open through it: a forked child
 * would inherit that reference, which nothing detaches, and keep the lock alive after its
 * parent took it and died. Without /dev/null (no descriptor left) it stays as it is. */
static void pl_lock_blank_target(int target_fd) {
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return;
  pl_platform_dup_cloexec(null_fd, target_fd);
  close(null_fd);
}

/* Keeps the contended lock file open for the next attempt (a copy when `fd` is a target
 * descriptor, which belongs to its stream), when `how` keeps anything. Posix locks keep
 * nothing: closing any descriptor of the file would drop the other posix locks this process
 * holds on it. */
static void pl_lock_keep(portalock_lock_t *lock, int fd, int owned, const struct stat *st,
                         pl_wait_how how) {
  pl_waiting *w = &lock->waiting;
  int kept = -1;
  if (lock->opts.backend != PORTALOCK_BACKEND_POSIX && PL_WAIT_KEEPS(how))
    kept = owned ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  else if (owned)
    close(fd);
  if (!owned) pl_lock_blank_target(fd);
  if (kept < 0) return;
  w->serial = pl_lock_register_kept(lock, kept, st->st_dev, st->st_ino);
  if (w->serial == 0) {
    close(kept);
    return;
  }
  w->file_fd = kept;
  w->remote = pl_lock_remote(lock, kept, st->st_dev);
  w->dev = st->st_dev;
  w->ino = st->st_ino;
  w->pid = pl_self();
}

/* Moves the kept lock file above the wait's inotify instance. A process that dies holding the
 * lock has its files finished by the kernel last-closed first, and descriptors close in
 * ascending order: an instance above the lock file would be finished first, and finishing one
 * that still watches waits for an RCU grace period before the lock is released. Should the
 * move fail, the file stays where it is: only a crash recovery is slower. */
static void pl_lock_above_watch(portalock_lock_t *lock) {
  pl_waiting *w = &lock->waiting;
  if (w->file_fd < 0 || w->watcher.fd < 0 || w->file_fd > w->watcher.fd) return;
  int moved = fcntl(w->file_fd, F_DUPFD_CLOEXEC, w->watcher.fd + 1);
  if (moved < 0) return;
  uint64_t serial = pl_lock_register_kept(lock, moved, w->dev, w->ino);
  if (serial == 0) {
    close(moved);
    return;
  }
  pl_held_remove_serial(w->serial);
  close(w->file_fd);
  w->file_fd = moved;
  w->serial = serial;
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

/* Whether this wait queues in the kernel, not on a watch (wake.c decides). */
static int pl_lock_queues(const portalock_lock_t *lock, pl_wait_how how) {
  return pl_wake_queues(lock->opts.backend, lock->waiting.remote, pl_lock_crowded(lock),
                        how == PL_WAIT_QUEUE);
}

/* Starts watching the lock file for this wait, unless the wait does without (one that keeps
 * nothing; posix locks, whose attempts close the file each time; a wait that queues in the
 * kernel). Returns 1 when a watch was just made: a release before it went unseen. */
static int pl_lock_watch(portalock_lock_t *lock, pl_wait_how how) {
  pl_waiting *w = &lock->waiting;
  if (w->watch >= 0 || w->watcher.unwatched || lock->unwatched || !PL_WAIT_KEEPS(how) ||
      lock->opts.backend == PORTALOCK_BACKEND_POSIX || pl_lock_queues(lock, how))
    return 0;
  if (w->watcher.fd < 0) w->pid = pl_self();
  w->watch = pl_watcher_add(&w->watcher, lock->lock_filename);
  pl_lock_above_watch(lock);
  return w->watch >= 0;
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

/* pl_lock_attempt's work, from opening the file to recording the lock. */
static portalock_status pl_lock_rounds(portalock_lock_t *lock, int target_fd, pl_wait_how how,
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
        pl_lock_keep(lock, fd, owned, &st, how);
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

/* One attempt: OK, CONTENDED (the file kept for the next attempt, as `how` says), or a
 * failure. A posix attempt runs alone in the process (pl_held_posix_enter): between its check
 * that no other descriptor holds the file and the entry that records its lock, another
 * thread's attempt would pass the same check, and the kernel grants it the same lock. */
static portalock_status pl_lock_attempt(portalock_lock_t *lock, int target_fd, pl_wait_how how,
                                        portalock_error *err) {
  if (lock->opts.backend != PORTALOCK_BACKEND_POSIX)
    return pl_lock_rounds(lock, target_fd, how, err);
  pl_held_posix_enter();
  portalock_status status = pl_lock_rounds(lock, target_fd, how, err);
  pl_held_posix_leave();
  return status;
}

portalock_status pl_lock_try(portalock_lock_t *lock, int target_fd, pl_wait_how how,
                             portalock_wait *wait, portalock_error *err) {
  pl_clear(err);
  pl_lock_drop_foreign(lock);
  if (lock->fd >= 0) return PORTALOCK_OK;
  pl_waiting *w = &lock->waiting;
  pl_watcher_arm(&w->watcher);
  portalock_status status = pl_lock_attempt(lock, target_fd, how, err);
  if (status == PORTALOCK_CONTENDED &&
      (pl_lock_watch(lock, how) || pl_watcher_drain_late(&w->watcher)))
    status = pl_lock_attempt(lock, target_fd, how, err);
  if (status == PORTALOCK_OK) {
    /* The watch stays until the release: closing an inotify instance waits for an RCU
     * grace period (hundreds of microseconds), which would delay every handoff. */
    return status;
  }
  if (status != PORTALOCK_CONTENDED || !PL_WAIT_KEEPS(how)) {
    /* A wait that keeps nothing also closes what an earlier attempt kept (before the caller
     * said it polls): its caller may never step again. */
    portalock_lock_wait_done(lock);
    if (status == PORTALOCK_CONTENDED) pl_wait_clock(wait, lock->opts.check_interval);
    return status;
  }
  if (pl_watcher_lost_race(&w->watcher)) {
    /* Every release wakes every watcher: among many waiters, queue in the kernel instead. */
    lock->crowded_until = portalock_monotonic() + PL_CROWDED_SECONDS;
  }
  /* A watch made by an attempt that did not yet know (a first try before the acquisition
   * began, a lock not yet crowded) gives way to the kernel queue. */
  if (w->watch >= 0 && pl_lock_queues(lock, how)) pl_lock_unwatch(w);
  if (wait != NULL) {
    wait->fd = w->watch >= 0 ? w->watcher.fd : -1;
    wait->next_attempt = portalock_monotonic() + pl_check_period(lock->opts.check_interval);
  }
  return status;
}

portalock_status portalock_lock_try_onto(portalock_lock_t *lock, int target_fd,
                                         portalock_wait *wait, portalock_error *err) {
  return pl_lock_try(lock, target_fd, PL_WAIT_WATCH, wait, err);
}

portalock_status portalock_lock_try(portalock_lock_t *lock, portalock_wait *wait,
                                    portalock_error *err) {
  return pl_lock_try(lock, -1, PL_WAIT_WATCH, wait, err);
}

void pl_lock_source(portalock_lock_t *lock, pl_wake_source *src) {
  pl_lock_drop_foreign(lock);
  const pl_waiting *w = &lock->waiting;
  if (lock->fd >= 0) return; /* held (by another owner of an RLock): a watch says nothing */
  src->watch_fd = w->watch >= 0 ? w->watcher.fd : -1;
  /* Unwatched: the kernel queue, but not on a network file system (see pl_waiting.remote). */
  if (w->file_fd >= 0 && w->watch < 0 && !w->remote) {
    src->queue_fd = w->file_fd;
    src->queue_type = lock->opts.flags & (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX);
    src->queue_backend = lock->opts.backend;
    src->queue_stack = &lock->queue_stack;
  }
}

void pl_lock_woke(portalock_lock_t *lock, pl_counter woke) {
  pl_watcher_woke(&lock->waiting.watcher, woke);
}

const char *pl_lock_describe(portalock_lock_t *lock, char *buf, size_t cap) {
  snprintf(buf, cap, "'%s' is locked", lock->lock_filename);
  return lock->lock_filename;
}

long pl_lock_held_by(portalock_lock_t *lock) {
  portalock_error err;
  pl_clear(&err);
  if (lock->kind->on_contended != NULL) lock->kind->on_contended(lock, &err);
  return err.holder_pid;
}

static portalock_status pl_lock_attempt_cb(const portalock_acquisition *acq, int target_fd,
                                           pl_wait_how how, portalock_wait *wait,
                                           portalock_error *err) {
  return pl_lock_try(acq->object_, target_fd, how, wait, err);
}

static void pl_lock_source_cb(void *lock, pl_wake_source *src) {
  pl_lock_source(lock, src);
}

static void pl_lock_woke_cb(void *lock, pl_counter woke) {
  pl_lock_woke(lock, woke);
}

static void pl_lock_give_up_cb(void *lock) {
  portalock_lock_wait_done(lock);
}

static const char *pl_lock_describe_cb(void *lock, char *buf, size_t cap) {
  return pl_lock_describe(lock, buf, cap);
}

static long pl_lock_held_by_cb(void *lock) {
  return pl_lock_held_by(lock);
}

static const pl_waitable pl_lock_waitable = {pl_lock_attempt_cb,  pl_lock_source_cb,
                                             pl_lock_woke_cb,     pl_lock_give_up_cb,
                                             pl_lock_describe_cb, pl_lock_held_by_cb};

portalock_status portalock_lock_begin(portalock_acquisition *acq, portalock_lock_t *lock,
                                      double timeout, double check_interval, int fail_when_locked,
                                      portalock_error *err) {
  return pl_begin(acq, &pl_lock_waitable, lock, 0, timeout, check_interval, fail_when_locked, err);
}

portalock_status portalock_lock_acquire_with(portalock_lock_t *lock, double timeout,
                                             double check_interval, int fail_when_locked,
                                             portalock_error *err) {
  portalock_acquisition acq;
  portalock_status status =
      portalock_lock_begin(&acq, lock, timeout, check_interval, fail_when_locked, err);
  return status == PORTALOCK_OK ? pl_acquire(&acq, err) : status;
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

void pl_lock_never_watch(portalock_lock_t *lock) {
  lock->unwatched = 1;
}

void pl_lock_held_file(const portalock_lock_t *lock, dev_t *dev, ino_t *ino) {
  *dev = lock->dev;
  *ino = lock->ino;
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
