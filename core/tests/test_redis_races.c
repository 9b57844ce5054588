/* The Redis backend under races and faults: wake-ups that must not be lost, a keep-alive thread
 * that renews while its session's threads acquire and release, fork while a command is in
 * flight, sessions refused or cut off half-way, timeouts, on_lost, edge values, and threads
 * sharing a session while the server kills its connections. */
#include "redis_server.h"

#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Seconds until `fd` is readable, or -1 when it is not within `limit`. */
static double readable_within(int fd, double limit) {
  double start = tu_now();
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, (int)(limit * 1000)) != 1) return -1;
  return tu_now() - start;
}

/* Empties a wait's descriptor (an eventfd or a pipe) of what has woken it so far. */
static void drain(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

static void test_wakeup_passed_on(int visible) {
  tu_group(visible ? "a woken waiter that gives up passes its wake-up on (visible)"
                   : "a woken waiter that gives up passes its wake-up on (invisible)");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30), *b = rs_session(30), *c = rs_session(30);
  portalock_redis_lock_t *holder, *first, *second;
  CHECK_OK(portalock_redis_lock_new(&holder, a, "passed-on", &err), &err);
  CHECK_OK(portalock_redis_lock_new(&first, b, "passed-on", &err), &err);
  CHECK_OK(portalock_redis_lock_new(&second, c, "passed-on", &err), &err);
  CHECK_OK(portalock_redis_lock_set_visible(first, visible, &err), &err);
  CHECK_OK(portalock_redis_lock_set_visible(second, visible, &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(holder, 0, 0.01, 0, &err), &err);
  portalock_acquisition acq1, acq2;
  portalock_wait wait1, wait2;
  CHECK_OK(portalock_redis_lock_begin(&acq1, first, 10, 5, 0, &err), &err);
  CHECK_STATUS(portalock_step(&acq1, -1, &wait1, &err), PORTALOCK_CONTENDED, &err);
  CHECK_OK(portalock_redis_lock_begin(&acq2, second, 10, 5, 0, &err), &err);
  CHECK_STATUS(portalock_step(&acq2, -1, &wait2, &err), PORTALOCK_CONTENDED, &err);
  /* The subscriptions' confirmations wake too: only a release's wake-up may count below. */
  tu_sleep(0.2);
  drain(wait1.fd);
  drain(wait2.fd);
  CHECK_OK(portalock_redis_lock_release(holder, &err), &err);
  /* The first in the queue is woken, and gives up instead of taking the lock. */
  CHECK(readable_within(wait1.fd, 2) >= 0);
  portalock_give_up(&acq1);
  /* The second is woken by that, not by its re-check. */
  double woken = readable_within(wait2.fd, 1);
  CHECK_BETWEEN(woken, 0, PORTALOCK_REDIS_RECHECK_INTERVAL / 2);
  CHECK_OK(portalock_step(&acq2, -1, &wait2, &err), &err);
  CHECK(portalock_redis_lock_check(second) == NULL);
  CHECK_OK(portalock_redis_lock_release(second, &err), &err);
  portalock_redis_lock_free(holder);
  portalock_redis_lock_free(first);
  portalock_redis_lock_free(second);
  portalock_redis_session_free(a);
  portalock_redis_session_free(b);
  portalock_redis_session_free(c);
}

/* ---------------------------------------------------------------- renewals */

struct cycler {
  portalock_redis_session_t *session;
  char name[32];
  double until;
  int cycles, lost;
};

/* Acquires and releases its own handle until `until`, counting the grants that are reported
 * lost although nothing took them (the server is healthy, the lease far from its end). */
static void *cycle(void *arg) {
  struct cycler *c = arg;
  portalock_error err;
  portalock_redis_semaphore_t *sem;
  CHECK_OK(portalock_redis_semaphore_new(&sem, c->session, c->name, 1000, &err), &err);
  while (tu_now() < c->until) {
    CHECK_OK(portalock_redis_semaphore_acquire_with(sem, 0, 0.01, 0, &err), &err);
    /* Holds the grant a moment, as a caller that checks it while working would. */
    for (int spin = 0; spin < 200 && portalock_redis_semaphore_check(sem) == NULL; spin++) {
    }
    if (portalock_redis_semaphore_check(sem) != NULL) c->lost++;
    if (portalock_redis_semaphore_release(sem, &err) != PORTALOCK_OK) c->lost++;
    c->cycles++;
  }
  portalock_redis_semaphore_free(sem);
  return NULL;
}

/* Holds the session's mutex as often as it can (portalock_redis_lock_check takes it), so that
 * the keep-alive thread waits for it between a renewal's reply and its reading. */
static void *contend(void *arg) {
  struct cycler *c = arg;
  portalock_error err;
  portalock_redis_lock_t *l;
  CHECK_OK(portalock_redis_lock_new(&l, c->session, c->name, &err), &err);
  while (tu_now() < c->until)
    portalock_redis_lock_check(l);
  portalock_redis_lock_free(l);
  return NULL;
}

static void test_renewal_of_a_reused_grant(void) {
  tu_group("a renewal answered for a grant released meanwhile does not lose its successor");
  /* A semaphore (like an invisible lock) keeps its channel, the grant's id, from one
   * acquisition to the next: a renewal that the server answers after the release, and the
   * keep-alive thread reads after the next grant, must not count against that grant. */
  portalock_redis_session_t *s = rs_session(0.15);
  enum { N = 6 };
  struct cycler c[N];
  pthread_t t[N];
  double until = tu_now() + 3;
  for (int i = 0; i < N; i++) {
    c[i] = (struct cycler){.session = s, .until = until};
    snprintf(c[i].name, sizeof c[i].name, "reuse-%d", i % 2);
    pthread_create(&t[i], NULL, cycle, &c[i]);
  }
  struct cycler busy = {.session = s, .name = "reuse-busy", .until = until};
  pthread_t busy_thread;
  pthread_create(&busy_thread, NULL, contend, &busy);
  int cycles = 0, lost = 0;
  pthread_join(busy_thread, NULL);
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    cycles += c[i].cycles;
    lost += c[i].lost;
  }
  printf("redis_races: %d acquisitions, %d reported lost\n", cycles, lost);
  CHECK(cycles > 100);
  CHECK_INT(lost, 0);
  portalock_redis_session_free(s);
}

