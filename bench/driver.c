/*
 * Benchmark driver in C for bench/run: the physical limit ("ref": raw open + flock(2), or
 * sem_open(3) for the semaphore) and portalock's C API ("portalock").
 *
 *   driver serve IMPL PATH CI WAIT     stdin: acquire | release | quit
 *   driver firstwait IMPL PATH WAIT    a process's first wait: prints "waiting", acquires,
 *                                      prints "acquired NS", releases and exits
 *   driver uncontended IMPL PATH MODE N  MODE open (open+lock+unlock+close) | fd (open file)
 *   driver loop IMPL PATH HOLD_US CI TIMEOUT   prints ready, reads "START_NS END_NS", prints
 *                                      "done COUNT CPU_NS" and the time of every acquire;
 *                                      TIMEOUT "window" (what is left of it) or "forever"
 *   driver sem IMPL NAME SLOTS POOL JOBS JOB_MS CI   ready/start as loop; claims jobs from
 *                                      POOL (files 1..JOBS, see claim_job) until none is
 *                                      left, each under the semaphore; one "job" line per job
 *   driver stamp JOB_MS                one job (for GNU parallel's sem)
 *   driver held                        run under flock(1): acquired now; exits at "release"
 *
 * CI is the check_interval in seconds or "default". WAIT is how portalock acquires: "limit"
 * (portalock_lock_acquire_with, timeout WAIT_LIMIT), "default" (portalock_lock_acquire: the
 * handle's default options) or "forever" (no timeout); the C limit always blocks in flock(2).
 * Times are CLOCK_MONOTONIC nanoseconds.
 */
#define _GNU_SOURCE
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void spin_us(long us) {
  int64_t end = now_ns() + (int64_t)us * 1000;
  while (now_ns() < end) {
  }
}

static void die(const char *what) {
  fprintf(stderr, "driver: %s: %s\n", what, strerror(errno));
  exit(2);
}

/* ---------------------------------------------------------------- one lock, two ways */

typedef struct bench_lock {
  int ref;
  int calls; /* "calls": the system calls a Lua Lock makes, as raw C (uncontended open only) */
  const char *path;
  int fd;
  portalock_lock_t *lock;
  double check_interval;
} bench_lock;

static void bench_lock_init(bench_lock *b, const char *impl, const char *path, const char *ci) {
  memset(b, 0, sizeof *b);
  b->calls = strcmp(impl, "calls") == 0;
  b->ref = b->calls || strcmp(impl, "ref") == 0;
  b->path = path;
  b->fd = -1;
  portalock_lock_options opts;
  portalock_lock_options_init(&opts);
  b->check_interval = strcmp(ci, "default") == 0 ? opts.check_interval : atof(ci);
  if (b->ref) return;
  portalock_error err;
  if (portalock_lock_new(&b->lock, path, &opts, &err) != PORTALOCK_OK) die_pl("lock_new", &err);
}

#define WAIT_DEFAULT NAN /* a timeout meaning: the handle's own options */

/* Blocks until held (ref: in the kernel; portalock: its loop, for `timeout` seconds or, given
 * WAIT_DEFAULT, as the handle's options say). 0 on success. */
