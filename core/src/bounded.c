/* Bounded semaphores: N slot files named as Python's portalocker names them, swept in a
 * random order from the OS random source; a slot is an exclusive flock on its file. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/platform.h"

#define PL_NAME_MAX 255 /* the longest file name component */
#define PL_DEFAULT_PATTERN "{name}.{number:02d}.lock"
/* Up to this many slots a wait keeps every slot file open and watched; beyond, it polls
 * (a waiter would otherwise hold that many descriptors). So does a wait that runs out of
 * descriptors. */
#define PL_WATCHED_SLOTS 64

struct portalock_bounded_semaphore {
  long maximum;
  char *name;
  char *pattern;
  char *directory; /* NULL until the default is decided */
  double timeout;
  double check_interval;
  int perm;                    /* of the slot files it creates */
  portalock_lock_t *slot_lock; /* the held slot, or NULL */
  long slot;
  long *order;    /* scratch for sweeps: maximum entries, allocated by the first sweep */
  char *filename; /* _filename()'s answer (PORTALOCK_PATH_MAX bytes), allocated by its first call */
  /* A wait in progress (up to PL_WATCHED_SLOTS slots): each slot's lock keeps its contended
   * file open, and one inotify instance watches them all. */
  portalock_lock_t **waiting; /* maximum entries, or NULL when no wait is on */
  pl_watcher watcher;
  int polling;   /* descriptors ran out: this wait keeps no slot file open and watches none */
  long unusable; /* slot files the last sweep skipped (pl_slot_unusable) */
  pid_t waiter;  /* the process that set the wait up */
};

void portalock_bounded_semaphore_options_init(portalock_bounded_semaphore_options *opts) {
  opts->name = NULL;
  opts->filename_pattern = NULL;
  opts->directory = NULL;
  opts->timeout = PORTALOCK_DEFAULT_TIMEOUT;
  opts->check_interval = PORTALOCK_DEFAULT_CHECK_INTERVAL;
  opts->perm = PORTALOCK_PERM_UMASK;
}

