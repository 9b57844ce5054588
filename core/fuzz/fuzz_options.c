/*
 * Fuzz target: lock option validation (options.c: pl_check_options, its mode parser and
 * pl_check_timing) and the constructors that use it (portalock_lock_new and the
 * TemporaryFileLock and PidFileLock constructors, which touch no file).
 *
 * Input: the mode (length-prefixed; a NUL inside ends it early, a 0xff length means NULL),
 * timeout, check_interval, flags, backend, perm, fail_when_locked. Checks, by the rules of
 * portalock.h and CONTRACT.md "Lock":
 *   - options that are accepted satisfy every rule, and the parsed mode opens the file as
 *     the mode letters say;
 *   - options that are refused are PORTALOCK_INVALID with a message "bad option '<name>'"
 *     naming an option whose value breaks a rule;
 *   - portalock_lock_new decides as pl_check_options does and keeps a copy of the options.
 * check_interval is checked loosely (a refused 0 and an accepted 0 both pass) so that this
 * target does not own that limit.
 */
#include "private.h"

#include <fcntl.h>

#include "fuzz_input.h"

typedef struct mode_rule {
  int ok, truncate, readable, writable;
} mode_rule;

/* "r", "a" or "w", then each of "+" and "b" at most once, in any order. */
static mode_rule mode_letters(const char *m) {
  mode_rule r = {0, 0, 0, 0};
  if (m == NULL || strchr("raw", m[0]) == NULL || m[0] == '\0') return r;
  size_t rest = strlen(m + 1);
  int plus = strchr(m + 1, '+') != NULL, binary = strchr(m + 1, 'b') != NULL;
  if (rest != (size_t)(plus + binary) || strspn(m + 1, "+b") != rest) return r;
  r.ok = 1;
  r.truncate = m[0] == 'w';
  r.readable = m[0] == 'r' || plus;
  r.writable = m[0] != 'r' || plus;
  return r;
}

static int flags_ok(int flags) {
  return flags == PORTALOCK_LOCK_SH || flags == PORTALOCK_LOCK_EX ||
         flags == (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_NB) ||
         flags == (PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB);
}

/* Whether the option `name` (from a refusal message) has a value that breaks a rule. */
static int breaks_a_rule(const char *name, const portalock_lock_options *o, mode_rule m) {
  int shared = flags_ok(o->flags) && (o->flags & PORTALOCK_LOCK_SH);
  int strict = o->backend != PORTALOCK_BACKEND_FLOCK;
  if (strcmp(name, "mode") == 0)
    return !m.ok || (m.truncate && shared) || (strict && shared && !m.readable) ||
           (strict && !shared && !m.writable);
  if (strcmp(name, "timeout") == 0) return isnan(o->timeout) || o->timeout < 0;
  if (strcmp(name, "check_interval") == 0)
    return !isfinite(o->check_interval) || o->check_interval <= 0;
  if (strcmp(name, "flags") == 0) return !flags_ok(o->flags);
  if (strcmp(name, "backend") == 0)
    return o->backend != PORTALOCK_BACKEND_FLOCK && o->backend != PORTALOCK_BACKEND_OFD &&
           o->backend != PORTALOCK_BACKEND_POSIX;
  if (strcmp(name, "perm") == 0)
    return o->perm != PORTALOCK_PERM_UMASK && (o->perm < 0 || o->perm > 0777); /* bits only */
  return 0;
}

static void check_accepted(const portalock_lock_options *o, const pl_mode *parsed, mode_rule m) {
  const char *names[] = {"mode", "timeout", "check_interval", "flags", "backend", "perm"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (breaks_a_rule(names[i], o, m) && strcmp(names[i], "check_interval") != 0)
      fz_fail("accepted option '%s' breaks its rule (mode \"%s\")", names[i], o->mode);
  if (!isfinite(o->check_interval) || o->check_interval < 0)
    fz_fail("accepted check_interval %g", o->check_interval);
  int access = parsed->oflags & O_ACCMODE;
  int want = m.readable && m.writable ? O_RDWR : m.readable ? O_RDONLY : O_WRONLY;
  if (access != want || parsed->readable != m.readable || parsed->writable != m.writable ||
      parsed->truncate != m.truncate || ((parsed->oflags & O_APPEND) != 0) != (o->mode[0] != 'r'))
    fz_fail("mode \"%s\" parsed to oflags %#x, readable %d, writable %d, truncate %d", o->mode,
            parsed->oflags, parsed->readable, parsed->writable, parsed->truncate);
}

static void check_refused(portalock_status st, const portalock_error *err,
                          const portalock_lock_options *o, mode_rule m) {
  char name[32];
  if (st != PORTALOCK_INVALID || sscanf(err->message, "bad option '%31[a-z_]'", name) != 1)
    fz_fail("refused with status %d and message: %s", (int)st, err->message);
  if (!breaks_a_rule(name, o, m)) fz_fail("refused a good option '%s': %s", name, err->message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input in = {data, size};
  char mode[16];
  int no_mode = in.size > 0 && in.data[0] == 0xff;
  if (no_mode) fz_byte(&in);
  fz_bytes(&in, mode, sizeof mode);
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.mode = no_mode ? NULL : mode;
  o.timeout = fz_double(&in);
  o.check_interval = fz_double(&in);
  unsigned pick = fz_byte(&in);
  o.flags = pick < 128 ? (int)(pick % 16) : (int)(int32_t)fz_uint(&in, 4);
  pick = fz_byte(&in);
  o.backend = (portalock_backend)(pick < 128 ? (int)(pick % 4) : (int)(int32_t)fz_uint(&in, 4));
  pick = fz_byte(&in);
  o.perm = pick < 128 ? (int)fz_uint(&in, 2) : (int)(int32_t)fz_uint(&in, 4);
  o.fail_when_locked = (int)(fz_byte(&in) & 1);

  mode_rule m = mode_letters(o.mode);
  pl_mode parsed;
  portalock_error err;
  portalock_status st = pl_check_options(&o, &parsed, &err);
  if (st == PORTALOCK_OK)
    check_accepted(&o, &parsed, m);
  else
    check_refused(st, &err, &o, m);

  portalock_lock_t *lock = NULL;
  portalock_status st_new = portalock_lock_new(&lock, "fuzz.lock", &o, &err);
  if (st_new != st)
    fz_fail("pl_check_options says %d, portalock_lock_new %d", (int)st, (int)st_new);
  if (lock != NULL) {
    const portalock_lock_options *kept = portalock_lock_options_of(lock);
    if (strcmp(kept->mode, o.mode) != 0 || kept->flags != o.flags || kept->perm != o.perm ||
        kept->backend != o.backend)
      fz_fail("the lock keeps other options than it was given (mode \"%s\")", kept->mode);
    portalock_lock_free(lock);
  }
  /* The exclusive-only kinds impose their own mode and refuse LOCK_SH: no crash, no leak. */
  lock = NULL;
  if (portalock_temporary_file_lock_new(&lock, NULL, &o, &err) == PORTALOCK_OK)
    portalock_lock_free(lock);
  lock = NULL;
  if (portalock_pid_file_lock_new(&lock, "fuzz.pid", &o, &err) == PORTALOCK_OK)
    portalock_lock_free(lock);
  return 0;
}