static int bench_acquire(bench_lock *b, double timeout) {
  if (b->ref) {
    b->fd = open(b->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (b->fd < 0) die("open");
    if (flock(b->fd, LOCK_EX) != 0) die("flock");
    return 0;
  }
  portalock_error err;
  portalock_status s =
      isnan(timeout) ? portalock_lock_acquire(b->lock, &err)
                     : portalock_lock_acquire_with(b->lock, timeout, b->check_interval, 0, &err);
  if (s == PORTALOCK_ALREADY_LOCKED) return -1;
  if (s != PORTALOCK_OK) die_pl("acquire", &err);
  return 0;
}

static void bench_release(bench_lock *b) {
  if (b->ref) {
    flock(b->fd, LOCK_UN);
    close(b->fd);
    b->fd = -1;
    return;
  }
  portalock_error err;
  if (portalock_lock_release(b->lock, &err) != PORTALOCK_OK) die_pl("release", &err);
}

/* The timeout bench_acquire takes for a WAIT argument (see the top of this file). */
static double wait_timeout(const char *wait) {
  if (strcmp(wait, "limit") == 0) return WAIT_LIMIT;
  if (strcmp(wait, "default") == 0) return WAIT_DEFAULT;
  if (strcmp(wait, "forever") == 0) return INFINITY;
  fprintf(stderr, "driver: WAIT must be limit, default or forever, not \"%s\"\n", wait);
  exit(2);
}

/* ---------------------------------------------------------------- subcommands */

static int serve_acquire(void *b, double timeout) {
  return bench_acquire(b, timeout);
}
static void serve_release(void *b) {
  bench_release(b);
}

static int cmd_serve(char **argv) {
  bench_lock b;
  bench_lock_init(&b, argv[0], argv[1], argv[2]);
  return serve_stdin(&b, wait_timeout(argv[3]), serve_acquire, serve_release);
}

static int cmd_firstwait(char **argv) {
  bench_lock b;
  bench_lock_init(&b, argv[0], argv[1], "default");
  double timeout = wait_timeout(argv[2]);
  printf("waiting\n");
  if (bench_acquire(&b, timeout) != 0) return 3;
  printf("acquired %lld\n", (long long)now_ns());
  bench_release(&b);
  return 0;
}

/* The system calls of a Lua Lock's acquire+release, bare: the file opened non-blocking (a FIFO
 * planted at the path must not block), checked with fstat and made blocking, locked, its flags
 * read (by fdopen, making the io handle), unlocked and closed. */
static void lock_calls(const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) != 0 ||
      flock(fd, LOCK_EX | LOCK_NB) != 0 || fcntl(fd, F_GETFL) < 0)
    die("the Lock's calls");
  flock(fd, LOCK_UN);
  close(fd);
}

static int64_t uncontended_open_one(bench_lock *b) {
  int64_t t0 = now_ns();
  if (b->calls) {
    lock_calls(b->path);
  } else if (b->ref) {
    int fd = open(b->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) die("open+flock");
    flock(fd, LOCK_UN);
    close(fd);
  } else {
    if (bench_acquire(b, 0) != 0) die("uncontended acquire");
    bench_release(b);
  }
  return now_ns() - t0;
}

static int64_t uncontended_fd_one(const bench_lock *b, int fd) {
  int64_t t0 = now_ns();
  if (b->ref) {
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) die("flock");
    flock(fd, LOCK_UN);
  } else {
    portalock_error err;
    if (portalock_lock(fd, PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB, PORTALOCK_BACKEND_FLOCK, &err) !=
        PORTALOCK_OK)
      die_pl("portalock_lock", &err);
    if (portalock_unlock(fd, PORTALOCK_BACKEND_FLOCK, &err) != PORTALOCK_OK)
      die_pl("portalock_unlock", &err);
  }
  return now_ns() - t0;
}

static int cmd_uncontended(char **argv) {
  bench_lock b;
  bench_lock_init(&b, argv[0], argv[1], "default");
  int open_mode = strcmp(argv[2], "open") == 0;
  long n = atol(argv[3]);
  int fd = open(b.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) die("open");
  printf("samples");
  for (long i = 0; i < n; i++)
    printf(" %lld", (long long)(open_mode ? uncontended_open_one(&b) : uncontended_fd_one(&b, fd)));
  printf("\n");
  close(fd);
  return 0;
}

static int cmd_loop(char **argv) {
  int forever = strcmp(argv[4], "forever") == 0;
  if (!forever && strcmp(argv[4], "window") != 0) {
    fprintf(stderr, "driver: loop: TIMEOUT must be window or forever, not \"%s\"\n", argv[4]);
    return 2;
  }
  bench_lock b;
  bench_lock_init(&b, argv[0], argv[1], argv[3]);
  long hold_us = atol(argv[2]);
  int64_t start, end;
  if (read_window(&start, &end) != 0) return 2;
  sleep_until(start);
  int64_t cpu0 = cpu_ns();
  long count = 0, cap = 1024;
  int64_t *stamps = malloc(sizeof *stamps * (size_t)cap);
  if (!stamps) die("malloc");
  while (now_ns() < end) {
    double left = (double)(end - now_ns()) / 1e9;
    if (bench_acquire(&b, forever ? INFINITY : left > 0 ? left : 0) != 0) break;
    if (now_ns() >= end) {
      bench_release(&b);
      break;
    }
    if (count == cap) {
      cap *= 2;
      stamps = realloc(stamps, sizeof *stamps * (size_t)cap);
      if (!stamps) die("realloc");
    }
    stamps[count++] = now_ns();
    spin_us(hold_us);
    bench_release(&b);
  }
  printf("done %ld %lld", count, (long long)(cpu_ns() - cpu0));
  print_times(stamps, (size_t)count);
  free(stamps);
  return 0;
}