/* Fisher-Yates with 64-bit random values: the modulo bias is below 2^-50 for n <= 10000. */
static int pl_shuffle(long *order, long n) {
  enum { CHUNK = 256 };
  uint64_t r[CHUNK];
  size_t used = CHUNK;
  for (long i = 0; i < n; i++)
    order[i] = i;
  for (long i = n - 1; i > 0; i--) {
    if (used == CHUNK) {
      if (pl_platform_random_bytes(r, sizeof r) != 0) return -1;
      used = 0;
    }
    long j = (long)(r[used++] % (uint64_t)(i + 1));
    long t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return 0;
}

/* ---------------------------------------------------------------- names */

/* Expands `pattern` (str.format's {name}, {number}, {number:0Nd}, {{, }}) into buf.
 * Returns NULL, or what is wrong with the pattern. *has_number tells whether {number} was
 * used; *len is the length, which may exceed cap - 1 (then buf holds a truncated copy). */
const char *pl_expand(const char *pattern, const char *name, long number, char *buf, size_t cap,
                      size_t *len, int *has_number) {
  size_t n = 0;
  *has_number = 0;
#define PL_PUT(c)                                                                                  \
  do {                                                                                             \
    if (n + 1 < cap) buf[n] = (c);                                                                 \
    n++;                                                                                           \
  } while (0)
  for (const char *p = pattern; *p; p++) {
    if (*p == '}') {
      if (p[1] != '}') return "a single '}' must be written '}}'";
      PL_PUT('}');
      p++;
      continue;
    }
    if (*p != '{') {
      PL_PUT(*p);
      continue;
    }
    if (p[1] == '{') {
      PL_PUT('{');
      p++;
      continue;
    }
    const char *end = strchr(p, '}');
    if (end == NULL) return "a '{' without its '}' (write '{{' for a literal brace)";
    size_t flen = (size_t)(end - p - 1);
    const char *field = p + 1;
    if (flen == 4 && strncmp(field, "name", 4) == 0) {
      for (const char *s = name; *s; s++)
        PL_PUT(*s);
    } else if (flen >= 6 && strncmp(field, "number", 6) == 0) {
      int width = 0;
      if (flen > 6) {
        /* ":0", then the width's digits, then "d" */
        if (field[6] != ':' || field[7] != '0' || flen < 10 || field[flen - 1] != 'd')
          return "unsupported field: only {name}, {number} and {number:0Nd} are supported";
        for (size_t k = 8; k < flen - 1; k++) {
          if (field[k] < '0' || field[k] > '9')
            return "unsupported field: only {name}, {number} and {number:0Nd} are supported";
          width = width * 10 + (field[k] - '0');
          if (width > PL_NAME_MAX) return "the width of {number:0Nd} must be at most 255";
        }
      }
      char digits[24]; /* the digits alone; the zero padding is emitted separately */
      int dn = snprintf(digits, sizeof digits, "%ld", number);
      for (int k = dn; k < width; k++)
        PL_PUT('0');
      for (int k = 0; k < dn; k++)
        PL_PUT(digits[k]);
      *has_number = 1;
    } else {
      return "unsupported field: only {name}, {number} and {number:0Nd} are supported";
    }
    p = end;
  }
#undef PL_PUT
  if (cap > 0) buf[n < cap ? n : cap - 1] = '\0';
  *len = n;
  return NULL;
}

/* What makes `s` (of length len) not one path component, or NULL. */
static const char *pl_component_problem(const char *s, size_t len) {
  if (len == 0) return "is empty";
  if (len > PL_NAME_MAX) return "is longer than 255 bytes";
  if (memchr(s, '/', len) != NULL) return "contains '/'";
  if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return "is '.' or '..'";
  return NULL;
}

/* Appends the components of `path` to `out` (which holds a normalised absolute prefix of
 * length *n, starting with '/'), dropping empty and "." ones; with `dotdot` a ".." removes
 * the previous component, as os.path.normpath does, else it is kept, as pathlib does. */
static int pl_append_components(char *out, size_t cap, size_t *n, size_t root, const char *path,
                                int dotdot) {
  const char *p = path;
  while (*p) {
    while (*p == '/')
      p++;
    if (*p == '\0') break;
    const char *e = p;
    while (*e && *e != '/')
      e++;
    size_t len = (size_t)(e - p);
    if (len == 1 && p[0] == '.') {
      /* dropped */
    } else if (dotdot && len == 2 && p[0] == '.' && p[1] == '.') {
      while (*n > root && out[*n - 1] != '/')
        (*n)--;
      if (*n > root) (*n)--; /* the '/' before the removed component */
    } else {
      if (*n > root || out[*n - 1] != '/') {
        if (*n + 1 >= cap) return -1;
        out[(*n)++] = '/';
      }
      if (*n + len >= cap) return -1;
      memcpy(out + *n, p, len);
      *n += len;
    }
    p = e;
  }
  out[*n] = '\0';
  return 0;
}

/* The absolute, tidied form of `dir` (malloc'd), or NULL with errno. */
static char *pl_absolute_dir(const char *dir, int dotdot) {
  char out[PORTALOCK_PATH_MAX];
  size_t n = 0, root;
  if (dir[0] == '/') {
    /* POSIX leaves exactly two leading slashes implementation-defined: Python keeps them. */
    int two = dir[1] == '/' && dir[2] != '/';
    out[n++] = '/';
    if (two) out[n++] = '/';
    out[n] = '\0';
    root = n;
  } else {
    char cwd[PORTALOCK_PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) return NULL;
    out[n++] = '/';
    out[n] = '\0';
    root = n;
    if (pl_append_components(out, sizeof out, &n, root, cwd, dotdot) != 0) {
      errno = ENAMETOOLONG;
      return NULL;
    }
  }
  if (pl_append_components(out, sizeof out, &n, root, dir, dotdot) != 0) {
    errno = ENAMETOOLONG;
    return NULL;
  }
  char *copy = strdup(out);
  if (copy == NULL) errno = ENOMEM;
  return copy;
}

/* Python's tempfile.gettempdir(): the first candidate where a file can be created. Here:
 * an existing directory this process may write into and search (nothing is created). */
static char *pl_default_directory(void) {
  const char *candidates[] = {
      getenv("TMPDIR"), getenv("TEMP"), getenv("TMP"), "/tmp", "/var/tmp", "/usr/tmp", "."};
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
    const char *c = candidates[i];
    if (c == NULL || c[0] == '\0') continue;
    char *dir = pl_absolute_dir(c, 1);
    if (dir == NULL) continue;
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
        faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0)
      return dir;
    free(dir);
  }
  return NULL;
}

