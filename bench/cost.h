/* What bench/'s single-cost programs (thread_cost.c, wake_cost.c, inotify_close.c) share:
 * the clock they time with, and how they summarise samples. */
#ifndef PORTALOCK_BENCH_COST_H
#define PORTALOCK_BENCH_COST_H

#include <stdlib.h>
#include <time.h>

static inline double cost_wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int cost_by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct cost_summary {
  double median, p95, max; /* seconds; p95 by nearest rank */
} cost_summary;

/* Sorts the `n` samples (n > 0) and summarises them. */
static inline cost_summary cost_summarise(double *samples, int n) {
  qsort(samples, (size_t)n, sizeof samples[0], cost_by_value);
  return (cost_summary){samples[n / 2], samples[(n * 95 + 99) / 100 - 1], samples[n - 1]};
}

#endif /* PORTALOCK_BENCH_COST_H */