/* A job computes (spins) rather than sleeps: a sleep's wake-up comes late by the machine's
 * timer slack, which is no semaphore's doing. */
static void run_job(long job_ms) {
  int64_t t0 = now_ns();
  spin_us(job_ms * 1000);
  printf("job %lld %lld\n", (long long)t0, (long long)now_ns());
}

/* The processes share one pool of jobs, so that none is left alone with a backlog at the
 * end: a job is claimed, before waiting for a slot, by renaming its file (POOL/N, N from
 * 1 to JOBS); exactly one rename of a file succeeds. 1: a job was claimed, and *next is past it. */
static int claim_job(const char *pool, long jobs, long *next) {
  char from[512], to[512];
  for (; *next <= jobs; ++*next) {
    snprintf(from, sizeof from, "%s/%ld", pool, *next);
    snprintf(to, sizeof to, "%s/%ld.taken", pool, *next);
    if (rename(from, to) == 0) {
      ++*next;
      return 1;
    }
    if (errno != ENOENT) die("rename");
  }
  return 0;
}

static int sem_ref(const char *name, long slots, const char *pool, long jobs, long job_ms) {
  char sname[256];
  snprintf(sname, sizeof sname, "/%s", name);
  sem_t *sem = sem_open(sname, O_CREAT, 0600, (unsigned)slots);
  if (sem == SEM_FAILED) die("sem_open");
  for (long next = 1; claim_job(pool, jobs, &next);) {
    while (sem_wait(sem) != 0)
      if (errno != EINTR) die("sem_wait");
    run_job(job_ms);
    sem_post(sem);
  }
  sem_close(sem);
  return 0;
}

static int sem_portalock(const char *name, long slots, const char *pool, long jobs, long job_ms,
                         const char *ci) {
  portalock_bounded_semaphore_options opts;
  portalock_bounded_semaphore_options_init(&opts);
  opts.name = name;
  opts.directory = "/tmp";
  opts.timeout = WAIT_LIMIT;
  if (strcmp(ci, "default") != 0) opts.check_interval = atof(ci);
  portalock_bounded_semaphore_t *sem;
  portalock_error err;
  if (portalock_bounded_semaphore_new(&sem, slots, &opts, &err) != PORTALOCK_OK)
    die_pl("bounded_semaphore_new", &err);
  for (long next = 1; claim_job(pool, jobs, &next);) {
    if (portalock_bounded_semaphore_acquire(sem, &err) != PORTALOCK_OK)
      die_pl("bounded acquire", &err);
    run_job(job_ms);
    portalock_bounded_semaphore_release(sem, &err);
  }
  portalock_bounded_semaphore_free(sem);
  return 0;
}

static int cmd_sem(char **argv) {
  int64_t start, end;
  if (read_window(&start, &end) != 0) return 2;
  sleep_until(start);
  const char *pool = argv[3];
  long slots = atol(argv[2]), jobs = atol(argv[4]), job_ms = atol(argv[5]);
  int rc = strcmp(argv[0], "ref") == 0 ? sem_ref(argv[1], slots, pool, jobs, job_ms)
                                       : sem_portalock(argv[1], slots, pool, jobs, job_ms, argv[6]);
  printf("done\n");
  return rc;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 6 && strcmp(argv[1], "serve") == 0) return cmd_serve(argv + 2);
  if (argc == 5 && strcmp(argv[1], "firstwait") == 0) return cmd_firstwait(argv + 2);
  if (argc == 6 && strcmp(argv[1], "uncontended") == 0) return cmd_uncontended(argv + 2);
  if (argc == 7 && strcmp(argv[1], "loop") == 0) return cmd_loop(argv + 2);
  if (argc == 9 && strcmp(argv[1], "sem") == 0) return cmd_sem(argv + 2);
  if (argc == 2 && strcmp(argv[1], "held") == 0) {
    char line[64];
    printf("acquired %lld\n", (long long)now_ns());
    if (fgets(line, sizeof line, stdin)) printf("released %lld\n", (long long)now_ns());
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "stamp") == 0) {
    run_job(atol(argv[2]));
    return 0;
  }
  fprintf(stderr, "usage: see the comment at the top of bench/driver.c\n");
  return 2;
}
