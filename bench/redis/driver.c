/*
 * Benchmark driver in C for bench/redis/run: portalock's RedisLock through the C API
 * ("redis"; "redis-hidden": not visible to Python portalocker, portalock_redis_lock_set_visible),
 * one EVALSHA round trip of a trivial script through hiredis ("evalsha"; "evalsha-idle": each
 * after a pause), and portalock's local file Lock ("file").
 *
 *   driver serve IMPL NAME CI WAIT   stdin: acquire | release (as bench/driver.c's serve)
 *   driver uncontended IMPL NAME N   N acquire+release on an open session (a Lock: an open
 *                                    handle; evalsha: N round trips): "samples NS..."
 *   driver loop IMPL NAME            prints ready, reads "START_NS END_NS", acquires and
 *                                    releases until END_NS, prints "done COUNT CPU_NS" and the
 *                                    time of every acquire
 *
 * The server is $PORTALOCK_BENCH_REDIS (a URL); NAME is the lock's name (file: its path). CI is
 * the check_interval in seconds or "default"; WAIT is accepted for bench/benchlib's
 * DriverHolder and ignored: every wait is bounded by WAIT_LIMIT only. Every option not named
 * here is the library's default (the lease: PORTALOCK_REDIS_DEFAULT_TTL). Times are
 * CLOCK_MONOTONIC nanoseconds.
 */
#define _GNU_SOURCE
#include "../driver.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const char *why) {
  fprintf(stderr, "driver: %s: %s\n", what, why);
  exit(2);
}

/* ---------------------------------------------------------------- one lock, two kinds */

typedef struct bench_lock {
  portalock_redis_session_t *session; /* "redis" */
  portalock_redis_lock_t *redis;
  portalock_lock_t *file; /* "file" */
  double check_interval;
} bench_lock;

/* The server's options from $PORTALOCK_BENCH_REDIS; the strings point into `buf`. */
static void server_options(portalock_redis_options *o, char *buf, size_t cap) {
  const char *url = getenv("PORTALOCK_BENCH_REDIS");
  if (url == NULL) die("PORTALOCK_BENCH_REDIS", "not set");
  portalock_redis_options_init(o);
  portalock_error err;
  if (portalock_redis_options_parse_url(o, url, buf, cap, &err) != PORTALOCK_OK)
    die_pl("PORTALOCK_BENCH_REDIS", &err);
}

static void bench_lock_init(bench_lock *b, const char *impl, const char *name, const char *ci) {
  memset(b, 0, sizeof *b);
  b->check_interval = strcmp(ci, "default") == 0 ? PORTALOCK_DEFAULT_CHECK_INTERVAL : atof(ci);
  portalock_error err;
  if (strcmp(impl, "file") == 0) {
    if (portalock_lock_new(&b->file, name, NULL, &err) != PORTALOCK_OK) die_pl("lock_new", &err);
    return;
  }
  int hidden = strcmp(impl, "redis-hidden") == 0;
  if (strcmp(impl, "redis") != 0 && !hidden) die(impl, "IMPL must be redis, redis-hidden or file");
  static char buf[1024];
  portalock_redis_options o;
  server_options(&o, buf, sizeof buf);
  if (portalock_redis_session_open(&b->session, &o, &err) != PORTALOCK_OK)
    die_pl("session_open", &err);
  if (portalock_redis_lock_new(&b->redis, b->session, name, &err) != PORTALOCK_OK)
    die_pl("redis_lock_new", &err);
  if (hidden && portalock_redis_lock_set_visible(b->redis, 0, &err) != PORTALOCK_OK)
    die_pl("redis_lock_set_visible", &err);
}

/* Blocks until held (at most `timeout` seconds): 0, or -1 when the timeout ran out. */
static int bench_acquire(bench_lock *b, double timeout) {
  portalock_error err;
  portalock_status s =
      b->redis != NULL
          ? portalock_redis_lock_acquire_with(b->redis, timeout, b->check_interval, 0, &err)
          : portalock_lock_acquire_with(b->file, timeout, b->check_interval, 0, &err);
  if (s == PORTALOCK_ALREADY_LOCKED) return -1;
  if (s != PORTALOCK_OK) die_pl("acquire", &err);
  return 0;
}

static void bench_release(bench_lock *b) {
  portalock_error err;
  portalock_status s = b->redis != NULL ? portalock_redis_lock_release(b->redis, &err)
                                        : portalock_lock_release(b->file, &err);
  if (s != PORTALOCK_OK) die_pl("release", &err);
}

