/* RedisLock and RedisSemaphore against a real redis-server that the test starts on a free
 * loopback port (skipped, with a message, when redis-server is not installed). */
#include "redis_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The least an ACL user needs (README, "RedisLock and RedisSemaphore"): no admin command. */
static const char *const acl_rules[] = {
    "~portalock:*", "&*",       "+evalsha",        "+script|load",   "+subscribe", "+unsubscribe",
    "+publish",     "+select",  "+client|setname", "+pubsub|numsub", "+time",      "+get",
    "+set",         "+hget",    "+hset",           "+hdel",          "+hgetall",   "+zadd",
    "+zrem",        "+zpopmin", "+zrange",         "+pexpire",       "+pttl"};

static void test_acl_user(void) {
  tu_group("an ACL user with the README's rules (no admin commands) locks, renews and releases");
  char port[16];
  snprintf(port, sizeof port, "%d", rs_port);
  char *argv[64] = {"redis-cli", "-p", port, "ACL", "SETUSER", "locker", "on", ">secret"};
  size_t n = 8;
  for (size_t i = 0; i < sizeof acl_rules / sizeof acl_rules[0]; i++)
    argv[n++] = (char *)acl_rules[i];
  argv[n] = NULL;
  CHECK_INT(tu_run(argv), 0);
  portalock_redis_options o;
  char buf[128], url[128];
  snprintf(url, sizeof url, "redis://locker:secret@127.0.0.1:%d/2", rs_port);
  portalock_error err;
  portalock_redis_options_init(&o);
  CHECK_OK(portalock_redis_options_parse_url(&o, url, buf, sizeof buf, &err), &err);
  o.ttl = 0.3; /* renewed by the keep-alive thread during the sleep below */
  portalock_redis_session_t *s;
  CHECK_OK(portalock_redis_session_open(&s, &o, &err), &err);
  portalock_redis_lock_t *l;
  portalock_redis_semaphore_t *sem;
  CHECK_OK(portalock_redis_lock_new(&l, s, "acl", &err), &err);
  CHECK_OK(portalock_redis_semaphore_new(&sem, s, "acl-seats", 2, &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(l, 1, 0.01, 0, &err), &err);
  CHECK_OK(portalock_redis_semaphore_acquire_with(sem, 1, 0.01, 0, &err), &err);
  tu_sleep(0.5);
  CHECK(portalock_redis_lock_check(l) == NULL);
  CHECK_OK(portalock_redis_lock_ensure(l, &err), &err);
  CHECK_OK(portalock_redis_lock_release(l, &err), &err);
  CHECK_OK(portalock_redis_semaphore_release(sem, &err), &err);
  portalock_redis_lock_free(l);
  portalock_redis_semaphore_free(sem);
  portalock_redis_session_free(s);
}

static void test_lock_excludes(void) {
  tu_group("a lock excludes, tokens increase");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30), *b = rs_session(30);
  portalock_redis_lock_t *la, *lb;
  CHECK_OK(portalock_redis_lock_new(&la, a, "excl", &err), &err);
  CHECK_OK(portalock_redis_lock_new(&lb, b, "excl", &err), &err);
  CHECK_STR(portalock_redis_lock_check(la), "not held");
  CHECK_OK(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), &err);
  CHECK(portalock_redis_lock_check(la) == NULL);
  uint64_t first = portalock_redis_lock_token(la);
  CHECK(first > 0);
  CHECK_STATUS(portalock_redis_lock_acquire_with(lb, 0, 0.01, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_CONTAINS(err.message, "RedisLock 'excl' is locked: gave up");
  CHECK_STATUS(portalock_redis_lock_acquire_with(lb, 0.3, 0.01, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_OK(portalock_redis_lock_ensure(la, &err), &err);
  CHECK_OK(portalock_redis_lock_release(la, &err), &err);
  CHECK_STR(portalock_redis_lock_check(la), "not held");
  CHECK_INT(portalock_redis_lock_token(la), 0);
  CHECK_OK(portalock_redis_lock_acquire_with(lb, 0, 0.01, 0, &err), &err);
  CHECK(portalock_redis_lock_token(lb) > first);
  CHECK_OK(portalock_redis_lock_release(lb, &err), &err);
  CHECK_STATUS(portalock_redis_lock_release(lb, &err), PORTALOCK_INVALID, &err);
  portalock_redis_lock_free(la);
  portalock_redis_lock_free(lb);
  portalock_redis_session_free(a);
  portalock_redis_session_free(b);
}

struct waiter {
  portalock_redis_lock_t *lock;
  portalock_status status;
  double acquired_at;
};

static void *wait_for_lock(void *arg) {
  struct waiter *w = arg;
  portalock_error err;
  w->status = portalock_redis_lock_acquire_with(w->lock, 10, 5, 0, &err);
  w->acquired_at = tu_now();
  return NULL;
}

static void test_invisible(void) {
  tu_group("an invisible lock (no subscription to its name) and a visible one exclude each other");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30), *b = rs_session(30);
  portalock_redis_lock_t *la, *lb;
  CHECK_OK(portalock_redis_lock_new(&la, a, "invisible", &err), &err);
  CHECK_OK(portalock_redis_lock_new(&lb, b, "invisible", &err), &err);
  CHECK_OK(portalock_redis_lock_set_visible(la, 0, &err), &err);
  for (int round = 0; round < 3; round++) {
    CHECK_OK(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), &err);
    CHECK_STATUS(portalock_redis_lock_acquire_with(lb, 0, 0.01, 0, &err), PORTALOCK_ALREADY_LOCKED,
                 &err);
    CHECK_OK(portalock_redis_lock_release(la, &err), &err);
    CHECK_OK(portalock_redis_lock_acquire_with(lb, 0, 0.01, 0, &err), &err);
    CHECK_STATUS(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), PORTALOCK_ALREADY_LOCKED,
                 &err);
    CHECK_OK(portalock_redis_lock_release(lb, &err), &err);
  }
  CHECK_STATUS(portalock_redis_lock_set_visible(la, 1, &err), PORTALOCK_INVALID, &err);
  portalock_redis_lock_free(la);
  portalock_redis_lock_free(lb);
  portalock_redis_session_free(a);
  portalock_redis_session_free(b);
}

