/*
 * The counting semaphore: a POSIX named semaphore "/portalock.<name>", opened on first use.
 * The handle counts its own acquires so that a scope can give back exactly what it took.
 */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/platform.h"

#define PL_SEM_PREFIX "/portalock."

struct portalock_semaphore {
  char *name;     /* as given or generated */
  char *sem_name; /* PL_SEM_PREFIX + name */
  unsigned long value;
  portalock_semaphore_options opts;
  pl_semfile file;    /* file.sem is SEM_FAILED until the first use */
  unsigned long held; /* acquires by this handle in process `holder`, not yet released */
  pid_t holder;
  double backoff; /* the last clock-only wait asked for, 0 after a success */
  pid_t granted;  /* a process whose blocking wait took a count for its next attempt, or 0 */
};

void portalock_semaphore_options_init(portalock_semaphore_options *opts) {
  opts->timeout = INFINITY;
  opts->check_interval = PORTALOCK_DEFAULT_CHECK_INTERVAL;
  opts->perm = 0600;
}

#define PL_STRINGIFY(x) #x
#define PL_STRING(x) PL_STRINGIFY(x)

const char *portalock_semaphore_name_problem(const char *name) {
  size_t len = strlen(name);
  if (len == 0) return "must not be empty";
  if (strchr(name, '/') != NULL) return "must not contain '/'";
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return "must not be \".\" or \"..\"";
  if (len > PORTALOCK_SEMAPHORE_NAME_MAX)
    return "is too long (at most " PL_STRING(PORTALOCK_SEMAPHORE_NAME_MAX) " bytes)";
  return NULL;
}

static portalock_status pl_sem_check_name(const char *name, portalock_error *err) {
  const char *problem = portalock_semaphore_name_problem(name);
  if (problem == NULL) return PORTALOCK_OK;
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'name' (\"%.64s%s\"): %s", name,
                 strlen(name) > 64 ? "..." : "", problem);
}

/* "semaphore.<16 hex digits>" from the OS random source. */
static portalock_status pl_sem_generate_name(char *buf, size_t len, portalock_error *err) {
  unsigned char bytes[8];
  if (pl_platform_random_bytes(bytes, sizeof bytes) != 0)
    return pl_fail_sys(err, errno, "Semaphore: read the OS random source for a name", NULL);
  int n = snprintf(buf, len, "semaphore.");
  for (size_t i = 0; i < sizeof bytes; i++)
    n += snprintf(buf + n, len - (size_t)n, "%02x", bytes[i]);
  return PORTALOCK_OK;
}

static portalock_status pl_sem_check_options(const portalock_semaphore_options *o,
                                             portalock_error *err) {
  portalock_status status = pl_check_timing(o->timeout, o->check_interval, err);
  if (status != PORTALOCK_OK) return status;
  return pl_check_rule(PORTALOCK_RULE_SEMAPHORE_PERM, "option 'perm'", o->perm, err);
}

portalock_status portalock_semaphore_new(portalock_semaphore_t **out, const char *name,
                                         unsigned long value,
                                         const portalock_semaphore_options *opts,
                                         portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  portalock_semaphore_options defaults;
  if (opts == NULL) {
    portalock_semaphore_options_init(&defaults);
    opts = &defaults;
  }
  portalock_status status = pl_sem_check_options(opts, err);
  if (status != PORTALOCK_OK) return status;
  status = pl_check_rule(PORTALOCK_RULE_SEMAPHORE_VALUE, "argument 'value'", (double)value, err);
  if (status != PORTALOCK_OK) return status;
  char generated[64];
  if (name == NULL) {
    status = pl_sem_generate_name(generated, sizeof generated, err);
    if (status != PORTALOCK_OK) return status;
    name = generated;
  }
  status = pl_sem_check_name(name, err);
  if (status != PORTALOCK_OK) return status;
  portalock_semaphore_t *sem = calloc(1, sizeof *sem);
  size_t len = strlen(name);
  if (sem != NULL) {
    sem->name = malloc(len + 1);
    sem->sem_name = malloc(sizeof PL_SEM_PREFIX + len);
  }
  if (sem == NULL || sem->name == NULL || sem->sem_name == NULL) {
    if (sem != NULL) {
      free(sem->name);
      free(sem->sem_name);
    }
    free(sem);
    return pl_fail_sys(err, ENOMEM, "new Semaphore", name);
  }
  memcpy(sem->name, name, len + 1);
  snprintf(sem->sem_name, sizeof PL_SEM_PREFIX + len, "%s%s", PL_SEM_PREFIX, name);
  sem->value = value;
  sem->opts = *opts;
  sem->file.sem = SEM_FAILED;
  *out = sem;
  return PORTALOCK_OK;
}

