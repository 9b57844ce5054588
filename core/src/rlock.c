/* RLock: a Lock whose acquires are counted per owner token. */
#include "private.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

struct portalock_rlock {
  portalock_lock_t *lock;
  uintptr_t owner; /* meaningful only while the Lock is held */
  unsigned long count;
};

portalock_status portalock_rlock_new(portalock_rlock_t **out, const char *filename,
                                     const portalock_lock_options *opts, portalock_error *err) {
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  portalock_lock_t *lock;
  portalock_status status = portalock_lock_new(&lock, filename, opts, err);
  if (status != PORTALOCK_OK) return status;
  portalock_rlock_t *rlock = calloc(1, sizeof *rlock);
  if (rlock == NULL) {
    portalock_lock_free(lock);
    return pl_fail_sys(err, ENOMEM, "new RLock", filename);
  }
  rlock->lock = lock;
  *out = rlock;
  return PORTALOCK_OK;
}

void portalock_rlock_free(portalock_rlock_t *rlock) {
  if (rlock == NULL) return;
  portalock_lock_free(rlock->lock);
  free(rlock);
}

portalock_lock_t *portalock_rlock_lock(portalock_rlock_t *rlock) {
  return rlock->lock;
}

/* A Lock that was forgotten, released directly, or inherited through fork() holds nothing. */
static void pl_rlock_sync(portalock_rlock_t *rlock) {
  if (!portalock_lock_locked(rlock->lock)) {
    rlock->owner = 0;
    rlock->count = 0;
  }
}

static portalock_status pl_bad_owner(portalock_error *err) {
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'owner' (0): must be non-zero");
}

static portalock_status pl_rlock_try(portalock_rlock_t *rlock, uintptr_t owner, int target_fd,
                                     pl_wait_how how, portalock_wait *wait, portalock_error *err) {
  pl_clear(err);
  if (owner == 0) return pl_bad_owner(err);
  pl_rlock_sync(rlock);
  if (rlock->count > 0 && rlock->owner == owner) {
    if (rlock->count == ULONG_MAX)
      return pl_fail(err, PORTALOCK_INVALID, 0, portalock_lock_filename(rlock->lock),
                     "RLock acquired more than %lu times", ULONG_MAX);
    rlock->count++;
    return PORTALOCK_OK;
  }
  if (rlock->count > 0) {
    pl_wait_clock(wait, portalock_lock_options_of(rlock->lock)->check_interval);
    return pl_fail(err, PORTALOCK_CONTENDED, 0, portalock_lock_lock_filename(rlock->lock),
                   "'%s': held by another owner of this RLock",
                   portalock_lock_lock_filename(rlock->lock));
  }
  portalock_status status = pl_lock_try(rlock->lock, target_fd, how, wait, err);
  if (status == PORTALOCK_OK) {
    rlock->owner = owner;
    rlock->count = 1;
  }
  return status;
}

portalock_status portalock_rlock_try_onto(portalock_rlock_t *rlock, uintptr_t owner, int target_fd,
                                          portalock_wait *wait, portalock_error *err) {
  return pl_rlock_try(rlock, owner, target_fd, PL_WAIT_WATCH, wait, err);
}

portalock_status portalock_rlock_try(portalock_rlock_t *rlock, uintptr_t owner,
                                     portalock_wait *wait, portalock_error *err) {
  return pl_rlock_try(rlock, owner, -1, PL_WAIT_WATCH, wait, err);
}

void portalock_rlock_wait_done(portalock_rlock_t *rlock) {
  portalock_lock_wait_done(rlock->lock);
}

/* ---------------------------------------------------------------- the wait engine's side */

static portalock_status pl_rlock_attempt_cb(const portalock_acquisition *acq, int target_fd,
                                            pl_wait_how how, portalock_wait *wait,
                                            portalock_error *err) {
  return pl_rlock_try(acq->object_, acq->owner_, target_fd, how, wait, err);
}

