/* The wait engine's policy: one step of an acquisition (attempt, then acquired, or give up, or
 * sleep until when and on what), the one blocking sleep every caller shares, and the convenience
 * loop over both. Every object waits through it; what wakes a sleep is wake.c's. */
#include "private.h"

#include <math.h>
#include <stdio.h>

/* The public form of what ended a wait: 1 try again now, 0 time ran out, -1 a signal. */
static int pl_wait_result(pl_counter woke) {
  return woke == PL_WOKE_EVENT || woke == PL_WOKE_KERNEL ? 1 : woke == PL_WOKE_SIGNAL ? -1 : 0;
}

int portalock_wait_step(const portalock_wait *wait, double deadline) {
  return pl_wait_result(pl_sleep(wait->fd, wait->next_attempt, deadline));
}

void pl_wait_clock(portalock_wait *wait, double check_interval) {
  if (wait == NULL) return;
  wait->fd = -1;
  wait->next_attempt = portalock_monotonic() + pl_check_period(check_interval);
}

portalock_status pl_begin(portalock_acquisition *acq, const pl_waitable *waitable, void *object,
                          uintptr_t owner, double timeout, double check_interval,
                          int fail_when_locked, portalock_error *err) {
  pl_clear(err);
  portalock_status status = pl_check_timing(timeout, check_interval, err);
  if (status != PORTALOCK_OK) return status;
  *acq = (portalock_acquisition){.timeout = timeout,
                                 .check_interval = pl_check_period(check_interval),
                                 .fail_when_locked = fail_when_locked,
                                 .deadline = portalock_monotonic() + timeout,
                                 .waitable_ = waitable,
                                 .object_ = object,
                                 .owner_ = owner};
  return PORTALOCK_OK;
}

/* Contention outlasted the acquisition: the one place an AlreadyLocked message is made,
 * "<subject>[ by process N]: gave up <why>", keeping the errno and holder of the attempt. */
static portalock_status pl_give_up_locked(portalock_acquisition *acq, portalock_error *err) {
  const pl_waitable *w = acq->waitable_;
  char subject[PORTALOCK_PATH_MAX + 256];
  const char *path = w->describe(acq->object_, subject, sizeof subject);
  long holder = err->holder_pid;
  int errnum = err->errnum;
  w->give_up(acq->object_);
  char by[48] = "";
  if (holder != 0) snprintf(by, sizeof by, " by process %ld", holder);
  char why[64];
  if (acq->fail_when_locked)
    snprintf(why, sizeof why, "at the first contention (fail_when_locked)");
  else if (acq->timeout == 0)
    snprintf(why, sizeof why, "at the first contention (timeout 0)");
  else
    snprintf(why, sizeof why, "after the timeout of %g s", acq->timeout);
  pl_fail(err, PORTALOCK_ALREADY_LOCKED, errnum, path, "%s%s: gave up %s", subject, by, why);
  err->holder_pid = holder;
  return PORTALOCK_ALREADY_LOCKED;
}

/* After a contended attempt: give up, or say how long to sleep (never past the deadline,
 * re-checking at least every check_interval). */
static portalock_status pl_contended_step(portalock_acquisition *acq, portalock_wait *wait,
                                          portalock_error *err) {
  double now = portalock_monotonic();
  if (acq->fail_when_locked || now >= acq->deadline) return pl_give_up_locked(acq, err);
  double latest = now + pl_check_period(acq->check_interval);
  if (latest > acq->deadline) latest = acq->deadline;
  if (!(wait->next_attempt <= latest)) wait->next_attempt = latest;
  return PORTALOCK_CONTENDED;
}

int portalock_acquisition_waits(const portalock_acquisition *acq) {
  return !(acq->fail_when_locked || acq->timeout == 0);
}

/* What the attempts of `acq` may watch and keep (see pl_wait_how). */
static pl_wait_how pl_wait_how_of(const portalock_acquisition *acq) {
  /* Nothing to wait for: a watch would only be an inotify instance to make and close, and the
   * close of one waits for an RCU grace period (up to tens of milliseconds). */
  if (!portalock_acquisition_waits(acq)) return PL_WAIT_NONE;
  /* A caller that sleeps on the clock reads no descriptor, and may abandon the wait between
   * steps without giving it up (a killed coroutine). */
  if (acq->polls_) return PL_WAIT_POLL;
  /* With no deadline to keep, the kernel's blocking lock call is the quickest wait there is;
   * a watch would only add an inotify instance to make and close, and a wake-up for every
   * release. */
  if (isinf(acq->deadline) && acq->deadline > 0) return PL_WAIT_QUEUE;
  return PL_WAIT_WATCH;
}

void portalock_acquisition_polls(portalock_acquisition *acq) {
  acq->polls_ = 1;
}

portalock_status portalock_step(portalock_acquisition *acq, int target_fd, portalock_wait *wait,
                                portalock_error *err) {
  portalock_error local;
  portalock_wait scratch;
  if (err == NULL) err = &local;
  if (wait == NULL) wait = &scratch;
  pl_clear(err);
  portalock_status status = acq->waitable_->attempt(acq, target_fd, pl_wait_how_of(acq), wait, err);
  if (status != PORTALOCK_CONTENDED) {
    if (status != PORTALOCK_OK) acq->waitable_->give_up(acq->object_);
    return status;
  }
  return pl_contended_step(acq, wait, err);
}

portalock_status portalock_step_held(portalock_acquisition *acq, portalock_wait *wait,
                                     portalock_error *err) {
  portalock_error local;
  portalock_wait scratch;
  if (err == NULL) err = &local;
  if (wait == NULL) wait = &scratch;
  char subject[PORTALOCK_PATH_MAX + 256];
  const char *path = acq->waitable_->describe(acq->object_, subject, sizeof subject);
  pl_fail(err, PORTALOCK_CONTENDED, 0, path, "%s by another owner in this process", subject);
  if (acq->waitable_->held_by != NULL) err->holder_pid = acq->waitable_->held_by(acq->object_);
  pl_wait_clock(wait, acq->check_interval);
  return pl_contended_step(acq, wait, err);
}

int portalock_sleep(portalock_acquisition *acq, const portalock_wait *wait, double return_by) {
  const pl_waitable *w = acq->waitable_;
  pl_wake_source src = PL_WAKE_SOURCE_NONE;
  w->source(acq->object_, &src);
  pl_counter woke = pl_wake_sleep(&src, wait->next_attempt, acq->deadline, return_by);
  if (w->woke != NULL) w->woke(acq->object_, woke);
  return pl_wait_result(woke);
}

void portalock_give_up(portalock_acquisition *acq) {
  acq->waitable_->give_up(acq->object_);
}

portalock_status pl_acquire(portalock_acquisition *acq, portalock_error *err) {
  for (;;) {
    portalock_wait wait;
    portalock_status status = portalock_step(acq, -1, &wait, err);
    if (status != PORTALOCK_CONTENDED) return status;
    /* Woken, timed out or interrupted: the next step re-checks the lock, then the deadline
     * (a lock granted by the kernel queue at the deadline is taken, not leaked). */
    portalock_sleep(acq, &wait, INFINITY);
  }
}
