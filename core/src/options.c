/* The rules of numeric options and arguments (each stated once, for every object and front
 * end), and Lock options: defaults, the mode letters, and validation with messages naming the
 * option. */
#include "private.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

/* What is wrong with `value` as an integer within low..high (`range` shows it), or NULL. */
static const char *pl_integer_problem(double value, double low, double high, const char *range,
                                      char *buf, size_t size) {
  if (value >= low && value <= high && value == floor(value)) return NULL;
  snprintf(buf, size, "must be an integer within %s", range);
  return buf;
}

/* The range of a permission rule: octal, as permissions are written, and decimal for front
 * ends whose language has no octal literal. */
static const char *pl_perm_problem(double perm, char *buf, size_t size) {
  char range[48];
  snprintf(range, sizeof range, "0..0o%o (%d)", (unsigned)PORTALOCK_PERM_MAX, PORTALOCK_PERM_MAX);
  return pl_integer_problem(perm, 0, PORTALOCK_PERM_MAX, range, buf, size);
}

static const char *pl_sem_count_problem(double n, long low, char *buf, size_t size) {
  char range[64];
  snprintf(range, sizeof range, "%ld..%ld (SEM_VALUE_MAX)", low, (long)SEM_VALUE_MAX);
  return pl_integer_problem(n, (double)low, (double)SEM_VALUE_MAX, range, buf, size);
}

const char *portalock_rule_problem(portalock_rule rule, double value, char *buf, size_t size) {
  const char *problem = NULL;
  char range[32];
  switch (rule) {
  case PORTALOCK_RULE_TIMEOUT:
    if (isnan(value))
      problem = "must be a number >= 0, not NaN";
    else if (value < 0)
      problem = "must be >= 0 (infinity waits forever)";
    break;
  case PORTALOCK_RULE_CHECK_INTERVAL:
    if (!isfinite(value) || value < 0) {
      snprintf(buf, size, "must be a finite number >= 0 (0 re-checks every %g s)",
               PORTALOCK_CHECK_INTERVAL_MIN);
      return buf;
    }
    break;
  case PORTALOCK_RULE_FLAGS:
    /* a value that is no int breaks the rule as 0 (no lock type) does */
    problem = pl_flags_problem(
        value >= INT_MIN && value <= INT_MAX && value == floor(value) ? (int)value : 0);
    break;
  case PORTALOCK_RULE_EXCLUSIVE_FLAGS:
    if (portalock_rule_problem(PORTALOCK_RULE_FLAGS, value, buf, size) != NULL) return buf;
    if (!((int)value & PORTALOCK_LOCK_EX))
      problem = "must be LOCK_EX (2), optionally with LOCK_NB (4): the lock is exclusive only";
    break;
  case PORTALOCK_RULE_PERM:
  case PORTALOCK_RULE_SEMAPHORE_PERM:
    return pl_perm_problem(value, buf, size);
  case PORTALOCK_RULE_SEMAPHORE_VALUE:
    return pl_sem_count_problem(value, 0, buf, size);
  case PORTALOCK_RULE_SEMAPHORE_RELEASE:
    return pl_sem_count_problem(value, 1, buf, size);
  case PORTALOCK_RULE_BOUNDED_MAXIMUM:
    snprintf(range, sizeof range, "1..%d", PORTALOCK_BOUNDED_MAXIMUM);
    return pl_integer_problem(value, 1, PORTALOCK_BOUNDED_MAXIMUM, range, buf, size);
  }
  if (problem == NULL) return NULL;
  snprintf(buf, size, "%s", problem);
  return buf;
}

void portalock_lock_options_init(portalock_lock_options *opts) {
  opts->mode = "a";
  opts->timeout = PORTALOCK_DEFAULT_TIMEOUT;
  opts->check_interval = PORTALOCK_DEFAULT_CHECK_INTERVAL;
  opts->fail_when_locked = 0;
  opts->flags = PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB;
  opts->backend = PORTALOCK_BACKEND_FLOCK;
  opts->perm = PORTALOCK_PERM_UMASK;
}

/* "r", "a" or "w", then at most one "+" and one "b" in any order. "w" never truncates at
 * open: that would destroy the current holder's data before the lock is checked. */