static void pl_rlock_source_cb(void *rlock, pl_wake_source *src) {
  pl_lock_source(((portalock_rlock_t *)rlock)->lock, src);
}

static void pl_rlock_woke_cb(void *rlock, pl_counter woke) {
  pl_lock_woke(((portalock_rlock_t *)rlock)->lock, woke);
}

static void pl_rlock_give_up_cb(void *rlock) {
  portalock_rlock_wait_done(rlock);
}

static const char *pl_rlock_describe_cb(void *rlock, char *buf, size_t cap) {
  return pl_lock_describe(((portalock_rlock_t *)rlock)->lock, buf, cap);
}

static long pl_rlock_held_by_cb(void *rlock) {
  return pl_lock_held_by(((portalock_rlock_t *)rlock)->lock);
}

static const pl_waitable pl_rlock_waitable = {pl_rlock_attempt_cb,  pl_rlock_source_cb,
                                              pl_rlock_woke_cb,     pl_rlock_give_up_cb,
                                              pl_rlock_describe_cb, pl_rlock_held_by_cb};

portalock_status portalock_rlock_begin(portalock_acquisition *acq, portalock_rlock_t *rlock,
                                       uintptr_t owner, double timeout, double check_interval,
                                       int fail_when_locked, portalock_error *err) {
  if (owner == 0) return pl_bad_owner(err);
  return pl_begin(acq, &pl_rlock_waitable, rlock, owner, timeout, check_interval, fail_when_locked,
                  err);
}

portalock_status portalock_rlock_acquire_with(portalock_rlock_t *rlock, uintptr_t owner,
                                              double timeout, double check_interval,
                                              int fail_when_locked, portalock_error *err) {
  portalock_acquisition acq;
  portalock_status status =
      portalock_rlock_begin(&acq, rlock, owner, timeout, check_interval, fail_when_locked, err);
  return status == PORTALOCK_OK ? pl_acquire(&acq, err) : status;
}

portalock_status portalock_rlock_acquire(portalock_rlock_t *rlock, uintptr_t owner,
                                         portalock_error *err) {
  const portalock_lock_options *o = portalock_lock_options_of(rlock->lock);
  return portalock_rlock_acquire_with(rlock, owner, o->timeout, o->check_interval,
                                      o->fail_when_locked, err);
}

portalock_status portalock_rlock_release(portalock_rlock_t *rlock, uintptr_t owner,
                                         portalock_error *err) {
  pl_clear(err);
  if (owner == 0) return pl_bad_owner(err);
  pl_rlock_sync(rlock);
  if (rlock->count == 0)
    return pl_fail(err, PORTALOCK_INVALID, 0, portalock_lock_filename(rlock->lock),
                   "RLock released more times than acquired");
  if (rlock->owner != owner)
    return pl_fail(err, PORTALOCK_INVALID, 0, portalock_lock_filename(rlock->lock),
                   "RLock released by an owner that does not hold it");
  if (--rlock->count > 0) return PORTALOCK_OK;
  rlock->owner = 0;
  return portalock_lock_release(rlock->lock, err);
}

portalock_status portalock_rlock_release_all(portalock_rlock_t *rlock, uintptr_t owner,
                                             portalock_error *err) {
  pl_clear(err);
  if (owner == 0) return pl_bad_owner(err);
  pl_rlock_sync(rlock);
  if (rlock->count == 0 || rlock->owner != owner) return PORTALOCK_OK;
  rlock->count = 0;
  rlock->owner = 0;
  return portalock_lock_release(rlock->lock, err);
}

uintptr_t portalock_rlock_owner(const portalock_rlock_t *rlock) {
  return portalock_lock_locked(rlock->lock) ? rlock->owner : 0;
}

unsigned long portalock_rlock_count(const portalock_rlock_t *rlock) {
  return portalock_lock_locked(rlock->lock) ? rlock->count : 0;
}