/* ---------------------------------------------------------------- commands */

static int serve_acquire(void *b, double timeout) {
  return bench_acquire(b, timeout);
}
static void serve_release(void *b) {
  bench_release(b);
}

static int serve(const char *impl, const char *name, const char *ci) {
  bench_lock b;
  bench_lock_init(&b, impl, name, ci);
  /* the exit ends the session: whatever is held goes with it */
  return serve_stdin(&b, WAIT_LIMIT, serve_acquire, serve_release);
}

/* N round trips of EVALSHA of "return 1" on one hiredis connection; `idle`: each after a
 * pause of 5 ms + U(0, 50 ms), which lets the server and this process fall asleep as a waiter
 * does (a round trip in a tight loop finds both awake). */
static void evalsha_samples(int64_t *samples, long n, int idle) {
  static char buf[1024];
  portalock_redis_options o;
  server_options(&o, buf, sizeof buf);
  redisContext *c = o.path != NULL ? redisConnectUnix(o.path)
                                   : redisConnect(o.host != NULL ? o.host : "127.0.0.1", o.port);
  if (c == NULL || c->err) die("redisConnect", c != NULL ? c->errstr : "no memory");
  redisReply *r = redisCommand(c, "SCRIPT LOAD %s", "return 1");
  if (r == NULL || r->type != REDIS_REPLY_STRING) die("SCRIPT LOAD", c->errstr);
  char sha[64];
  snprintf(sha, sizeof sha, "%s", r->str);
  freeReplyObject(r);
  for (long i = 0; i < n; i++) {
    if (idle) sleep_until(now_ns() + 5000000 + (int64_t)(drand48() * 50e6));
    int64_t t0 = now_ns();
    r = redisCommand(c, "EVALSHA %s 0", sha);
    samples[i] = now_ns() - t0;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) die("EVALSHA", c->errstr);
    freeReplyObject(r);
  }
  redisFree(c);
}

static int uncontended(const char *impl, const char *name, long n) {
  int64_t *samples = malloc(sizeof *samples * (size_t)n);
  if (samples == NULL) die("malloc", strerror(errno));
  if (strncmp(impl, "evalsha", 7) == 0) {
    evalsha_samples(samples, n, strcmp(impl, "evalsha-idle") == 0);
  } else {
    bench_lock b;
    bench_lock_init(&b, impl, name, "default");
    for (long i = 0; i < n; i++) {
      int64_t t0 = now_ns();
      if (bench_acquire(&b, 0) != 0) die("acquire", "the lock is held by another");
      bench_release(&b);
      samples[i] = now_ns() - t0;
    }
  }
  printf("samples");
  print_times(samples, (size_t)n);
  free(samples);
  return 0;
}

static int loop(const char *impl, const char *name) {
  bench_lock b;
  bench_lock_init(&b, impl, name, "default");
  int64_t start, end;
  if (read_window(&start, &end) != 0) die("loop", "no window on stdin");
  /* room for every acquisition the window can hold (a file Lock's acquire+release takes more
   * than 2 µs): growing the array during the window would take the loop's time */
  size_t cap = (size_t)((end - start) / 2000) + 1024, count = 0;
  int64_t *stamps = malloc(sizeof *stamps * cap);
  if (stamps == NULL) die("malloc", strerror(errno));
  sleep_until(start);
  int64_t cpu0 = cpu_ns();
  for (int64_t left; (left = end - now_ns()) > 0 && count < cap;) {
    /* the time left, read once: read again, it may have gone negative meanwhile */
    if (bench_acquire(&b, (double)left / 1e9) != 0) break;
    stamps[count++] = now_ns();
    bench_release(&b);
  }
  if (count == cap) die("loop", "more acquisitions than room for their times");
  printf("done %zu %lld", count, (long long)(cpu_ns() - cpu0));
  print_times(stamps, count);
  free(stamps);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "serve") == 0) return serve(argv[2], argv[3], argv[4]);
  if (argc == 5 && strcmp(argv[1], "uncontended") == 0)
    return uncontended(argv[2], argv[3], atol(argv[4]));
  if (argc == 4 && strcmp(argv[1], "loop") == 0) return loop(argv[2], argv[3]);
  fprintf(stderr, "usage: driver serve IMPL NAME CI WAIT | uncontended IMPL NAME N | "
                  "loop IMPL NAME\n");
  return 2;
}
