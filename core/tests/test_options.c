/* Tests lock options: the defaults and every invalid input, whose message names the option. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <semaphore.h>
#include <stdint.h>

static void test_defaults(void) {
  portalock_lock_options o;
  memset(&o, 0x5a, sizeof o);
  portalock_lock_options_init(&o);
  CHECK_STR(o.mode, "a");
  CHECK(o.timeout == 5.0);
  CHECK(o.check_interval == 0.25);
  CHECK_INT(o.fail_when_locked, 0);
  CHECK_INT(o.flags, PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB);
  CHECK_INT(o.backend, PORTALOCK_BACKEND_FLOCK);
  CHECK_INT(o.perm, PORTALOCK_PERM_UMASK);

  /* NULL options: the defaults, with each kind's own fail_when_locked and mode */
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, tu_path("defaults"), NULL, &err), &err);
  const portalock_lock_options *d = portalock_lock_options_of(lock);
  CHECK_STR(d->mode, "a");
  CHECK(d->timeout == 5.0 && d->check_interval == 0.25);
  CHECK_INT(d->fail_when_locked, 0);
  CHECK_INT(d->flags, PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB);
  CHECK_INT(d->perm, PORTALOCK_PERM_UMASK);
  portalock_lock_free(lock);
  CHECK_OK(portalock_temporary_file_lock_new(&lock, tu_path("tmp"), NULL, &err), &err);
  CHECK_INT(portalock_lock_options_of(lock)->fail_when_locked, 1);
  CHECK_STR(portalock_lock_options_of(lock)->mode, "w");
  portalock_lock_free(lock);
  CHECK_OK(portalock_pid_file_lock_new(&lock, tu_path("pid"), NULL, &err), &err);
  CHECK_INT(portalock_lock_options_of(lock)->fail_when_locked, 1);
  portalock_lock_free(lock);

  /* given options are kept (the mode is copied, not pointed at) */
  char mode[4] = "r+b";
  o.mode = mode;
  o.timeout = INFINITY;
  o.check_interval = 0.001;
  o.flags = PORTALOCK_LOCK_SH;
  o.backend = PORTALOCK_BACKEND_OFD;
  o.perm = 0600;
  CHECK_OK(portalock_lock_new(&lock, tu_path("kept"), &o, &err), &err);
  mode[0] = 'x';
  d = portalock_lock_options_of(lock);
  CHECK_STR(d->mode, "r+b");
  CHECK(isinf(d->timeout) && d->check_interval == 0.001);
  CHECK_INT(d->flags, PORTALOCK_LOCK_SH);
  CHECK_INT(d->backend, PORTALOCK_BACKEND_OFD);
  CHECK_INT(d->perm, 0600);
  portalock_lock_free(lock);

  const char *good_modes[] = {"r", "r+", "a", "a+", "w", "w+", "rb", "r+b", "rb+", "ab", "wb+"};
  for (size_t i = 0; i < sizeof good_modes / sizeof good_modes[0]; i++) {
    portalock_lock_options_init(&o);
    o.mode = good_modes[i];
    o.backend = PORTALOCK_BACKEND_FLOCK;
    CHECK_OK(portalock_lock_new(&lock, tu_path("modes"), &o, &err), &err);
    portalock_lock_free(lock);
  }
}

typedef struct bad_case {
  const char *what;
  const char *filename; /* "" stays "", NULL stays NULL; "-" means a good path */
  const char *mode;
  double timeout;
  double check_interval;
  int flags;
  int backend;
  int perm;
  const char *names; /* the option the message must name */
} bad_case;

#define GOOD_T 5.0
#define GOOD_CI 0.25
#define EX (PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB)
#define SH PORTALOCK_LOCK_SH

