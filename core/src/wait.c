/* Time and waiting: the clock, one bounded sleep, and the acquire loop built on them. */
#include "private.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Longest single sleep: a wait on nothing but an infinite clock still wakes up now and then. */
#define PL_MAX_SLEEP 3600.0

double portalock_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int portalock_wait_step(const portalock_wait *wait, double deadline) {
  double until = wait->next_attempt < deadline ? wait->next_attempt : deadline;
  double left = until - portalock_monotonic();
  if (isnan(left) || left < 0) left = 0;
  if (wait->fd >= 0) {
    struct pollfd p = {.fd = wait->fd, .events = POLLIN, .revents = 0};
    int ms = -1;
    if (left < INT_MAX / 1000.0) {
      ms = (int)(left * 1000.0);
      if (ms < left * 1000.0) ms++; /* never wake before the time: that would only spin */
    }
    int r = poll(&p, 1, ms);
    return r > 0 ? 1 : r == 0 ? 0 : -1;
  }
  if (left == 0) return 0;
  if (left > PL_MAX_SLEEP) left = PL_MAX_SLEEP;
  struct timespec ts;
  ts.tv_sec = (time_t)left;
  ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
  return nanosleep(&ts, NULL) == 0 ? 0 : -1;
}

void pl_wait_clock(portalock_wait *wait, double check_interval) {
  if (wait == NULL) return;
  wait->fd = -1;
  wait->next_attempt = portalock_monotonic() + check_interval;
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

portalock_status pl_acquire_loop(pl_try_fn try_fn, void *ctx, double timeout, double check_interval,
                                 int fail_when_locked, portalock_error *err) {
  portalock_error local;
  if (err == NULL) err = &local;
  portalock_status status = pl_check_timing(timeout, check_interval, err);
  if (status != PORTALOCK_OK) return status;
  double deadline = portalock_monotonic() + timeout;
  for (;;) {
    portalock_wait wait;
    status = try_fn(ctx, &wait, err);
    if (status != PORTALOCK_CONTENDED) return status;
    double now = portalock_monotonic();
    if (fail_when_locked || now >= deadline)
      return pl_already_locked(err, timeout, fail_when_locked);
    if (wait.next_attempt > now + check_interval) wait.next_attempt = now + check_interval;
    /* Interrupted or not, the next round re-checks both the lock and the deadline. */
    portalock_wait_step(&wait, deadline);
  }
}