portalock_status portalock_default_temp_directory(char *buf, size_t cap, portalock_error *err) {
  char *dir = pl_default_directory();
  if (dir == NULL)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, ENOENT, NULL,
                   "no usable temporary directory ($TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, "
                   "/usr/tmp or the working directory)");
  int n = snprintf(buf, cap, "%s", dir);
  free(dir);
  if (n < 0 || (size_t)n >= cap)
    return pl_fail(err, PORTALOCK_INVALID, ENAMETOOLONG, NULL,
                   "bad argument 'cap' to 'portalock_default_temp_directory': %zu bytes cannot "
                   "hold the temporary directory",
                   cap);
  return PORTALOCK_OK;
}

static portalock_status pl_resolve_directory(portalock_bounded_semaphore_t *sem,
                                             portalock_error *err) {
  if (sem->directory == NULL) sem->directory = pl_default_directory();
  if (sem->directory == NULL)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, ENOENT, NULL,
                   "bounded semaphore '%s': no usable temporary directory ($TMPDIR, $TEMP, $TMP, "
                   "/tmp, /var/tmp, /usr/tmp or the working directory)",
                   sem->name);
  return PORTALOCK_OK;
}

/* The slot path into buf; -1 when it does not fit. */
static int pl_slot_path(const portalock_bounded_semaphore_t *sem, long number, char *buf,
                        size_t cap) {
  char component[PL_NAME_MAX + 1];
  size_t len;
  int has_number;
  if (pl_expand(sem->pattern, sem->name, number, component, sizeof component, &len, &has_number) !=
          NULL ||
      len > PL_NAME_MAX)
    return -1;
  const char *dir = sem->directory;
  const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
  int n = snprintf(buf, cap, "%s%s%s", dir, sep, component);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---------------------------------------------------------------- construction */

static portalock_status pl_bad(portalock_error *err, const char *option, const char *value,
                               const char *problem) {
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad option '%s' (\"%.300s\"): %s", option, value,
                 problem);
}

static portalock_status pl_check_names(long maximum, const char *name, const char *pattern,
                                       portalock_error *err) {
  if (strchr(name, '/') != NULL) return pl_bad(err, "name", name, "must not contain '/'");
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return pl_bad(err, "name", name, "must not be '.' or '..'");
  if (strlen(name) > PL_NAME_MAX) return pl_bad(err, "name", name, "is longer than 255 bytes");
  char component[PL_NAME_MAX + 1];
  size_t len;
  int has_number;
  for (long i = 0; i < maximum; i++) {
    const char *problem =
        pl_expand(pattern, name, i, component, sizeof component, &len, &has_number);
    if (problem != NULL) return pl_bad(err, "filename_pattern", pattern, problem);
    if (i == 0 && !has_number && maximum > 1)
      return pl_bad(err, "filename_pattern", pattern,
                    "must contain {number} when maximum > 1 (else every slot is one file)");
    if (len > PL_NAME_MAX)
      return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                     "bad option 'filename_pattern' (\"%.100s\") with name \"%.100s...\": slot "
                     "%ld's file name would be %zu bytes long (at most 255)",
                     pattern, name, i, len);
    const char *bad = pl_component_problem(component, len);
    if (bad != NULL)
      return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                     "bad option 'filename_pattern' (\"%.200s\") with name \"%.200s\": slot %ld's "
                     "file name \"%.260s\" %s (it must be one path component)",
                     pattern, name, i, component, bad);
  }
  return PORTALOCK_OK;
}

