/* Waiting: one bounded sleep, and the acquire loop built on it. */
#include "private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The public form of what ended a wait: 1 try again now, 0 time ran out, -1 a signal. */
int pl_wait_result(pl_counter woke) {
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

/* Contention outlasted the wait: AlreadyLocked, keeping the path, errno and holder. */
static portalock_status pl_already_locked(portalock_error *err, double timeout,
                                          int fail_when_locked) {
  char path[PORTALOCK_PATH_MAX];
  snprintf(path, sizeof path, "%s", err->path);
  long holder = err->holder_pid;
  char why[64];
  if (fail_when_locked)
    snprintf(why, sizeof why, "fail_when_locked");
  else
    snprintf(why, sizeof why, "timeout %g s", timeout);
  if (holder != 0)
    pl_fail(err, PORTALOCK_ALREADY_LOCKED, err->errnum, path, "%s: locked by process %ld (%s)",
            path, holder, why);
  else
    pl_fail(err, PORTALOCK_ALREADY_LOCKED, err->errnum, path, "%s: locked by another holder (%s)",
            path, why);
  err->holder_pid = holder;
  return PORTALOCK_ALREADY_LOCKED;
}

portalock_status pl_acquire_loop(const pl_waitable *waitable, void *ctx, double timeout,
                                 double check_interval, int fail_when_locked,
                                 portalock_error *err) {
  portalock_error local;
  if (err == NULL) err = &local;
  portalock_status status = pl_check_timing(timeout, check_interval, err);
  if (status != PORTALOCK_OK) return status;
  double deadline = portalock_monotonic() + timeout;
  for (;;) {
    portalock_wait wait;
    status = waitable->try_step(ctx, &wait, err);
    if (status != PORTALOCK_CONTENDED) return status;
    double now = portalock_monotonic();
    if (fail_when_locked || now >= deadline) {
      waitable->wait_done(ctx);
      return pl_already_locked(err, timeout, fail_when_locked);
    }
    double period = pl_check_period(check_interval);
    if (wait.next_attempt > now + period) wait.next_attempt = now + period;
    /* Woken, timed out or interrupted: the next round re-checks the lock, then the deadline
     * (a lock granted by the kernel queue at the deadline is taken, not leaked). */
    waitable->wait(ctx, &wait, deadline);
  }
}
