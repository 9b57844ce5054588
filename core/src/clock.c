/* The monotonic clock every wait measures its time on. */
#include "private.h"

#include <limits.h>
#include <math.h>
#include <time.h>

double portalock_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pl_monotonic_timespec(double when, struct timespec *ts) {
  double now = portalock_monotonic();
  if (!(when < now + PL_MAX_SLEEP)) when = now + PL_MAX_SLEEP; /* also for NaN */
  if (when < 0) when = 0;
  ts->tv_sec = (time_t)when;
  ts->tv_nsec = (long)((when - (double)ts->tv_sec) * 1e9);
  if (ts->tv_nsec >= 1000000000L) ts->tv_nsec = 999999999L;
}

int pl_poll_ms(double left) {
  if (isinf(left)) return -1;
  if (!(left < INT_MAX / 1000.0)) return INT_MAX;
  int ms = (int)(left * 1000.0);
  if (ms < left * 1000.0) ms++;
  return ms;
}