static const bad_case bad_cases[] = {
    {"NULL filename", NULL, "a", GOOD_T, GOOD_CI, EX, 0, 0666, "'filename'"},
    {"empty filename", "", "a", GOOD_T, GOOD_CI, EX, 0, 0666, "'filename'"},
    {"NULL mode", "-", NULL, GOOD_T, GOOD_CI, EX, 0, 0666, "'mode'"},
    {"mode x", "-", "x", GOOD_T, GOOD_CI, EX, 0, 0666, "'mode'"},
    {"mode rw", "-", "rw", GOOD_T, GOOD_CI, EX, 0, 0666, "'mode'"},
    {"mode r++", "-", "r++", GOOD_T, GOOD_CI, EX, 0, 0666, "'mode'"},
    {"mode empty", "-", "", GOOD_T, GOOD_CI, EX, 0, 0666, "'mode'"},
    {"negative timeout", "-", "a", -1.0, GOOD_CI, EX, 0, 0666, "'timeout'"},
    {"NaN timeout", "-", "a", NAN, GOOD_CI, EX, 0, 0666, "'timeout'"},
    {"negative check_interval", "-", "a", GOOD_T, -0.5, EX, 0, 0666, "'check_interval'"},
    {"NaN check_interval", "-", "a", GOOD_T, NAN, EX, 0, 0666, "'check_interval'"},
    {"infinite check_interval", "-", "a", GOOD_T, INFINITY, EX, 0, 0666, "'check_interval'"},
    {"flags 0", "-", "a", GOOD_T, GOOD_CI, 0, 0, 0666, "'flags'"},
    {"flags LOCK_UN", "-", "a", GOOD_T, GOOD_CI, PORTALOCK_LOCK_UN, 0, 0666, "'flags'"},
    {"flags 99", "-", "a", GOOD_T, GOOD_CI, 99, 0, 0666, "'flags'"},
    {"flags SH|EX", "-", "a", GOOD_T, GOOD_CI, SH | EX, 0, 0666, "'flags'"},
    {"backend 7", "-", "a", GOOD_T, GOOD_CI, EX, 7, 0666, "'backend'"},
    {"backend -1", "-", "a", GOOD_T, GOOD_CI, EX, -1, 0666, "'backend'"},
    {"perm -2", "-", "a", GOOD_T, GOOD_CI, EX, 0, -2, "'perm'"},
    {"perm 0777+1", "-", "a", GOOD_T, GOOD_CI, EX, 0, 0777 + 1, "'perm'"},
    {"w with LOCK_SH", "-", "w", GOOD_T, GOOD_CI, SH, 0, 0666, "'mode'"},
    {"w+ with LOCK_SH", "-", "w+", GOOD_T, GOOD_CI, SH, 0, 0666, "'mode'"},
    {"ofd, LOCK_SH, write-only a", "-", "a", GOOD_T, GOOD_CI, SH, 1, 0666, "'mode'"},
    {"posix, LOCK_SH, write-only a", "-", "a", GOOD_T, GOOD_CI, SH, 2, 0666, "'mode'"},
    {"ofd, LOCK_EX, read-only r", "-", "r", GOOD_T, GOOD_CI, EX, 1, 0666, "'mode'"},
    {"posix, LOCK_EX, read-only r", "-", "r", GOOD_T, GOOD_CI, EX, 2, 0666, "'mode'"},
};