static char *pl_generated_name(void) {
  unsigned char r[8];
  if (pl_platform_random_bytes(r, sizeof r) != 0) return NULL;
  char buf[64];
  int n = snprintf(buf, sizeof buf, "bounded_semaphore.");
  for (size_t i = 0; i < sizeof r; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%02x", r[i]);
  char *copy = strdup(buf);
  if (copy == NULL) errno = ENOMEM;
  return copy;
}

portalock_status portalock_bounded_semaphore_new(portalock_bounded_semaphore_t **out, long maximum,
                                                 const portalock_bounded_semaphore_options *opts,
                                                 portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  portalock_bounded_semaphore_options o;
  if (opts != NULL)
    o = *opts;
  else
    portalock_bounded_semaphore_options_init(&o);
  portalock_status status =
      pl_check_rule(PORTALOCK_RULE_BOUNDED_MAXIMUM, "argument 'maximum'", (double)maximum, err);
  if (status != PORTALOCK_OK) return status;
  status = pl_check_timing(o.timeout, o.check_interval, err);
  if (status != PORTALOCK_OK) return status;
  status = pl_check_perm(o.perm, err);
  if (status != PORTALOCK_OK) return status;
  const char *pattern = o.filename_pattern != NULL ? o.filename_pattern : PL_DEFAULT_PATTERN;
  if (o.name != NULL) {
    status = pl_check_names(maximum, o.name, pattern, err);
    if (status != PORTALOCK_OK) return status;
  }
  portalock_bounded_semaphore_t *sem = calloc(1, sizeof *sem);
  if (sem == NULL) return pl_fail_sys(err, ENOMEM, "new bounded semaphore", NULL);
  sem->maximum = maximum;
  sem->timeout = o.timeout;
  sem->check_interval = o.check_interval;
  sem->perm = o.perm;
  sem->slot = -1;
  sem->watcher = (pl_watcher)PL_WATCHER_NONE;
  sem->pattern = strdup(pattern);
  sem->name = o.name != NULL ? strdup(o.name) : pl_generated_name();
  int errnum = sem->pattern == NULL ? ENOMEM : errno;
  if (sem->pattern == NULL || sem->name == NULL) {
    portalock_bounded_semaphore_free(sem);
    return pl_fail_sys(err, errnum, "new bounded semaphore", o.name);
  }
  if (o.name == NULL) {
    /* The generated name is safe; the pattern still has to be checked with it. */
    status = pl_check_names(maximum, sem->name, pattern, err);
    if (status != PORTALOCK_OK) {
      portalock_bounded_semaphore_free(sem);
      return status;
    }
  }
  if (o.directory != NULL) {
    sem->directory = pl_absolute_dir(o.directory, 0);
    if (sem->directory == NULL) {
      errnum = errno;
      portalock_bounded_semaphore_free(sem);
      if (errnum == ENAMETOOLONG) return pl_bad(err, "directory", o.directory, "is too long");
      return pl_fail_sys(err, errnum, "getcwd for directory", o.directory);
    }
    char probe[PORTALOCK_PATH_MAX];
    if (pl_slot_path(sem, maximum - 1, probe, sizeof probe) != 0) {
      portalock_bounded_semaphore_free(sem);
      return pl_bad(err, "directory", o.directory, "the slot paths would be too long");
    }
  }
  *out = sem;
  return PORTALOCK_OK;
}

/* ---------------------------------------------------------------- holding */

/* Closes the other slots' files a wait kept open. */
static void pl_close_slots(portalock_bounded_semaphore_t *sem) {
  if (sem->waiting == NULL) return;
  for (long k = 0; k < sem->maximum; k++)
    portalock_lock_free(sem->waiting[k]);
  free(sem->waiting);
  sem->waiting = NULL;
}

void portalock_bounded_semaphore_wait_done(portalock_bounded_semaphore_t *sem) {
  pl_close_slots(sem);
  pl_watcher_close(&sem->watcher);
  sem->polling = 0;
}

/* After fork() the slot lock and the wait are the parent's (detached in the child): forget
 * them. */
static void pl_drop_foreign(portalock_bounded_semaphore_t *sem) {
  if ((sem->waiting != NULL || sem->watcher.fd >= 0) && sem->waiter != pl_self())
    portalock_bounded_semaphore_wait_done(sem);
  if (sem->slot_lock != NULL && !portalock_lock_locked(sem->slot_lock)) {
    portalock_lock_free(sem->slot_lock);
    sem->slot_lock = NULL;
    sem->slot = -1;
  }
}

void portalock_bounded_semaphore_free(portalock_bounded_semaphore_t *sem) {
  if (sem == NULL) return;
  pl_drop_foreign(sem);
  portalock_bounded_semaphore_wait_done(sem);
  portalock_lock_free(sem->slot_lock);
  free(sem->order);
  free(sem->filename);
  free(sem->pattern);
  free(sem->name);
  free(sem->directory);
  free(sem);
}

/* The lock of slot `number` for this sweep, now the caller's: the one a wait kept (taken out
 * of `waiting`, which only ever holds locks nobody else owns), or a new one. */
static portalock_status pl_slot_lock(portalock_bounded_semaphore_t *sem, long number,
                                     double check_interval, portalock_lock_t **out,
                                     portalock_error *err) {
  if (sem->waiting != NULL && sem->waiting[number] != NULL) {
    *out = sem->waiting[number];
    sem->waiting[number] = NULL;
    return PORTALOCK_OK;
  }
  char path[PORTALOCK_PATH_MAX];
  if (pl_slot_path(sem, number, path, sizeof path) != 0)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, ENAMETOOLONG, sem->directory,
                   "bounded semaphore '%s': the path of slot %ld in '%s' is too long", sem->name,
                   number, sem->directory);
  portalock_lock_options lo;
  portalock_lock_options_init(&lo);
  lo.mode = "r";
  lo.timeout = 0;
  lo.check_interval = check_interval;
  lo.perm = sem->perm;
  portalock_status status = portalock_lock_new(out, path, &lo, err);
  if (status == PORTALOCK_OK) pl_lock_never_watch(*out); /* the semaphore watches every slot */
  return status;
}

