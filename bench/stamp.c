/* The command the first-wait benchmark runs under a lock (bench/run builds it): prints
 * "acquired NS", the CLOCK_MONOTONIC time at which it started, so that a lock command's
 * handoff can be timed to the moment its command runs. Kept tiny, as its start is timed. */
#include <stdio.h>
#include <time.h>

int main(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  printf("acquired %lld\n", (long long)ts.tv_sec * 1000000000 + ts.tv_nsec);
  return 0;
}