void portalock_semaphore_free(portalock_semaphore_t *sem) {
  if (sem == NULL) return;
  if (sem->file.sem != SEM_FAILED) {
    portalock_semaphore_wait_done(sem);
    pl_semfile_close(&sem->file);
  }
  free(sem->name);
  free(sem->sem_name);
  free(sem);
}

const char *portalock_semaphore_name(const portalock_semaphore_t *sem) {
  return sem->name;
}

/* Opens (creating with the initial value if missing) at the first use; no descriptor stays
 * open. */
static portalock_status pl_sem_open(portalock_semaphore_t *sem, portalock_error *err) {
  if (sem->file.sem != SEM_FAILED) return PORTALOCK_OK;
  return pl_semfile_open(sem->sem_name, sem->name, sem->opts.perm, (unsigned)sem->value, &sem->file,
                         err);
}

/* A handle inherited through fork() holds none of its parent's counts. */
static void pl_sem_sync(portalock_semaphore_t *sem) {
  if (sem->held > 0 && sem->holder != pl_self()) sem->held = 0;
}

static portalock_status pl_sem_took(portalock_semaphore_t *sem) {
  pl_sem_sync(sem);
  sem->held++;
  sem->holder = pl_self();
  sem->backoff = 0;
  return PORTALOCK_OK;
}

portalock_status portalock_semaphore_try(portalock_semaphore_t *sem, portalock_wait *wait,
                                         portalock_error *err) {
  pl_clear(err);
  portalock_status status = pl_sem_open(sem, err);
  if (status != PORTALOCK_OK) return status;
  pl_sem_sync(sem);
  if (sem->held == ULONG_MAX)
    return pl_fail(err, PORTALOCK_INVALID, 0, sem->sem_name,
                   "Semaphore '%s' acquired more than %lu times through one handle", sem->name,
                   ULONG_MAX);
  if (sem->granted != 0) {
    /* A forked child never claims its parent's grant. */
    int mine = sem->granted == pl_self();
    sem->granted = 0;
    if (mine) return pl_sem_took(sem);
  }
  for (;;) {
    if (sem_trywait(sem->file.sem) == 0) return pl_sem_took(sem);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) break;
    return pl_fail_sys(err, errno, "acquire semaphore", sem->sem_name);
  }
  double next = sem->backoff == 0 ? PORTALOCK_CHECK_INTERVAL_MIN : sem->backoff * 2;
  if (next > pl_check_period(sem->opts.check_interval))
    next = pl_check_period(sem->opts.check_interval);
  sem->backoff = next;
  if (wait != NULL) {
    wait->fd = -1;
    wait->next_attempt = portalock_monotonic() + next;
  }
  return pl_fail(err, PORTALOCK_CONTENDED, EAGAIN, sem->sem_name,
                 "Semaphore '%s': no count available", sem->name);
}

void portalock_semaphore_wait_done(portalock_semaphore_t *sem) {
  if (sem->granted == pl_self()) sem_post(sem->file.sem);
  sem->granted = 0;
}

/* ---------------------------------------------------------------- the wait engine's side */

static portalock_status pl_sem_attempt_cb(const portalock_acquisition *acq, int target_fd,
                                          pl_wait_how how, portalock_wait *wait,
                                          portalock_error *err) {
  (void)target_fd;
  (void)how; /* it keeps nothing between attempts */
  return portalock_semaphore_try(acq->object_, wait, err);
}

static void pl_sem_source_cb(void *object, pl_wake_source *src) {
  portalock_semaphore_t *sem = object;
  if (sem->file.sem != SEM_FAILED && sem->granted == 0) src->sem = sem->file.sem;
}

static void pl_sem_woke_cb(void *object, pl_counter woke) {
  /* Only the semaphore's own sleep ends with the kernel: it took a count for the next try. */
  if (woke == PL_WOKE_KERNEL) ((portalock_semaphore_t *)object)->granted = pl_self();
}

static void pl_sem_give_up_cb(void *object) {
  portalock_semaphore_wait_done(object);
}

static const char *pl_sem_describe_cb(void *object, char *buf, size_t cap) {
  portalock_semaphore_t *sem = object;
  snprintf(buf, cap, "Semaphore '%s' has no count available", sem->name);
  return sem->sem_name;
}