static int pl_parse_mode(const char *s, pl_mode *m) {
  if (s[0] != 'r' && s[0] != 'a' && s[0] != 'w') return 0;
  int plus = 0, binary = 0;
  for (const char *p = s + 1; *p; p++) {
    if (*p == '+' && !plus)
      plus = 1;
    else if (*p == 'b' && !binary)
      binary = 1;
    else
      return 0;
  }
  m->truncate = s[0] == 'w';
  m->readable = s[0] == 'r' || plus;
  m->writable = s[0] != 'r' || plus;
  if (s[0] == 'r')
    m->oflags = plus ? O_RDWR : O_RDONLY;
  else
    m->oflags = (plus ? O_RDWR : O_WRONLY) | O_APPEND;
  return 1;
}

portalock_status pl_check_rule(portalock_rule rule, const char *what, double value,
                               portalock_error *err) {
  char buf[PORTALOCK_MESSAGE_MAX];
  const char *problem = portalock_rule_problem(rule, value, buf, sizeof buf);
  if (problem == NULL) return PORTALOCK_OK;
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad %s (%.15g): %s", what, value, problem);
}

portalock_status pl_check_timing(double timeout, double check_interval, portalock_error *err) {
  portalock_status status = pl_check_rule(PORTALOCK_RULE_TIMEOUT, "option 'timeout'", timeout, err);
  if (status != PORTALOCK_OK) return status;
  return pl_check_rule(PORTALOCK_RULE_CHECK_INTERVAL, "option 'check_interval'", check_interval,
                       err);
}

portalock_status pl_check_perm(int perm, portalock_error *err) {
  if (perm == PORTALOCK_PERM_UMASK) return PORTALOCK_OK;
  return pl_check_rule(PORTALOCK_RULE_PERM, "option 'perm'", perm, err);
}

double pl_check_period(double check_interval) {
  return check_interval > PORTALOCK_CHECK_INTERVAL_MIN ? check_interval
                                                       : PORTALOCK_CHECK_INTERVAL_MIN;
}

/* What is wrong with `mode` (parsed into `m`) for a lock of the valid `flags` on the valid
 * `backend`, or NULL: a static phrase or `buf`. */
static const char *pl_mode_problem(const char *mode, int flags, portalock_backend backend,
                                   pl_mode *m, char *buf, size_t size) {
  if (mode == NULL || !pl_parse_mode(mode, m))
    return "must be \"r\", \"r+\", \"a\", \"a+\", \"w\" or \"w+\", optionally with \"b\"";
  int shared = (flags & PORTALOCK_LOCK_SH) != 0;
  if (m->truncate && shared) return "truncates the file, which needs LOCK_EX, not LOCK_SH";
  if (backend == PORTALOCK_BACKEND_FLOCK || (shared ? m->readable : m->writable)) return NULL;
  snprintf(buf, size, "the %s backend needs a %s mode for %s", portalock_backend_name(backend),
           shared ? "readable" : "writable", shared ? "LOCK_SH" : "LOCK_EX");
  return buf;
}

const char *portalock_lock_mode_problem(const char *mode, int flags, portalock_backend backend,
                                        char *buf, size_t size) {
  pl_mode m;
  const char *problem = pl_mode_problem(mode, flags, backend, &m, buf, size);
  if (problem == NULL || problem == buf) return problem;
  snprintf(buf, size, "%s", problem);
  return buf;
}

static portalock_status pl_bad_mode(const char *mode, const char *problem, portalock_error *err) {
  if (mode == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad option 'mode' (NULL): %s", problem);
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad option 'mode' (\"%.16s\"): %s", mode,
                 problem);
}

portalock_status pl_check_options(const portalock_lock_options *o, pl_mode *m,
                                  portalock_error *err) {
  char buf[PORTALOCK_MESSAGE_MAX];
  /* the letters first, with a lock and backend that any valid mode suits */
  const char *problem =
      pl_mode_problem(o->mode, PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_FLOCK, m, buf, sizeof buf);
  if (problem != NULL) return pl_bad_mode(o->mode, problem, err);
  portalock_status status = pl_check_timing(o->timeout, o->check_interval, err);
  if (status != PORTALOCK_OK) return status;
  problem = pl_flags_problem(o->flags);
  if (problem != NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad option 'flags' (%d): %s", o->flags,
                   problem);
  status = pl_check_backend(o->backend, "option 'backend'", err);
  if (status != PORTALOCK_OK) return status;
  status = pl_check_perm(o->perm, err);
  if (status != PORTALOCK_OK) return status;
  problem = pl_mode_problem(o->mode, o->flags, o->backend, m, buf, sizeof buf);
  if (problem != NULL) return pl_bad_mode(o->mode, problem, err);
  return PORTALOCK_OK;
}