/* ---------------------------------------------------------------- fork */

static void *ensure_lock(void *arg) {
  portalock_error err;
  CHECK_OK(portalock_redis_lock_ensure(arg, &err), &err);
  return NULL;
}

static void test_fork_during_a_command(void) {
  tu_group("a child forked while another thread waits for a reply is not stuck");
  portalock_error err;
  portalock_redis_session_t *a = rs_session(30);
  portalock_redis_lock_t *la;
  CHECK_OK(portalock_redis_lock_new(&la, a, "fork-in-flight", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), &err);
  CHECK_INT(rs_cli("CLIENT", "PAUSE", "1500", "ALL", NULL), 0);
  pthread_t t;
  pthread_create(&t, NULL, ensure_lock, la); /* waits for the server with the command mutex */
  tu_sleep(0.3);
  tu_proc child;
  if (tu_fork(&child) == 0) {
    int written = -1;
    CHECK_STATUS(portalock_redis_fenced_write(a, "fork-key", 1, "v", 1, &written, &err),
                 PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_CONTAINS(err.message, "forked");
    CHECK_STR(portalock_redis_lock_check(la), "forked");
    CHECK_OK(portalock_redis_lock_release(la, &err), &err);
    portalock_redis_lock_free(la);
    portalock_redis_session_free(a);
    tu_send(&child, 'D');
    tu_child_exit(0);
  }
  double done = readable_within(child.from, 3);
  if (done < 0) tu_kill(&child);
  CHECK_BETWEEN(done, 0, 0.8); /* before the pause ends */
  if (done >= 0) {
    CHECK_INT(tu_recv(&child), 'D');
    CHECK_INT(tu_reap(&child), 0);
  }
  pthread_join(t, NULL);
  CHECK(portalock_redis_lock_check(la) == NULL);
  CHECK_OK(portalock_redis_lock_release(la, &err), &err);
  portalock_redis_lock_free(la);
  portalock_redis_session_free(a);
}

/* ---------------------------------------------------------------- timeouts and losses */

static void test_command_timeout(void) {
  tu_group("a command that outlasts command_timeout loses the session, and its grant with it");
  portalock_error err;
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  o.port = rs_port;
  o.command_timeout = 0.3;
  portalock_redis_session_t *a, *b = rs_session(30);
  CHECK_OK(portalock_redis_session_open(&a, &o, &err), &err);
  portalock_redis_lock_t *la, *lb;
  CHECK_OK(portalock_redis_lock_new(&la, a, "timeout", &err), &err);
  CHECK_OK(portalock_redis_lock_new(&lb, b, "timeout", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(la, 0, 0.01, 0, &err), &err);
  double paused = tu_now();
  CHECK_INT(rs_cli("CLIENT", "PAUSE", "1000", "ALL", NULL), 0);
  CHECK_STATUS(portalock_redis_lock_ensure(la, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_CONTAINS(err.message, "command_timeout");
  CHECK_BETWEEN(tu_now() - paused, 0.25, 0.9);
  CHECK_STR(portalock_redis_session_lost(a), "a command timed out");
  CHECK_STR(portalock_redis_lock_check(la), "lost");
  /* The late reply is never read as the answer to another command: the session is over. */
  CHECK_STATUS(portalock_redis_fenced_write(a, "timeout-key", 1, "v", 1, &(int){0}, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_STATUS(portalock_redis_lock_release(la, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  /* Once the pause ends, the lost session's grant is gone with its connections. */
  CHECK_OK(portalock_redis_lock_acquire_with(lb, 3, 0.01, 0, &err), &err);
  CHECK_BETWEEN(tu_now() - paused, 0.9, 1.5);
  portalock_redis_lock_free(la);
  portalock_redis_lock_free(lb);
  portalock_redis_session_free(a);
  portalock_redis_session_free(b);
}

struct losses {
  pthread_mutex_t mutex;
  pthread_t caller;
  int calls, on_caller;
  char reason[128];
};

/* An on_lost callback that takes a mutex of the application's, as one that sets a flag would. */
static void record_loss(void *data, const char *name, const char *reason) {
  struct losses *l = data;
  pthread_mutex_lock(&l->mutex);
  l->calls++;
  l->on_caller += pthread_equal(pthread_self(), l->caller) != 0;
  snprintf(l->reason, sizeof l->reason, "%s: %s", name, reason ? reason : "(none)");
  pthread_mutex_unlock(&l->mutex);
}

static int losses_seen(struct losses *l, double limit) {
  for (double end = tu_now() + limit;; tu_sleep(0.01)) {
    pthread_mutex_lock(&l->mutex);
    int calls = l->calls;
    pthread_mutex_unlock(&l->mutex);
    if (calls > 0 || tu_now() > end) return calls;
  }
}

static void test_on_lost_thread(void) {
  tu_group("on_lost runs on the keep-alive thread, also for a loss a caller's thread finds");
  portalock_error err;
  struct losses l = {.mutex = PTHREAD_MUTEX_INITIALIZER, .caller = pthread_self()};
  portalock_redis_session_t *s = rs_session(30);
  portalock_redis_session_on_lost(s, record_loss, &l);
  portalock_redis_lock_t *lock;
  CHECK_OK(portalock_redis_lock_new(&lock, s, "on-lost", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(lock, 0, 0.01, 0, &err), &err);
  /* The server drops the grant (as a failover would); ensure() is the first to see it. */
  CHECK_INT(rs_cli("DEL", "portalock:{on-lost}:holders", NULL), 0);
  pthread_mutex_lock(&l.mutex); /* held around the call: a callback on this thread would hang */
  CHECK_STATUS(portalock_redis_lock_ensure(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  /* Meanwhile the keep-alive thread's callback waits for l.mutex: holding no lock of the
   * session's, else this check, which takes the session's mutex, would wait for ever. */
  tu_sleep(0.2);
  CHECK_STR(portalock_redis_lock_check(lock), "lost");
  pthread_mutex_unlock(&l.mutex);
  CHECK_INT(losses_seen(&l, 2), 1);
  CHECK_INT(l.on_caller, 0);
  CHECK_CONTAINS(l.reason, "on-lost: ");
  CHECK(readable_within(portalock_redis_session_fd(s), 0) >= 0);
  CHECK_STATUS(portalock_redis_lock_release(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);

  tu_group("on_lost for a loss whose handle is released, and freed, before the report");
  l.calls = 0;
  CHECK_OK(portalock_redis_lock_acquire_with(lock, 0, 0.01, 0, &err), &err);
  CHECK_INT(rs_cli("DEL", "portalock:{on-lost}:holders", NULL), 0);
  pthread_mutex_lock(&l.mutex); /* the callback waits until the handle is gone */
  CHECK_STATUS(portalock_redis_lock_ensure(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_STATUS(portalock_redis_lock_release(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  portalock_redis_lock_free(lock);
  pthread_mutex_unlock(&l.mutex);
  CHECK_INT(losses_seen(&l, 2), 1);
  CHECK_CONTAINS(l.reason, "on-lost: ");
  CHECK_OK(portalock_redis_lock_new(&lock, s, "on-lost", &err), &err);

  tu_group("on_lost for a session lost by a caller's command that timed out");
  l.calls = 0;
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  o.port = rs_port;
  o.command_timeout = 0.3;
  portalock_redis_session_t *t;
  CHECK_OK(portalock_redis_session_open(&t, &o, &err), &err);
  portalock_redis_session_on_lost(t, record_loss, &l);
  portalock_redis_lock_t *other;
  CHECK_OK(portalock_redis_lock_new(&other, t, "on-lost-timeout", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(other, 0, 0.01, 0, &err), &err);
  CHECK_INT(rs_cli("CLIENT", "PAUSE", "700", "ALL", NULL), 0);
  pthread_mutex_lock(&l.mutex);
  CHECK_STATUS(portalock_redis_lock_ensure(other, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  pthread_mutex_unlock(&l.mutex);
  CHECK_INT(losses_seen(&l, 2), 1);
  CHECK_INT(l.on_caller, 0);
  CHECK_CONTAINS(l.reason, "on-lost-timeout: a command timed out");
  portalock_redis_lock_free(other);
  portalock_redis_session_free(t);
  portalock_redis_lock_free(lock);
  portalock_redis_session_free(s);
  tu_sleep(0.5); /* the pause's end */
}

struct acquirer {
  portalock_redis_lock_t *lock;
  portalock_status status;
  atomic_int done;
};

static void *acquire_lock(void *arg) {
  struct acquirer *a = arg;
  portalock_error err;
  a->status = portalock_redis_lock_acquire_with(a->lock, 2, 0.01, 0, &err);
  atomic_store(&a->done, 1);
  return NULL;
}

static void test_half_open_subscription(void) {
  tu_group("a subscription the server dropped while this end saw nothing: the attempt fails");
  /* Through a proxy that closes its server side of the subscription and keeps the client's
   * open and mute: the grant script then finds no subscriber although the server confirmed
   * it before. */
  rs_proxy_start();
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  o.port = rs_proxy_port;
  portalock_redis_session_t *s;
  portalock_error err;
  CHECK_OK(portalock_redis_session_open(&s, &o, &err), &err);
  portalock_redis_lock_t *l;
  CHECK_OK(portalock_redis_lock_new(&l, s, "half-open", &err), &err);
  CHECK_OK(portalock_redis_lock_set_visible(l, 0, &err), &err); /* keeps its subscription */
  CHECK_OK(portalock_redis_lock_acquire_with(l, 0, 0.01, 0, &err), &err);
  CHECK_OK(portalock_redis_lock_release(l, &err), &err);
  rs_proxy_cut(1); /* the session's second connection: its subscription */
  struct acquirer a = {.lock = l};
  pthread_t t;
  pthread_create(&t, NULL, acquire_lock, &a);
  double start = tu_now();
  while (!atomic_load(&a.done) && tu_now() - start < 5)
    tu_sleep(0.01);
  CHECK(atomic_load(&a.done)); /* else it spins, one round trip after another, for ever */
  pthread_join(t, NULL);
  CHECK_INT(a.status, PORTALOCK_LOCK_EXCEPTION);
  CHECK(portalock_redis_session_lost(s) != NULL);
  portalock_redis_lock_free(l);
  portalock_redis_session_free(s);
  rs_proxy_stop();
}

/* ---------------------------------------------------------------- edge values */

static void test_edge_values(void) {
  tu_group("a semaphore's maximum is kept exactly, however large");
  portalock_error err;
  portalock_redis_session_t *s = rs_session(30);
  static const long maxima[][2] = {{100000000000001L, 100000000000000L}, {LONG_MAX, LONG_MAX - 1}};
  for (size_t i = 0; i < sizeof maxima / sizeof maxima[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "large-%zu", i);
    portalock_redis_semaphore_t *one, *two, *other;
    CHECK_OK(portalock_redis_semaphore_new(&one, s, name, maxima[i][0], &err), &err);
    CHECK_OK(portalock_redis_semaphore_new(&two, s, name, maxima[i][0], &err), &err);
    CHECK_OK(portalock_redis_semaphore_new(&other, s, name, maxima[i][1], &err), &err);
    CHECK_OK(portalock_redis_semaphore_acquire_with(one, 0, 0.01, 0, &err), &err);
    CHECK_OK(portalock_redis_semaphore_acquire_with(two, 0, 0.01, 0, &err), &err);
    CHECK_STATUS(portalock_redis_semaphore_acquire_with(other, 0, 0.01, 0, &err), PORTALOCK_INVALID,
                 &err);
    char expected[64];
    snprintf(expected, sizeof expected, "is in use with maximum %ld", maxima[i][0]);
    CHECK_CONTAINS(err.message, expected);
    portalock_redis_semaphore_free(one);
    portalock_redis_semaphore_free(two);
    portalock_redis_semaphore_free(other);
  }

  tu_group("names with spaces, braces and the longest length");
  static char longest[1026];
  memset(longest, 'n', 1024);
  const char *names[] = {"with space", "{braced}", "}{", "a}b{c", longest};
  portalock_redis_session_t *other = rs_session(30);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    portalock_redis_lock_t *l1, *l2;
    CHECK_OK(portalock_redis_lock_new(&l1, s, names[i], &err), &err);
    CHECK_OK(portalock_redis_lock_new(&l2, other, names[i], &err), &err);
    CHECK_OK(portalock_redis_lock_acquire_with(l1, 0, 0.01, 0, &err), &err);
    CHECK_STATUS(portalock_redis_lock_acquire_with(l2, 0, 0.01, 0, &err), PORTALOCK_ALREADY_LOCKED,
                 &err);
    CHECK_OK(portalock_redis_lock_release(l1, &err), &err);
    CHECK_OK(portalock_redis_lock_acquire_with(l2, 0, 0.01, 0, &err), &err);
    portalock_redis_lock_free(l1);
    portalock_redis_lock_free(l2);
  }
  longest[1024] = 'n';
  portalock_redis_lock_t *l;
  CHECK_STATUS(portalock_redis_lock_new(&l, s, longest, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'name'");
  portalock_redis_session_free(other);
  portalock_redis_session_free(s);

  tu_group("the longest lease and timeouts the options allow");
  portalock_redis_options longest_options;
  portalock_redis_options_init(&longest_options);
  longest_options.port = rs_port;
  longest_options.ttl = longest_options.command_timeout = longest_options.connect_timeout =
      86400 * 365;
  CHECK_OK(portalock_redis_session_open(&s, &longest_options, &err), &err);
  portalock_redis_lock_t *year;
  CHECK_OK(portalock_redis_lock_new(&year, s, "a-year", &err), &err);
  CHECK_OK(portalock_redis_lock_acquire_with(year, 1, 0.01, 0, &err), &err);
  CHECK_OK(portalock_redis_lock_ensure(year, &err), &err);
  CHECK_OK(portalock_redis_lock_release(year, &err), &err);
  portalock_redis_lock_free(year);
  portalock_redis_session_free(s);

  tu_group("NULL and a lease shorter than the server's millisecond are clear errors");
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  o.port = rs_port;
  o.ttl = 0.0005;
  portalock_redis_session_t *bad;
  CHECK_STATUS(portalock_redis_session_open(&bad, &o, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'ttl' (0.0005)");
  CHECK_STATUS(portalock_redis_session_open(&bad, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'opts' (NULL)");
  o.ttl = 30;
  CHECK_STATUS(portalock_redis_session_open(NULL, &o, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'out' (NULL)");
  s = rs_session(30);
  CHECK_STATUS(portalock_redis_lock_new(NULL, s, "x", &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'out' (NULL)");
  CHECK_STATUS(portalock_redis_semaphore_new(NULL, s, "x", 2, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'out' (NULL)");
  CHECK_STATUS(portalock_redis_fenced_write(s, "k", 1, "v", 1, NULL, &err), PORTALOCK_INVALID,
               &err);
  CHECK_CONTAINS(err.message, "bad argument 'written' (NULL)");
  portalock_redis_session_free(s);
}

/* ---------------------------------------------------------------- failures half-way */

static portalock_status open_as(const char *username, const char *password, int port,
                                double timeout, portalock_redis_session_t **s,
                                portalock_error *err) {
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  o.port = port;
  o.username = username;
  o.password = password;
  o.connect_timeout = o.command_timeout = timeout;
  return portalock_redis_session_open(s, &o, err);
}

/* The descriptor the next open would take. */
static int lowest_free_fd(void) {
  int fd = dup(0);
  close(fd);
  return fd;
}

/* Lets this process open only `spare` descriptors more (the lowest free ones). */
static void limit_fds(int spare, const struct rlimit *saved) {
  struct rlimit tight = {.rlim_cur = (rlim_t)(lowest_free_fd() + spare),
                         .rlim_max = saved->rlim_max};
  CHECK(setrlimit(RLIMIT_NOFILE, &tight) == 0);
}

static void test_open_failures(void) {
  tu_group("a session refused half-way (AUTH, SCRIPT LOAD, SUBSCRIBE) closes what it opened");
  portalock_error err;
  portalock_redis_session_t *s = NULL;
  int fds = tu_count_fds();
  CHECK_INT(rs_cli("ACL", "SETUSER", "noscript", "on", ">pw", "~*", "&*", "+@all", "-script", NULL),
            0);
  CHECK_INT(rs_cli("ACL", "SETUSER", "nosub", "on", ">pw", "~*", "resetchannels", "+@all", NULL),
            0);
  CHECK_STATUS(open_as(NULL, "wrong", rs_port, 5, &s, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_CONTAINS(err.message, "Redis at 127.0.0.1:");
  CHECK_CONTAINS(err.message, " refused AUTH: ");
  CHECK_STATUS(open_as("noscript", "pw", rs_port, 5, &s, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_CONTAINS(err.message, " refused SCRIPT LOAD: NOPERM");
  CHECK_STATUS(open_as("nosub", "pw", rs_port, 5, &s, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_CONTAINS(err.message, " refused SUBSCRIBE: NOPERM");
  CHECK(s == NULL);
  CHECK_INT(tu_count_fds(), fds);

  tu_group("a subscription the server refuses (an ACL without the channel) fails at once");
  CHECK_INT(
      rs_cli("ACL", "SETUSER", "ownchannels", "on", ">pw", "~*", "&portalock:*", "+@all", NULL), 0);
  CHECK_OK(open_as("ownchannels", "pw", rs_port, 5, &s, &err), &err);
  portalock_redis_lock_t *visible;
  CHECK_OK(portalock_redis_lock_new(&visible, s, "not-a-portalock-channel", &err), &err);
  double asked = tu_now();
  CHECK_STATUS(portalock_redis_lock_acquire_with(visible, 3, 0.01, 0, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_BETWEEN(tu_now() - asked, 0, 1);
  CHECK_CONTAINS(err.message, "the server refused a subscription");
  portalock_redis_lock_free(visible);
  portalock_redis_session_free(s);
  s = NULL;
  CHECK_INT(tu_count_fds(), fds);

  tu_group("a server that accepts and never answers: the open ends by command_timeout");
  int mute = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(bind(mute, (struct sockaddr *)&a, sizeof a) == 0 && listen(mute, 8) == 0);
  CHECK(getsockname(mute, (struct sockaddr *)&a, &len) == 0);
  double start = tu_now();
  CHECK_STATUS(open_as(NULL, NULL, ntohs(a.sin_port), 0.3, &s, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_CONTAINS(err.message, "command_timeout");
  CHECK_BETWEEN(tu_now() - start, 0.25, 1.5);
  close(mute);
  CHECK_INT(tu_count_fds(), fds);

  tu_group("descriptors running out at each step of an open, and of a lock's creation");
  struct rlimit saved;
  CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  int opened = 0;
  for (int spare = 0; spare < 12 && !opened; spare++) {
    limit_fds(spare, &saved);
    opened = open_as(NULL, NULL, rs_port, 5, &s, &err) == PORTALOCK_OK;
    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    portalock_redis_session_free(s);
    CHECK_INT(tu_count_fds(), fds);
  }
  CHECK(opened);
  s = rs_session(30);
  int with_session = tu_count_fds();
  portalock_redis_semaphore_t *sem = NULL;
  limit_fds(0, &saved);
  CHECK_STATUS(portalock_redis_semaphore_new(&sem, s, "no-fds", 2, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
  CHECK(sem == NULL);
  CHECK_INT(tu_count_fds(), with_session);
  portalock_redis_session_free(s);
}

/* ---------------------------------------------------------------- threads and kills */

enum { STRESS_THREADS = 6 };

struct stresser {
  portalock_redis_session_t *session;
  const char *name;
  atomic_int *inside; /* holders of `name` in this session */
  int visible;
  int acquired, failures, overlaps;
};

/* Acquires and releases until the session is lost. */
static void *stress(void *arg) {
  struct stresser *st = arg;
  portalock_error err;
  portalock_redis_lock_t *l;
  CHECK_OK(portalock_redis_lock_new(&l, st->session, st->name, &err), &err);
  CHECK_OK(portalock_redis_lock_set_visible(l, st->visible, &err), &err);
  double give_up = tu_now() + 20;
  while (tu_now() < give_up) {
    portalock_status status = portalock_redis_lock_acquire_with(l, 1, 0.05, 0, &err);
    if (status == PORTALOCK_ALREADY_LOCKED) continue;
    if (status != PORTALOCK_OK) {
      CHECK_INT(status, PORTALOCK_LOCK_EXCEPTION);
      st->failures++;
      break;
    }
    st->acquired++;
    if (atomic_fetch_add(st->inside, 1) != 0) st->overlaps++;
    sched_yield();
    atomic_fetch_sub(st->inside, 1);
    status = portalock_redis_lock_release(l, &err);
    if (status != PORTALOCK_OK) CHECK_INT(status, PORTALOCK_LOCK_EXCEPTION);
  }
  CHECK(tu_now() < give_up);
  portalock_redis_lock_free(l);
  return NULL;
}

static void stress_round(const char *kill_what) {
  portalock_redis_session_t *s = rs_session(1);
  atomic_int inside[3] = {0};
  struct stresser st[STRESS_THREADS];
  pthread_t t[STRESS_THREADS];
  static const char *const names[] = {"stress-shared", "stress-own-1", "stress-own-2"};
  for (int i = 0; i < STRESS_THREADS; i++) {
    int n = i < 4 ? 0 : i - 3; /* four threads on one name, two on names of their own */
    st[i] =
        (struct stresser){.session = s, .name = names[n], .inside = &inside[n], .visible = i % 2};
    pthread_create(&t[i], NULL, stress, &st[i]);
  }
  tu_sleep(0.25);
  /* The server forgets its scripts: every thread loads them again, once. */
  CHECK_INT(rs_cli("SCRIPT", "FLUSH", NULL), 0);
  tu_sleep(0.25);
  if (kill_what != NULL)
    CHECK_INT(rs_cli("CLIENT", "KILL", "TYPE", kill_what, NULL), 0);
  else
    rs_stop(); /* with commands in flight: no SIGPIPE, every thread ends */
  double killed = tu_now();
  int acquired = 0;
  for (int i = 0; i < STRESS_THREADS; i++) {
    pthread_join(t[i], NULL);
    CHECK_INT(st[i].overlaps, 0);
    CHECK_INT(st[i].failures, 1);
    acquired += st[i].acquired;
  }
  CHECK_BETWEEN(tu_now() - killed, 0, 6); /* within command_timeout */
  CHECK(acquired > 0);
  CHECK(portalock_redis_session_lost(s) != NULL);
  portalock_redis_session_free(s);
}

static void test_threads_sharing_a_session(void) {
  tu_group("threads sharing a session: no overlap, every thread ends when the server kills it");
  signal(SIGPIPE, SIG_DFL);
  stress_round("pubsub");
  stress_round("normal");
  stress_round(NULL);
  CHECK_INT(rs_start(), 0);
}

int main(void) {
  tu_init("redis_races");
  if (rs_start() < 0) {
    printf("redis_races: SKIPPED: redis-server could not be started (Debian: redis-server)\n");
    return 0;
  }
  int fds = tu_count_fds();
  test_wakeup_passed_on(1);
  test_wakeup_passed_on(0);
  test_fork_during_a_command();
  test_open_failures();
  test_command_timeout();
  test_on_lost_thread();
  test_half_open_subscription();
  test_edge_values();
  test_renewal_of_a_reused_grant();
  test_threads_sharing_a_session();
  CHECK_INT(tu_count_fds(), fds);
  rs_stop();
  return tu_done();
}