static void test_handoff_wakes(void) {
  tu_group("a release wakes the waiter (check_interval 5 s: no polling)");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30), *b = rs_session(30);
  portalock_redis_lock_t *la, *lb;
  CHECK_OK(portalock_redis_lock_new(&la, a, "handoff", &err), &err);
  CHECK_OK(portalock_redis_lock_new(&lb, b, "handoff", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), &err);
  struct waiter w = {.lock = lb};
  pthread_t t;
  pthread_create(&t, NULL, wait_for_lock, &w);
  tu_sleep(0.3);
  double released = tu_now();
  CHECK_OK(portalock_redis_lock_release(la, &err), &err);
  pthread_join(t, NULL);
  CHECK_INT(w.status, PORTALOCK_OK);
  /* Not by the re-check (PORTALOCK_REDIS_RECHECK_INTERVAL): by the release's wake-up. */
  CHECK_BETWEEN(w.acquired_at - released, 0, PORTALOCK_REDIS_RECHECK_INTERVAL / 2);
  CHECK_OK(portalock_redis_lock_release(lb, &err), &err);
  portalock_redis_lock_free(la);
  portalock_redis_lock_free(lb);
  portalock_redis_session_free(a);
  portalock_redis_session_free(b);
}

static void test_semaphore(void) {
  tu_group("a semaphore of 3 grants 3, refuses a 4th and a different maximum");
  portalock_error err;
  portalock_redis_session_t *s[4];
  portalock_redis_semaphore_t *sem[4];
  for (int i = 0; i < 4; i++) {
    s[i] = rs_session(30);
    CHECK_OK(portalock_redis_semaphore_new(&sem[i], s[i], "seats", 3, &err), &err);
  }
  for (int i = 0; i < 3; i++)
    CHECK_OK(portalock_redis_semaphore_acquire_with(sem[i], 0, 0.01, 0, &err), &err);
  CHECK_STATUS(portalock_redis_semaphore_acquire_with(sem[3], 0, 0.01, 0, &err),
               PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_CONTAINS(err.message, "RedisSemaphore 'seats' has all its 3 permits taken");
  portalock_redis_semaphore_t *other;
  CHECK_OK(portalock_redis_semaphore_new(&other, s[3], "seats", 5, &err), &err);
  CHECK_STATUS(portalock_redis_semaphore_acquire_with(other, 0, 0.01, 0, &err), PORTALOCK_INVALID,
               &err);
  CHECK_CONTAINS(err.message, "is in use with maximum 3 (every process that holds or waits");
  CHECK_OK(portalock_redis_semaphore_release(sem[1], &err), &err);
  CHECK_OK(portalock_redis_semaphore_acquire_with(sem[3], 0, 0.01, 0, &err), &err);
  for (int i = 0; i < 4; i++) {
    portalock_redis_semaphore_free(sem[i]); /* frees release what they hold */
    portalock_redis_session_free(s[i]);
  }

  tu_group("a new maximum is taken at once when nobody holds or waits any longer");
  /* (the maximum's key outlives the holders by up to 2 ttl: it must not refuse then) */
  CHECK_OK(portalock_redis_semaphore_acquire_with(other, 0, 0.01, 0, &err), &err);
  portalock_redis_semaphore_t *again;
  portalock_redis_session_t *s2 = rs_session(30);
  CHECK_OK(portalock_redis_semaphore_new(&again, s2, "seats", 3, &err), &err);
  CHECK_STATUS(portalock_redis_semaphore_acquire_with(again, 0, 0.01, 0, &err), PORTALOCK_INVALID,
               &err);
  CHECK_CONTAINS(err.message, "is in use with maximum 5");
  portalock_redis_semaphore_free(other); /* releases */
  CHECK_OK(portalock_redis_semaphore_acquire_with(again, 0, 0.01, 0, &err), &err);
  portalock_redis_semaphore_free(again);
  portalock_redis_session_free(s2);
}

static void test_loss(void) {
  tu_group("a killed subscription loses the grant at once; the next holder takes over");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30), *b = rs_session(30);
  portalock_redis_lock_t *la, *lb;
  CHECK_OK(portalock_redis_lock_new(&la, a, "loss", &err), &err);
  CHECK_OK(portalock_redis_lock_new(&lb, b, "loss", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), &err);
  uint64_t first = portalock_redis_lock_token(la);
  CHECK_INT(rs_cli("CLIENT", "KILL", "TYPE", "pubsub", NULL), 0); /* every session's subscription */
  struct pollfd p = {.fd = portalock_redis_session_fd(a), .events = POLLIN};
  CHECK_INT(poll(&p, 1, 5000), 1);
  CHECK_STR(portalock_redis_lock_check(la), "lost");
  CHECK(portalock_redis_session_lost(a) != NULL);
  CHECK_STATUS(portalock_redis_lock_ensure(la, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_STATUS(portalock_redis_lock_release(la, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  portalock_redis_lock_free(lb);
  portalock_redis_session_free(b); /* b's subscription was killed as well */
  b = rs_session(30);
  CHECK_OK(portalock_redis_lock_new(&lb, b, "loss", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(lb, 0, 0.01, 0, &err), &err);
  CHECK(portalock_redis_lock_token(lb) > first);
  uint64_t second = portalock_redis_lock_token(lb);

  tu_group("a fenced write with an older token is rejected");
  int written;
  CHECK_OK(portalock_redis_fenced_write(b, "fenced", second, "new", 3, &written, &err), &err);
  CHECK_INT(written, 1);
  CHECK_OK(portalock_redis_fenced_write(b, "fenced", first, "old", 3, &written, &err), &err);
  CHECK_INT(written, 0);
  portalock_redis_lock_free(la);
  portalock_redis_lock_free(lb);
  portalock_redis_session_free(a);
  portalock_redis_session_free(b);
}

static void test_fork(void) {
  tu_group("a forked child neither releases nor keeps its parent's grant");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30);
  portalock_redis_lock_t *la;
  CHECK_OK(portalock_redis_lock_new(&la, a, "fork", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), &err);
  tu_proc child;
  if (tu_fork(&child) == 0) {
    CHECK_STR(portalock_redis_lock_check(la), "forked");
    CHECK_OK(portalock_redis_lock_release(la, &err), &err); /* nothing to do in a child */
    portalock_redis_lock_free(la);
    portalock_redis_session_free(a);
    tu_child_exit(0);
  }
  CHECK_INT(tu_reap(&child), 0);
  CHECK(portalock_redis_lock_check(la) == NULL);
  CHECK_OK(portalock_redis_lock_ensure(la, &err), &err);
  portalock_redis_session_t *b = rs_session(30);
  portalock_redis_lock_t *lb;
  CHECK_OK(portalock_redis_lock_new(&lb, b, "fork", &err), &err);
  CHECK_STATUS(portalock_redis_lock_acquire_with(lb, 0, 0.01, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  portalock_redis_lock_free(lb);
  portalock_redis_lock_free(la);
  portalock_redis_session_free(a);
  portalock_redis_session_free(b);
}

/* The keep-alive thread takes no signals: a process-directed SIGTERM that the caller's thread
 * blocks (portalock_command_run does, to forward it) stays pending for the caller instead of
 * killing the process through the thread's default action. */
static void test_signals_stay_the_callers(void) {
  tu_group("the keep-alive thread takes no signals: they stay the caller's");
  tu_proc child;
  if (tu_fork(&child) == 0) {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    signal(SIGTERM, SIG_DFL);
    /* Blocked only after the session opened, as command_run blocks it: a thread started while
     * the caller blocked it would have inherited that mask. */
    portalock_redis_session_t *s = rs_session(30);
    CHECK_INT(pthread_sigmask(SIG_BLOCK, &term, NULL), 0);
    CHECK_INT(kill(getpid(), SIGTERM), 0);
    tu_sleep(0.3); /* time for another thread to take it */
    sigset_t pending;
    CHECK_INT(sigpending(&pending), 0);
    CHECK_INT(sigismember(&pending, SIGTERM), 1);
    int sig = 0;
    CHECK_INT(sigwait(&term, &sig), 0);
    portalock_redis_session_free(s);
    tu_child_exit(sig == SIGTERM ? 0 : 1);
  }
  CHECK_INT(tu_reap(&child), 0); /* 128 + SIGTERM when the thread took it */
}

static void test_name_status(void) {
  tu_group("the status of a name: its holders with their tokens, its maximum, changing nothing");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30), *b = rs_session(30), *asker = rs_session(30);
  portalock_redis_status st;
  CHECK_OK(portalock_redis_name_status(asker, "status-free", &st, &err), &err);
  CHECK(st.maximum == 0 && st.count == 0 && st.waiting == 0 && st.foreign == 0);
  portalock_redis_status_free(&st);
  portalock_redis_lock_t *l;
  CHECK_OK(portalock_redis_lock_new(&l, a, "status-lock", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(l, 0, 0.01, 0, &err), &err);
  CHECK_OK(portalock_redis_name_status(asker, "status-lock", &st, &err), &err);
  CHECK_INT(st.maximum, 1);
  CHECK_INT((long)st.count, 1);
  CHECK(st.holders[0].token == portalock_redis_lock_token(l));
  CHECK_INT((long)strlen(st.holders[0].session), 16);
  CHECK(st.holders[0].lease > 25 && st.holders[0].lease <= 30);
  CHECK_INT(st.foreign, 0); /* the lock's own subscription to its channel is portalock's */
  portalock_redis_status_free(&st);
  CHECK(st.holders == NULL && st.count == 0);
  CHECK_OK(portalock_redis_lock_release(l, &err), &err);
  CHECK_OK(portalock_redis_name_status(asker, "status-lock", &st, &err), &err);
  CHECK_INT((long)st.count, 0);
  portalock_redis_status_free(&st);
  portalock_redis_lock_free(l);

  portalock_redis_semaphore_t *s1, *s2;
  CHECK_OK(portalock_redis_semaphore_new(&s1, a, "status-seats", 3, &err), &err);
  CHECK_OK(portalock_redis_semaphore_new(&s2, b, "status-seats", 3, &err), &err);
  CHECK_OK(portalock_redis_semaphore_acquire_with(s2, 0, 0.01, 0, &err), &err);
  CHECK_OK(portalock_redis_semaphore_acquire_with(s1, 0, 0.01, 0, &err), &err);
  CHECK_OK(portalock_redis_name_status(asker, "status-seats", &st, &err), &err);
  CHECK_INT(st.maximum, 3);
  CHECK_INT((long)st.count, 2);
  CHECK(st.holders[0].token == portalock_redis_semaphore_token(s2)); /* oldest first */
  CHECK(st.holders[1].token == portalock_redis_semaphore_token(s1));
  CHECK(strcmp(st.holders[0].session, st.holders[1].session) != 0);
  portalock_redis_status_free(&st);
  /* a holder that left is no longer counted */
  portalock_redis_session_free(b);
  portalock_redis_semaphore_free(s2);
  CHECK_OK(portalock_redis_name_status(asker, "status-seats", &st, &err), &err);
  CHECK_INT((long)st.count, 1);
  portalock_redis_status_free(&st);
  portalock_redis_semaphore_free(s1);

  CHECK_STATUS(portalock_redis_name_status(asker, "", &st, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'name'");
  CHECK_STATUS(portalock_redis_name_status(NULL, "x", &st, &err), PORTALOCK_INVALID, &err);
  portalock_redis_session_free(a);
  portalock_redis_session_free(asker);
}

static void test_bad_input(void) {
  tu_group("bad options and an unreachable server are clear errors");
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  portalock_redis_session_t *s;
  portalock_error err;
  o.ttl = 0;
  CHECK_STATUS(portalock_redis_session_open(&s, &o, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'ttl' (0)");
  portalock_redis_options_init(&o);
  o.port = rs_free_port();
  CHECK_STATUS(portalock_redis_session_open(&s, &o, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_CONTAINS(err.message, "cannot connect to Redis at 127.0.0.1:");
  s = rs_session(30);
  portalock_redis_lock_t *l;
  CHECK_STATUS(portalock_redis_lock_new(&l, s, "", &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'name'");
  portalock_redis_semaphore_t *sem;
  CHECK_STATUS(portalock_redis_semaphore_new(&sem, s, "x", 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'maximum' (0)");
  portalock_redis_session_free(s);
}

int main(void) {
  tu_init("redis");
  if (rs_start() < 0) {
    printf("redis: SKIPPED: redis-server could not be started (Debian: redis-server)\n");
    return 0;
  }
  int fds = tu_count_fds();
  test_lock_excludes();
  test_invisible();
  test_handoff_wakes();
  test_semaphore();
  test_loss();
  test_fork();
  test_signals_stay_the_callers();
  test_name_status();
  test_bad_input();
  test_acl_user();
  CHECK_INT(tu_count_fds(), fds);
  rs_stop();
  return tu_done();
}