/* The wait gives up the slot files it keeps open and its watch (its own opens and closes
 * would wake it), and polls from now on: a waiter needs a descriptor per slot otherwise. */
static void pl_poll_instead(portalock_bounded_semaphore_t *sem) {
  portalock_bounded_semaphore_wait_done(sem);
  sem->polling = 1;
  pl_count(PL_UNWATCHED);
}

/* Whether a slot failed for a reason about its own file that waiting won't cure (a symlink,
 * a FIFO or other non-regular file, another user's unreadable file...): such a slot is
 * skipped so that one planted file cannot fail the semaphore while other slots are free.
 * A missing directory (ENOENT, ENOTDIR), running out of memory or descriptors and I/O
 * errors are not about one slot and end the sweep. */
static int pl_slot_unusable(portalock_status status, int errnum) {
  if (status != PORTALOCK_LOCK_EXCEPTION) return 0;
  switch (errnum) {
  case ELOOP:  /* a symlink (slot files are opened O_NOFOLLOW) */
  case EINVAL: /* a FIFO, socket or device (pl_lockfile_open), or a file flock refuses */
  case EISDIR:
  case ENXIO: /* a socket, or a device without its driver */
  case ENODEV:
  case EACCES:
  case EPERM:
  case ETXTBSY:
  case EEXIST: /* the file kept appearing and disappearing */
    return 1;
  default:
    return 0;
  }
}