static void test_invalid(void) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    portalock_lock_options o;
    portalock_lock_options_init(&o);
    o.mode = c->mode;
    o.timeout = c->timeout;
    o.check_interval = c->check_interval;
    o.flags = c->flags;
    o.backend = (portalock_backend)c->backend;
    o.perm = c->perm;
    const char *filename =
        c->filename != NULL && strcmp(c->filename, "-") == 0 ? tu_path("bad") : c->filename;
    portalock_lock_t *lock = (portalock_lock_t *)&o; /* must be reset to NULL */
    portalock_rlock_t *rlock = (portalock_rlock_t *)&o;
    portalock_error err;
    if (portalock_lock_new(&lock, filename, &o, &err) != PORTALOCK_INVALID)
      tu_fail(__FILE__, __LINE__, "case '%s' was not INVALID", c->what);
    CHECK(lock == NULL);
    CHECK_INT(err.status, PORTALOCK_INVALID);
    if (strstr(err.message, c->names) == NULL)
      tu_fail(__FILE__, __LINE__, "case '%s': message \"%s\" does not name %s", c->what,
              err.message, c->names);
    /* the same for RLock, and with a NULL error */
    CHECK_STATUS(portalock_rlock_new(&rlock, filename, &o, &err), PORTALOCK_INVALID, &err);
    CHECK(rlock == NULL);
    CHECK_CONTAINS(err.message, c->names);
    CHECK_INT(portalock_lock_new(&lock, filename, &o, NULL), PORTALOCK_INVALID);
  }
  printf("options: %zu invalid option sets refused\n", sizeof bad_cases / sizeof bad_cases[0]);

  portalock_error err;
  CHECK_STATUS(portalock_lock_new(NULL, tu_path("x"), NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'out'");
  CHECK_STATUS(portalock_rlock_new(NULL, tu_path("x"), NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'out'");
  CHECK_STATUS(portalock_temporary_file_lock_new(NULL, NULL, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'out'");
  CHECK_STATUS(portalock_pid_file_lock_new(NULL, NULL, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'out'");
}

static void test_acquire_args(void) {
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, tu_path("acq"), NULL, &err), &err);
  CHECK_STATUS(portalock_lock_acquire_with(lock, -1, 0.25, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'timeout'");
  CHECK_STATUS(portalock_lock_acquire_with(lock, NAN, 0.25, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'timeout'");
  CHECK_STATUS(portalock_lock_acquire_with(lock, 1, -0.5, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'check_interval'");
  CHECK_INT(portalock_lock_locked(lock), 0);
  CHECK_OK(portalock_lock_acquire_with(lock, INFINITY, 0.01, 0, &err), &err);
  portalock_lock_free(lock);
}

static void test_exclusive_kinds(void) {
  const int shared[] = {PORTALOCK_LOCK_SH, PORTALOCK_LOCK_SH | PORTALOCK_LOCK_NB};
  for (int b = 0; b < 3; b++) {
    for (int i = 0; i < 2; i++) {
      portalock_lock_options o;
      portalock_lock_options_init(&o);
      o.flags = shared[i];
      o.backend = (portalock_backend)b;
      portalock_lock_t *lock = NULL;
      portalock_error err;
      CHECK_STATUS(portalock_temporary_file_lock_new(&lock, tu_path("t"), &o, &err),
                   PORTALOCK_INVALID, &err);
      CHECK(lock == NULL);
      CHECK_CONTAINS(err.message, "'flags'");
      CHECK_CONTAINS(err.message, "exclusive");
      CHECK_STATUS(portalock_pid_file_lock_new(&lock, tu_path("p"), &o, &err), PORTALOCK_INVALID,
                   &err);
      CHECK(lock == NULL);
      CHECK_CONTAINS(err.message, "'flags'");
      CHECK_CONTAINS(err.message, "exclusive");
    }
  }
}

/* Each rule's edges: {rule, a value it takes, the nearest it refuses}. */
static void test_rule_edges(void) {
  static const struct {
    portalock_rule rule;
    double good, bad;
  } edges[] = {
      {PORTALOCK_RULE_TIMEOUT, 0, -0.001},
      {PORTALOCK_RULE_TIMEOUT, INFINITY, NAN},
      {PORTALOCK_RULE_CHECK_INTERVAL, 0, -0.001},
      {PORTALOCK_RULE_CHECK_INTERVAL, 1e300, INFINITY},
      {PORTALOCK_RULE_FLAGS, PORTALOCK_LOCK_SH | PORTALOCK_LOCK_NB, PORTALOCK_LOCK_SH + 0.5},
      {PORTALOCK_RULE_FLAGS, PORTALOCK_LOCK_EX, PORTALOCK_LOCK_EX | PORTALOCK_LOCK_UN},
      {PORTALOCK_RULE_EXCLUSIVE_FLAGS, PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB, PORTALOCK_LOCK_SH},
      {PORTALOCK_RULE_EXCLUSIVE_FLAGS, PORTALOCK_LOCK_EX, PORTALOCK_LOCK_EX | 8},
      {PORTALOCK_RULE_PERM, PORTALOCK_PERM_MAX, PORTALOCK_PERM_MAX + 1},
      {PORTALOCK_RULE_PERM, 0, -1},
      {PORTALOCK_RULE_PERM, 0644, 0644.5},
      {PORTALOCK_RULE_SEMAPHORE_PERM, PORTALOCK_SEMAPHORE_PERM_MAX,
       PORTALOCK_SEMAPHORE_PERM_MAX + 1},
      {PORTALOCK_RULE_SEMAPHORE_VALUE, 0, -1},
      {PORTALOCK_RULE_SEMAPHORE_VALUE, SEM_VALUE_MAX, SEM_VALUE_MAX + 1.0},
      {PORTALOCK_RULE_SEMAPHORE_RELEASE, 1, 0},
      {PORTALOCK_RULE_BOUNDED_MAXIMUM, 1, 0},
      {PORTALOCK_RULE_BOUNDED_MAXIMUM, PORTALOCK_BOUNDED_MAXIMUM, PORTALOCK_BOUNDED_MAXIMUM + 1},
      {PORTALOCK_RULE_BOUNDED_MAXIMUM, 2, 2.5},
  };
  char buf[PORTALOCK_MESSAGE_MAX];
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    if (portalock_rule_problem(edges[i].rule, edges[i].good, buf, sizeof buf) != NULL)
      tu_fail(__FILE__, __LINE__, "edge %zu: %g refused: %s", i, edges[i].good, buf);
    const char *problem = portalock_rule_problem(edges[i].rule, edges[i].bad, buf, sizeof buf);
    if (problem == NULL) tu_fail(__FILE__, __LINE__, "edge %zu: %g taken", i, edges[i].bad);
    CHECK(problem == NULL || strncmp(problem, "must ", 5) == 0);
  }
  /* a small buffer truncates, never overflows */
  char small[8];
  CHECK_STR(portalock_rule_problem(PORTALOCK_RULE_TIMEOUT, -1, small, sizeof small), "must be");
  CHECK(portalock_lock_mode_problem("rb+", PORTALOCK_LOCK_SH, PORTALOCK_BACKEND_OFD, buf,
                                    sizeof buf) == NULL);
  CHECK(portalock_lock_mode_problem("r+", PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_POSIX, buf,
                                    sizeof buf) == NULL);
  CHECK(portalock_lock_mode_problem("x", PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_FLOCK, buf,
                                    sizeof buf) != NULL);
  CHECK_CONTAINS(
      portalock_lock_mode_problem("w", PORTALOCK_LOCK_SH, PORTALOCK_BACKEND_FLOCK, buf, sizeof buf),
      "LOCK_EX");
  CHECK_CONTAINS(
      portalock_lock_mode_problem("r", PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_OFD, buf, sizeof buf),
      "writable");
  CHECK_CONTAINS(
      portalock_lock_mode_problem("a", PORTALOCK_LOCK_SH, PORTALOCK_BACKEND_POSIX, buf, sizeof buf),
      "readable");
  CHECK_STR(portalock_backend_name(PORTALOCK_BACKEND_FLOCK), "flock");
  CHECK_STR(portalock_backend_name(PORTALOCK_BACKEND_OFD), "ofd");
  CHECK_STR(portalock_backend_name(PORTALOCK_BACKEND_POSIX), "posix");
  CHECK(portalock_backend_name((portalock_backend)3) == NULL);
  CHECK(portalock_semaphore_name_problem("ok") == NULL);
  CHECK_STR(portalock_semaphore_name_problem(".."), "must not be \".\" or \"..\"");
}

/* `message` ends with what the rule says about `value`: the object's refusal is the rule's. */
static void check_rule_words(const char *message, portalock_rule rule, double value) {
  char buf[PORTALOCK_MESSAGE_MAX];
  const char *problem = portalock_rule_problem(rule, value, buf, sizeof buf);
  CHECK(problem != NULL);
  if (problem == NULL) return;
  size_t len = strlen(message), plen = strlen(problem);
  if (len < plen || strcmp(message + len - plen, problem) != 0)
    tu_fail(__FILE__, __LINE__, "\"%s\" does not end with the rule's \"%s\"", message, problem);
}

/* Every object and call that refuses a value refuses it in the rule's words. */
static void test_one_owner(void) {
  portalock_error err;
  portalock_lock_options o;
  portalock_lock_t *lock;
  portalock_lock_options_init(&o);
  o.timeout = -1;
  CHECK_STATUS(portalock_lock_new(&lock, tu_path("r"), &o, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_TIMEOUT, -1);
  portalock_lock_options_init(&o);
  o.check_interval = INFINITY;
  CHECK_STATUS(portalock_lock_new(&lock, tu_path("r"), &o, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_CHECK_INTERVAL, INFINITY);
  portalock_lock_options_init(&o);
  o.perm = PORTALOCK_PERM_MAX + 1;
  CHECK_STATUS(portalock_lock_new(&lock, tu_path("r"), &o, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_PERM, PORTALOCK_PERM_MAX + 1);
  portalock_lock_options_init(&o);
  o.flags = PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX;
  CHECK_STATUS(portalock_lock_new(&lock, tu_path("r"), &o, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_FLAGS, PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX);

  portalock_lock_options_init(&o);
  o.mode = "w+";
  o.flags = PORTALOCK_LOCK_SH;
  CHECK_STATUS(portalock_lock_new(&lock, tu_path("r"), &o, &err), PORTALOCK_INVALID, &err);
  char buf[PORTALOCK_MESSAGE_MAX];
  CHECK_CONTAINS(err.message,
                 portalock_lock_mode_problem("w+", o.flags, o.backend, buf, sizeof buf));
  portalock_lock_options_init(&o);
  o.flags = PORTALOCK_LOCK_SH;
  CHECK_STATUS(portalock_pid_file_lock_new(&lock, tu_path("p"), &o, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_EXCLUSIVE_FLAGS, PORTALOCK_LOCK_SH);

  CHECK_OK(portalock_lock_new(&lock, tu_path("r"), NULL, &err), &err);
  CHECK_STATUS(portalock_lock_acquire_with(lock, NAN, 0.25, 0, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_TIMEOUT, NAN);
  portalock_lock_free(lock);

  portalock_bounded_semaphore_t *bounded;
  CHECK_STATUS(portalock_bounded_semaphore_new(&bounded, PORTALOCK_BOUNDED_MAXIMUM + 1, NULL, &err),
               PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_BOUNDED_MAXIMUM, PORTALOCK_BOUNDED_MAXIMUM + 1);
  portalock_bounded_semaphore_options bo;
  portalock_bounded_semaphore_options_init(&bo);
  bo.timeout = -2;
  CHECK_STATUS(portalock_bounded_semaphore_new(&bounded, 1, &bo, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_TIMEOUT, -2);
  portalock_bounded_semaphore_options_init(&bo);
  CHECK_INT(bo.perm, PORTALOCK_PERM_UMASK);
  bo.perm = PORTALOCK_PERM_MAX + 1;
  CHECK_STATUS(portalock_bounded_semaphore_new(&bounded, 1, &bo, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_PERM, PORTALOCK_PERM_MAX + 1);

  portalock_semaphore_t *sem;
  portalock_semaphore_options so;
  portalock_semaphore_options_init(&so);
  so.perm = PORTALOCK_SEMAPHORE_PERM_MAX + 1;
  CHECK_STATUS(portalock_semaphore_new(&sem, "rules", 1, &so, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_SEMAPHORE_PERM, PORTALOCK_SEMAPHORE_PERM_MAX + 1);
  CHECK_STATUS(portalock_semaphore_new(&sem, "rules", (unsigned long)SEM_VALUE_MAX + 1, NULL, &err),
               PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_SEMAPHORE_VALUE, SEM_VALUE_MAX + 1.0);
  CHECK_STATUS(portalock_semaphore_new(&sem, "a/b", 1, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, portalock_semaphore_name_problem("a/b"));
  CHECK_OK(portalock_semaphore_new(&sem, "rules", 1, NULL, &err), &err);
  CHECK_STATUS(portalock_semaphore_release(sem, 0, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_SEMAPHORE_RELEASE, 0);
  CHECK_STATUS(portalock_semaphore_acquire_with(sem, -1, &err), PORTALOCK_INVALID, &err);
  check_rule_words(err.message, PORTALOCK_RULE_TIMEOUT, -1);
  portalock_semaphore_free(sem);
}

int main(void) {
  tu_init("options");
  tu_group("defaults");
  test_defaults();
  tu_group("invalid options are INVALID and name the option");
  test_invalid();
  tu_group("invalid acquire arguments");
  test_acquire_args();
  tu_group("TemporaryFileLock and PidFileLock are exclusive only");
  test_exclusive_kinds();
  tu_group("each rule's edges");
  test_rule_edges();
  tu_group("every refusal is in its rule's words");
  test_one_owner();
  return tu_done();
}