static const pl_waitable pl_sem_waitable = {pl_sem_attempt_cb, pl_sem_source_cb,   pl_sem_woke_cb,
                                            pl_sem_give_up_cb, pl_sem_describe_cb, NULL};

portalock_status portalock_semaphore_begin(portalock_acquisition *acq, portalock_semaphore_t *sem,
                                           double timeout, double check_interval,
                                           portalock_error *err) {
  return pl_begin(acq, &pl_sem_waitable, sem, 0, timeout, check_interval, 0, err);
}

portalock_status portalock_semaphore_acquire_with(portalock_semaphore_t *sem, double timeout,
                                                  portalock_error *err) {
  portalock_acquisition acq;
  portalock_status status =
      portalock_semaphore_begin(&acq, sem, timeout, sem->opts.check_interval, err);
  return status == PORTALOCK_OK ? pl_acquire(&acq, err) : status;
}

portalock_status portalock_semaphore_acquire(portalock_semaphore_t *sem, portalock_error *err) {
  return portalock_semaphore_acquire_with(sem, sem->opts.timeout, err);
}

/* Posts `n` (1..SEM_VALUE_MAX), refusing up front what would overflow the value. */
static portalock_status pl_sem_post(portalock_semaphore_t *sem, unsigned long n,
                                    portalock_error *err) {
  int value;
  if (sem_getvalue(sem->file.sem, &value) != 0)
    return pl_fail_sys(err, errno, "read the value of semaphore", sem->sem_name);
  if (value > 0 && (unsigned long)value > (unsigned long)SEM_VALUE_MAX - n)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EOVERFLOW, sem->sem_name,
                   "Semaphore '%s': releasing %lu would raise its value (%d) beyond "
                   "SEM_VALUE_MAX (%ld); nothing was released",
                   sem->name, n, value, (long)SEM_VALUE_MAX);
  for (unsigned long posted = 0; posted < n; posted++) {
    if (sem_post(sem->file.sem) != 0) {
      int e = errno;
      char why[128];
      pl_strerror(e, why, sizeof why);
      return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, sem->sem_name,
                     "Semaphore '%s': released %lu of %lu, then: %s", sem->name, posted, n, why);
    }
    if (sem->held > 0) sem->held--;
  }
  return PORTALOCK_OK;
}

portalock_status portalock_semaphore_release(portalock_semaphore_t *sem, unsigned long n,
                                             portalock_error *err) {
  pl_clear(err);
  portalock_status status =
      pl_check_rule(PORTALOCK_RULE_SEMAPHORE_RELEASE, "argument 'n'", (double)n, err);
  if (status != PORTALOCK_OK) return status;
  status = pl_sem_open(sem, err);
  if (status != PORTALOCK_OK) return status;
  pl_sem_sync(sem);
  return pl_sem_post(sem, n, err);
}

portalock_status portalock_semaphore_release_held(portalock_semaphore_t *sem,
                                                  portalock_error *err) {
  pl_clear(err);
  pl_sem_sync(sem);
  if (sem->held == 0) return PORTALOCK_OK;
  /* held > 0 means the semaphore was opened */
  return pl_sem_post(sem, sem->held, err);
}

unsigned long portalock_semaphore_held(const portalock_semaphore_t *sem) {
  return sem->held > 0 && sem->holder == pl_self() ? sem->held : 0;
}

portalock_status portalock_semaphore_value(portalock_semaphore_t *sem, long *value,
                                           portalock_error *err) {
  pl_clear(err);
  portalock_status status = pl_sem_open(sem, err);
  if (status != PORTALOCK_OK) return status;
  int v;
  if (sem_getvalue(sem->file.sem, &v) != 0)
    return pl_fail_sys(err, errno, "read the value of semaphore", sem->sem_name);
  if (value != NULL) *value = v < 0 ? 0 : v;
  return PORTALOCK_OK;
}

portalock_status portalock_semaphore_unlink(const char *name, portalock_error *err) {
  pl_clear(err);
  if (name == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'name' (NULL)");
  portalock_status status = pl_sem_check_name(name, err);
  if (status != PORTALOCK_OK) return status;
  char sem_name[sizeof PL_SEM_PREFIX + PORTALOCK_SEMAPHORE_NAME_MAX];
  snprintf(sem_name, sizeof sem_name, "%s%s", PL_SEM_PREFIX, name);
  if (sem_unlink(sem_name) != 0) return pl_fail_sys(err, errno, "unlink semaphore", sem_name);
  return PORTALOCK_OK;
}
