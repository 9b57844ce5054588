/*
 * What waking a waiter costs by each mechanism alone, without portalock: a holder releases
 * (unlock, then close) after 20 ms, and the time until a waiter in another process holds the
 * lock is measured for a waiter blocked in flock(2) (the kernel's queue, the C limit of
 * bench/run) and for one that waits in poll(2) on an inotify watch of the file and then
 * takes the lock with LOCK_NB (the mechanism of portalock's watched waits). The two
 * alternate, so that both see the same machine.
 *
 *   cc -O2 bench/wake_cost.c -o /tmp/wake_cost && /tmp/wake_cost
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cost.h"

#define ROUNDS 200
#define HOLD_US 20000

enum { BLOCKING_FLOCK, INOTIFY_THEN_TRY, MECHANISMS };
static const char *const names[MECHANISMS] = {"blocked in flock(2)", "inotify, then LOCK_NB"};

static void check(int ok, const char *what) {
  if (!ok) {
    perror(what);
    exit(1);
  }
}

/* The waiter: for each byte (a mechanism) from `orders`, waits for the lock by it, reports
 * when it got it on `reports`, and lets go. */
static void waiter(const char *path, int orders, int reports) {
  unsigned char mechanism;
  while (read(orders, &mechanism, 1) == 1) {
    int fd = open(path, O_RDWR | O_CLOEXEC), watch_fd = -1;
    check(fd >= 0, "open");
    if (mechanism == BLOCKING_FLOCK) {
      check(write(reports, "w", 1) == 1, "write");
      check(flock(fd, LOCK_EX) == 0, "flock");
    } else {
      watch_fd = inotify_init1(IN_CLOEXEC);
      check(watch_fd >= 0, "inotify_init1");
      check(inotify_add_watch(watch_fd, path, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) >= 0,
            "inotify_add_watch");
      check(flock(fd, LOCK_EX | LOCK_NB) != 0, "flock while held");
      check(write(reports, "w", 1) == 1, "write");
      for (;;) {
        struct pollfd p = {.fd = watch_fd, .events = POLLIN, .revents = 0};
        check(poll(&p, 1, -1) == 1, "poll");
        char events[4096];
        check(read(watch_fd, events, sizeof events) > 0, "read");
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
      }
    }
    double got = cost_wall_seconds();
    check(write(reports, &got, sizeof got) == sizeof got, "write");
    flock(fd, LOCK_UN);
    close(fd);
    /* Closed only now: closing an instance just after its event takes milliseconds. */
    if (watch_fd >= 0) close(watch_fd);
  }
  exit(0);
}

int main(void) {
  char path[] = "/tmp/wake_cost.XXXXXX";
  int made = mkstemp(path);
  check(made >= 0, "mkstemp");
  close(made);
  int to_waiter[2], from_waiter[2];
  check(pipe(to_waiter) == 0 && pipe(from_waiter) == 0, "pipe");
  pid_t pid = fork();
  check(pid >= 0, "fork");
  if (pid == 0) {
    close(to_waiter[1]);
    close(from_waiter[0]);
    waiter(path, to_waiter[0], from_waiter[1]);
  }
  close(to_waiter[0]);
  close(from_waiter[1]);
  static double samples[MECHANISMS][ROUNDS];
  for (int round = 0; round < 2 * ROUNDS; round++) {
    unsigned char mechanism = (unsigned char)(round % MECHANISMS);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    check(fd >= 0 && flock(fd, LOCK_EX) == 0, "hold");
    char ready;
    check(write(to_waiter[1], &mechanism, 1) == 1, "write");
    check(read(from_waiter[0], &ready, 1) == 1, "read");
    usleep(HOLD_US); /* the waiter settles into its wait, and its CPU may go idle */
    double released = cost_wall_seconds();
    flock(fd, LOCK_UN);
    close(fd);
    double got;
    check(read(from_waiter[0], &got, sizeof got) == sizeof got, "read");
    samples[mechanism][round / MECHANISMS] = got - released;
  }
  close(to_waiter[1]);
  waitpid(pid, NULL, 0);
  unlink(path);
  for (int m = 0; m < MECHANISMS; m++) {
    cost_summary s = cost_summarise(samples[m], ROUNDS);
    printf("%-24s median %7.1f us  p95 %7.1f us\n", names[m], s.median * 1e6, s.p95 * 1e6);
  }
  return 0;
}
