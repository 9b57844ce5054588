/* Lock options: defaults, the mode letters, and validation with messages naming the option. */
#include "private.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void portalock_lock_options_init(portalock_lock_options *opts) {
  opts->mode = "a";
  opts->timeout = PORTALOCK_DEFAULT_TIMEOUT;
  opts->check_interval = PORTALOCK_DEFAULT_CHECK_INTERVAL;
  opts->fail_when_locked = 0;
  opts->flags = PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB;
  opts->backend = PORTALOCK_BACKEND_FLOCK;
  opts->perm = 0666;
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

portalock_status pl_check_timing(double timeout, double check_interval, portalock_error *err) {
  if (isnan(timeout) || timeout < 0)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'timeout' (%g): must be >= 0 (use INFINITY to wait forever)",
                   timeout);
  if (!isfinite(check_interval) || check_interval < 0)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'check_interval' (%g): must be a finite number >= 0 (0 re-checks "
                   "every %g s)",
                   check_interval, PORTALOCK_CHECK_INTERVAL_MIN);
  return PORTALOCK_OK;
}

double pl_check_period(double check_interval) {
  return check_interval > PORTALOCK_CHECK_INTERVAL_MIN ? check_interval
                                                       : PORTALOCK_CHECK_INTERVAL_MIN;
}

static const char *pl_backend_name(portalock_backend backend) {
  return backend == PORTALOCK_BACKEND_OFD ? "ofd" : "posix";
}

portalock_status pl_check_options(const portalock_lock_options *o, pl_mode *m,
                                  portalock_error *err) {
  if (o->mode == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'mode' (NULL): must be r, r+, a, a+, w or w+, optionally with b");
  if (!pl_parse_mode(o->mode, m))
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'mode' (\"%.16s\"): must be r, r+, a, a+, w or w+, optionally "
                   "with b",
                   o->mode);
  portalock_status status = pl_check_timing(o->timeout, o->check_interval, err);
  if (status != PORTALOCK_OK) return status;
  const char *problem = pl_flags_problem(o->flags);
  if (problem != NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad option 'flags' (%d): %s", o->flags,
                   problem);
  if (!pl_backend_valid(o->backend))
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'backend' (%d): must be flock (0), ofd (1) or posix (2)",
                   (int)o->backend);
  if (o->perm < 0 || o->perm > PORTALOCK_PERM_MAX)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'perm' (%d, octal %o): must be within 0..0%o", o->perm,
                   (unsigned)o->perm, (unsigned)PORTALOCK_PERM_MAX);
  int shared = (o->flags & PORTALOCK_LOCK_SH) != 0;
  if (m->truncate && shared)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'mode' (\"%s\"): truncating needs LOCK_EX, not LOCK_SH", o->mode);
  if (o->backend != PORTALOCK_BACKEND_FLOCK && shared && !m->readable)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'mode' (\"%s\"): the %s backend needs a readable mode for "
                   "LOCK_SH",
                   o->mode, pl_backend_name(o->backend));
  if (o->backend != PORTALOCK_BACKEND_FLOCK && !shared && !m->writable)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad option 'mode' (\"%s\"): the %s backend needs a writable mode for "
                   "LOCK_EX",
                   o->mode, pl_backend_name(o->backend));
  return PORTALOCK_OK;
}