/* Tries every slot once, in random order, skipping unusable slot files; when every slot is
 * unusable the sweep fails with the first one's error. */
static portalock_status pl_sweep_once(portalock_bounded_semaphore_t *sem, double check_interval,
                                      portalock_error *err) {
  /* Not at construction: an object that never sweeps (a config declares many) costs no
   * maximum-sized array. */
  if (sem->order == NULL &&
      (sem->order = malloc((size_t)sem->maximum * sizeof *sem->order)) == NULL)
    return pl_fail_sys(err, ENOMEM, "allocate the sweep order for", sem->directory);
  if (pl_shuffle(sem->order, sem->maximum) != 0)
    return pl_fail_sys(err, errno, "read the OS random source for", sem->directory);
  portalock_error first; /* the first unusable slot's error */
  sem->unusable = 0;
  for (long k = 0; k < sem->maximum; k++) {
    long number = sem->order[k];
    portalock_lock_t *lock;
    portalock_status status = pl_slot_lock(sem, number, check_interval, &lock, err);
    if (status != PORTALOCK_OK) return status;
    status = portalock_lock_try(lock, NULL, err);
    if (status == PORTALOCK_OK) {
      sem->slot_lock = lock;
      sem->slot = number;
      pl_clear(err);
      return PORTALOCK_OK;
    }
    if (sem->waiting != NULL && status == PORTALOCK_CONTENDED) {
      sem->waiting[number] = lock; /* keeps its slot file open */
      continue;
    }
    portalock_lock_free(lock);
    if (status == PORTALOCK_CONTENDED) continue;
    if (sem->waiting != NULL && (err->errnum == EMFILE || err->errnum == ENFILE)) {
      pl_poll_instead(sem);
      k--; /* this slot again, with the descriptors the wait kept now free */
      continue;
    }
    if (!pl_slot_unusable(status, err->errnum)) return status;
    if (sem->unusable++ == 0) first = *err;
  }
  if (sem->unusable < sem->maximum) return PORTALOCK_CONTENDED;
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, first.errnum, first.path,
                 "bounded semaphore '%s': none of its %ld slot files can be used (%s)", sem->name,
                 sem->maximum, first.message);
}

/* Starts watching every slot file; returns 1 when a watch was just made (a release before
 * it went unseen). */
static int pl_watch_slots(portalock_bounded_semaphore_t *sem) {
  pl_watcher *w = &sem->watcher;
  if (w->fd >= 0 || w->unwatched || sem->waiting == NULL) return 0;
  for (long k = 0; k < sem->maximum && !w->unwatched; k++) {
    if (sem->waiting[k] == NULL) continue; /* an unusable slot: the periodic sweep retries it */
    pl_watcher_add(w, portalock_lock_filename(sem->waiting[k]));
  }
  if (w->unwatched) {
    /* Every slot watched or none: a slot left out would make its releases unseen. */
    pl_watcher_close(w);
    w->unwatched = 1;
  }
  return !w->unwatched;
}

/* What a sweep that found no slot says (its contention, and the wait engine's AlreadyLocked). */
static const char *pl_sweep_describe(const portalock_bounded_semaphore_t *sem, char *buf,
                                     size_t cap) {
  if (sem->unusable > 0)
    snprintf(buf, cap,
             "bounded semaphore '%s' in '%s' has its %ld usable slots held (%ld slot files "
             "cannot be used)",
             sem->name, sem->directory, sem->maximum - sem->unusable, sem->unusable);
  else
    snprintf(buf, cap, "bounded semaphore '%s' in '%s' has all %ld slots held", sem->name,
             sem->directory, sem->maximum);
  return sem->directory;
}

/* One sweep; `how` says whether a sweep that finds no slot keeps the slot files it opened and
 * watches them (pl_wait_how). */
