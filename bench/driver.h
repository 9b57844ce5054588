/* What the benchmark drivers in C (bench/driver.c for bench/run, bench/redis/driver.c for
 * bench/redis/run) share: the bound on every wait, the clock they stamp with (CLOCK_MONOTONIC
 * nanoseconds), their CPU time, the start of a timed window, and how they fail and report. */
#ifndef PORTALOCK_BENCH_DRIVER_H
#define PORTALOCK_BENCH_DRIVER_H

#include "portalock.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define WAIT_LIMIT 120.0 /* seconds: no wait in a benchmark lasts longer */

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void sleep_until(int64_t t) {
  struct timespec ts = {.tv_sec = (time_t)(t / 1000000000), .tv_nsec = (long)(t % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* The process's CPU time, user and system, of every thread (a session's keep-alive thread
 * too). */
static inline int64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static inline void die_pl(const char *what, const portalock_error *err) {
  fprintf(stderr, "driver: %s: %s %s\n", what, portalock_status_name(err->status), err->message);
  exit(2);
}

/* Prints "ready", reads the window's start and end times from stdin: 0, or -1 without them. */
static inline int read_window(int64_t *start, int64_t *end) {
  long long s, e;
  printf("ready\n");
  fflush(stdout);
  if (scanf("%lld %lld", &s, &e) != 2) return -1;
  *start = s;
  *end = e;
  return 0;
}

/* Ends a line of results with the `n` times (nanoseconds). */
static inline void print_times(const int64_t *times, size_t n) {
  for (size_t i = 0; i < n; i++)
    printf(" %lld", (long long)times[i]);
  printf("\n");
}

/* The serve command's loop: says "ready", then at each line of stdin "acquire" acquires
 * `lock` (within `timeout` seconds) and "release" releases it, saying when ("acquired NS",
 * "released NS"); any other line, or the end of stdin, ends it: 0. 3 when an acquire fails. */
static inline int serve_stdin(void *lock, double timeout, int (*acquire)(void *, double),
                              void (*release)(void *)) {
  char line[64];
  printf("ready\n");
  fflush(stdout);
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strncmp(line, "acquire", 7) == 0) {
      if (acquire(lock, timeout) != 0) {
        fprintf(stderr, "driver: acquire timed out\n");
        return 3;
      }
      printf("acquired %lld\n", (long long)now_ns());
    } else if (strncmp(line, "release", 7) == 0) {
      int64_t t = now_ns();
      release(lock);
      printf("released %lld\n", (long long)t);
    } else {
      break;
    }
    fflush(stdout);
  }
  return 0;
}

#endif /* PORTALOCK_BENCH_DRIVER_H */
