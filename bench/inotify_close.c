/*
 * What a release after a watched wait spends closing the wait's inotify instance (core/src/
 * lock.c keeps the instance until the release, so that the handoff itself does not wait for
 * it): the wall time of close(2) on an instance whose watch is still active, whose watch was
 * removed just before, and whose watch was removed 20 ms before.
 *
 *   cc -O2 bench/inotify_close.c -o /tmp/inotify_close && /tmp/inotify_close
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cost.h"

#define ROUNDS 200

/* Closes ROUNDS instances watching `path`, the watch removed `removed_before` seconds before
 * the close (a negative value: never removed), and prints the close's median, p95 (nearest
 * rank) and max. */
static void measure(const char *label, const char *path, double removed_before) {
  static double samples[ROUNDS];
  for (int i = 0; i < ROUNDS; i++) {
    int fd = inotify_init1(IN_CLOEXEC);
    int watch = fd < 0 ? -1 : inotify_add_watch(fd, path, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
    if (watch < 0) {
      perror("inotify");
      exit(1);
    }
    if (removed_before >= 0) {
      inotify_rm_watch(fd, watch);
      if (removed_before > 0) usleep((useconds_t)(removed_before * 1e6));
    }
    double start = cost_wall_seconds();
    close(fd);
    samples[i] = cost_wall_seconds() - start;
  }
  cost_summary s = cost_summarise(samples, ROUNDS);
  printf("%-28s median %8.1f us  p95 %8.1f us  max %8.1f us\n", label, s.median * 1e6, s.p95 * 1e6,
         s.max * 1e6);
}

int main(void) {
  char path[] = "/tmp/inotify_close.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    perror("mkstemp");
    return 1;
  }
  close(fd);
  measure("watch active", path, -1);
  measure("watch removed just before", path, 0);
  measure("watch removed 20 ms before", path, 0.02);
  unlink(path);
  return 0;
}