static portalock_status pl_sweep(portalock_bounded_semaphore_t *sem, double check_interval,
                                 pl_wait_how how, portalock_wait *wait, portalock_error *err) {
  portalock_error local; /* pl_sweep_once reads the errno of a failed attempt */
  if (err == NULL) err = &local;
  pl_clear(err);
  pl_drop_foreign(sem);
  if (sem->slot_lock != NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, portalock_lock_filename(sem->slot_lock),
                   "bounded semaphore '%s' already holds slot %ld ('%s'): release it before "
                   "acquiring again",
                   sem->name, sem->slot, portalock_lock_filename(sem->slot_lock));
  portalock_status status = pl_resolve_directory(sem, err);
  if (status != PORTALOCK_OK) return status;
  if (!PL_WAIT_KEEPS(how)) {
    /* Without a slot array every contended slot file is closed at once; what an earlier sweep
     * of this wait kept goes too (its caller may never sweep again). */
    portalock_bounded_semaphore_wait_done(sem);
  } else if (sem->waiting == NULL && sem->maximum <= PL_WATCHED_SLOTS && !sem->polling) {
    sem->waiting = calloc((size_t)sem->maximum, sizeof *sem->waiting);
    sem->waiter = pl_self();
  }
  pl_watcher_arm(&sem->watcher);
  status = pl_sweep_once(sem, check_interval, err);
  if (status == PORTALOCK_CONTENDED &&
      (pl_watch_slots(sem) || pl_watcher_drain_late(&sem->watcher)))
    status = pl_sweep_once(sem, check_interval, err);
  if (status == PORTALOCK_OK) {
    /* The watch stays until the release: closing it takes an RCU grace period. */
    pl_close_slots(sem);
    return status;
  }
  if (status != PORTALOCK_CONTENDED) {
    portalock_bounded_semaphore_wait_done(sem);
    return status;
  }
  pl_watcher_lost_race(&sem->watcher);
  if (wait != NULL) {
    wait->fd = sem->watcher.fd;
    wait->next_attempt = portalock_monotonic() + pl_check_period(check_interval);
  }
  char subject[PORTALOCK_PATH_MAX + 256];
  const char *path = pl_sweep_describe(sem, subject, sizeof subject);
  return pl_fail(err, PORTALOCK_CONTENDED, 0, path, "%s", subject);
}

portalock_status portalock_bounded_semaphore_try(portalock_bounded_semaphore_t *sem,
                                                 portalock_wait *wait, portalock_error *err) {
  return pl_sweep(sem, sem->check_interval, PL_WAIT_WATCH, wait, err);
}

/* ---------------------------------------------------------------- the wait engine's side */

/* A sweep never queues in the kernel (PL_WAIT_QUEUE watches): it waits for any of its slots. */
static portalock_status pl_sweep_cb(const portalock_acquisition *acq, int target_fd,
                                    pl_wait_how how, portalock_wait *wait, portalock_error *err) {
  (void)target_fd;
  return pl_sweep(acq->object_, acq->check_interval, how, wait, err);
}

static void pl_sweep_source_cb(void *object, pl_wake_source *src) {
  portalock_bounded_semaphore_t *sem = object;
  pl_drop_foreign(sem);
  src->watch_fd = sem->watcher.fd;
}

static void pl_sweep_woke_cb(void *object, pl_counter woke) {
  pl_watcher_woke(&((portalock_bounded_semaphore_t *)object)->watcher, woke);
}

static void pl_sweep_give_up_cb(void *object) {
  portalock_bounded_semaphore_wait_done(object);
}

static const char *pl_sweep_describe_cb(void *object, char *buf, size_t cap) {
  return pl_sweep_describe(object, buf, cap);
}

static const pl_waitable pl_sweep_waitable = {pl_sweep_cb,          pl_sweep_source_cb,
                                              pl_sweep_woke_cb,     pl_sweep_give_up_cb,
                                              pl_sweep_describe_cb, NULL};

portalock_status portalock_bounded_semaphore_begin(portalock_acquisition *acq,
                                                   portalock_bounded_semaphore_t *sem,
                                                   double timeout, double check_interval,
                                                   portalock_error *err) {
  return pl_begin(acq, &pl_sweep_waitable, sem, 0, timeout, check_interval, 0, err);
}

portalock_status portalock_bounded_semaphore_acquire_with(portalock_bounded_semaphore_t *sem,
                                                          double timeout, double check_interval,
                                                          portalock_error *err) {
  portalock_acquisition acq;
  portalock_status status =
      portalock_bounded_semaphore_begin(&acq, sem, timeout, check_interval, err);
  return status == PORTALOCK_OK ? pl_acquire(&acq, err) : status;
}

portalock_status portalock_bounded_semaphore_acquire(portalock_bounded_semaphore_t *sem,
                                                     portalock_error *err) {
  return portalock_bounded_semaphore_acquire_with(sem, sem->timeout, sem->check_interval, err);
}

portalock_status portalock_bounded_semaphore_release(portalock_bounded_semaphore_t *sem,
                                                     portalock_error *err) {
  pl_clear(err);
  pl_drop_foreign(sem);
  if (sem->slot_lock == NULL) return PORTALOCK_OK;
  portalock_lock_t *lock = sem->slot_lock;
  sem->slot_lock = NULL;
  sem->slot = -1;
  portalock_status status = portalock_lock_release(lock, err);
  portalock_lock_free(lock);
  portalock_bounded_semaphore_wait_done(sem);
  return status;
}

/* ---------------------------------------------------------------- accessors */

int portalock_bounded_semaphore_locked(const portalock_bounded_semaphore_t *sem) {
  return sem->slot_lock != NULL && portalock_lock_locked(sem->slot_lock);
}

long portalock_bounded_semaphore_slot(const portalock_bounded_semaphore_t *sem) {
  return portalock_bounded_semaphore_locked(sem) ? sem->slot : -1;
}

portalock_lock_t *portalock_bounded_semaphore_lock(const portalock_bounded_semaphore_t *sem) {
  return portalock_bounded_semaphore_locked(sem) ? sem->slot_lock : NULL;
}

int portalock_bounded_semaphore_fd(const portalock_bounded_semaphore_t *sem) {
  return portalock_bounded_semaphore_locked(sem) ? portalock_lock_fd(sem->slot_lock) : -1;
}

long portalock_bounded_semaphore_maximum(const portalock_bounded_semaphore_t *sem) {
  return sem->maximum;
}

const char *portalock_bounded_semaphore_name(const portalock_bounded_semaphore_t *sem) {
  return sem->name;
}

const char *portalock_bounded_semaphore_filename_pattern(const portalock_bounded_semaphore_t *sem) {
  return sem->pattern;
}

const char *portalock_bounded_semaphore_directory(portalock_bounded_semaphore_t *sem) {
  if (pl_resolve_directory(sem, NULL) != PORTALOCK_OK) return NULL;
  return sem->directory;
}

const char *portalock_bounded_semaphore_filename(portalock_bounded_semaphore_t *sem, long number) {
  if (number < 0 || number >= sem->maximum) return NULL;
  if (pl_resolve_directory(sem, NULL) != PORTALOCK_OK) return NULL;
  if (sem->filename == NULL && (sem->filename = malloc(PORTALOCK_PATH_MAX)) == NULL) return NULL;
  if (pl_slot_path(sem, number, sem->filename, PORTALOCK_PATH_MAX) != 0) return NULL;
  return sem->filename;
}

portalock_status portalock_bounded_semaphore_random_order(const portalock_bounded_semaphore_t *sem,
                                                          long *order, portalock_error *err) {
  pl_clear(err);
  if (pl_shuffle(order, sem->maximum) != 0)
    return pl_fail_sys(err, errno, "read the OS random source for", sem->name);
  return PORTALOCK_OK;
}
