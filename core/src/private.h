/* Internal interfaces of libportalock. Every source file includes this header first. */
#ifndef PORTALOCK_PRIVATE_H
#define PORTALOCK_PRIVATE_H

/* flock(2) and the XSI strerror_r lie outside strict C11: glibc and musl show them only when
 * asked. Other systems show everything by default. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif

#include <semaphore.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "portalock.h"

#if defined(__GNUC__) || defined(__clang__)
#define PL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PL_PRINTF(fmt, args)
#endif

/* How often an attempt re-opens a file that keeps being replaced under it. */
#define PL_ROUNDS 16

/* ---------------------------------------------------------------- error.c */

void pl_clear(portalock_error *err);
/* Fills `err` (when not NULL) and returns `status`. */
portalock_status pl_fail(portalock_error *err, portalock_status status, int errnum,
                         const char *path, const char *fmt, ...) PL_PRINTF(5, 6);
/* A failed system call: LOCK_EXCEPTION, "<what> '<path>': <strerror>". */
portalock_status pl_fail_sys(portalock_error *err, int errnum, const char *what, const char *path);
void pl_strerror(int errnum, char *buf, size_t len);

/* ---------------------------------------------------------------- backend.c */

/* NULL when `flags` is exactly one of LOCK_SH/LOCK_EX plus optionally LOCK_NB, else why not. */
const char *pl_flags_problem(int flags);
int pl_backend_valid(portalock_backend backend);
/* Applies LOCK_SH, LOCK_EX or LOCK_UN; waits when `block` (restarting after signals).
 * Returns 0, or -1 with errno. */
int pl_backend_apply(int fd, int op, int block, portalock_backend backend);
/* 1 when `errnum` from a non-blocking attempt means someone else holds the lock. */
int pl_backend_contended(portalock_backend backend, int errnum);

/* ---------------------------------------------------------------- held.c */

/* A descriptor this process locked. The table lets conversions and second posix locks be
 * recognised, and detaches lock objects' descriptors in a forked child. */
typedef struct pl_held {
  int fd;
  /* The file's identity, recorded when `identified`: by every entry but a low-level flock or
   * ofd lock's, which nothing compares with another file, so portalock_lock saves the fstat
   * (a system call as dear as the lock itself). Such an entry cannot notice that its
   * descriptor was closed and the number reused; it only tells a conversion apart. */
  int identified;
  dev_t dev;
  ino_t ino;
  portalock_backend backend;
  int type; /* PORTALOCK_LOCK_SH or PORTALOCK_LOCK_EX */
  pid_t pid;
  int detach_at_fork;
  uint64_t serial; /* set by pl_held_add; tells apart two holders of one fd number */
} pl_held;

/* This process's ID (getpid() without a system call: cached, refreshed at fork(2)). */
pid_t pl_self(void);
/* Records `h`, replacing any entry for its fd. Returns the serial, or 0 (errno ENOMEM). */
uint64_t pl_held_add(const pl_held *h);
/* Copies the live entry for `fd` into `out` and returns 1; 0 when there is none. */
int pl_held_find(int fd, pl_held *out);
/* What lock() and unlock() keep. pl_held_record records a lock lock() took: a flock or ofd
 * lock on a small descriptor in a slot of its own, without the mutex; else in the table,
 * where an entry for h->fd of h's backend that is still live only takes h->type (a lock
 * object's entry stays its own) and otherwise `h` is added as by pl_held_add. Returns 1, or
 * 0 (errno ENOMEM). pl_held_type: the type held through `fd` with `backend`, as lock() or a
 * lock object recorded it, or 0. pl_held_forget: unlock()'s end of what lock() recorded. */
int pl_held_record(const pl_held *h);
int pl_held_type(int fd, portalock_backend backend);
void pl_held_forget(int fd, portalock_backend backend);
void pl_held_remove_fd(int fd);
void pl_held_remove_serial(uint64_t serial);
/* A descriptor other than `except_fd` through which this process holds a posix lock on the
 * file (dev, ino), or -1. */
int pl_held_posix_fd(dev_t dev, ino_t ino, int except_fd);

/* ---------------------------------------------------------------- options.c */

typedef struct pl_mode {
  int oflags; /* O_RDONLY, O_WRONLY or O_RDWR, maybe with O_APPEND */
  int truncate;
  int readable;
  int writable;
} pl_mode;

portalock_status pl_check_timing(double timeout, double check_interval, portalock_error *err);
/* How long a wait may go between re-checks for `check_interval`: never less than
 * PORTALOCK_CHECK_INTERVAL_MIN, so that 0 re-checks often without spinning. */
double pl_check_period(double check_interval);
portalock_status pl_check_options(const portalock_lock_options *opts, pl_mode *mode,
                                  portalock_error *err);

/* ---------------------------------------------------------------- bounded.c */

/* A bounded semaphore's slot file name: `pattern` expanded for `name` and slot `number`
 * (its rules are described in bounded.c). Outside bounded.c only the fuzz targets call it. */
const char *pl_expand(const char *pattern, const char *name, long number, char *buf, size_t cap,
                      size_t *len, int *has_number);

/* ---------------------------------------------------------------- status.c */

/* One parsed line of /proc/locks. */
typedef struct pl_lock_line {
  portalock_holder holder;
  unsigned long long major, minor, ino;
} pl_lock_line;

/* Parses one line of /proc/locks (NUL-terminated; tokenised in place): 0, or -1 for a line
 * it cannot use (see status.c). platform/linux.c reads the file; the fuzz targets call it too. */
int pl_parse_line(char *line, pl_lock_line *out);

/* ---------------------------------------------------------------- lockfile.c */

/* Opens `path` for locking: an existing file without O_CREAT (protected_regular), a missing
 * one with O_CREAT|O_EXCL and `perm`. Fills `st`; a directory is EISDIR. */
portalock_status pl_lockfile_open(const char *path, int oflags, int perm, int *fd_out,
                                  struct stat *st, portalock_error *err);
/* Empties the file and leaves the descriptor writing at its position. 0, or -1 with errno. */
int pl_lockfile_truncate(int fd);
/* Refuses (EDEADLK) a posix lock on `path` while another descriptor of this process holds
 * one; checked before opening, since closing any descriptor of the file drops the lock. */
portalock_status pl_lockfile_posix_check(const char *path, portalock_error *err);

/* ---------------------------------------------------------------- semfile.c */

/* An open counting semaphore: mapped by semfile.c from a checked file, or by sem_open. */
typedef struct pl_semfile {
  sem_t *sem; /* SEM_FAILED when not open */
  int mapped;
} pl_semfile;

/* Opens the named semaphore `name` ("/portalock.x"; `label` names it in messages), creating
 * it with `perm` (less the umask) and `value` when missing. Where it is a file (platform.h),
 * the file is checked before it is mapped: a symlink, a file of another owner, one that
 * group or others may write beyond what `perm` grants (EACCES), or one that is no semaphore
 * (EINVAL: not a regular file, or not sizeof(sem_t) bytes) is LOCK_EXCEPTION with a message
 * naming the path, its owner and its mode. */
portalock_status pl_semfile_open(const char *name, const char *label, int perm, unsigned value,
                                 pl_semfile *out, portalock_error *err);
void pl_semfile_close(pl_semfile *file);

/* ---------------------------------------------------------------- wake.c */

/* What ended a wait, and other events the wait counters count. */
typedef enum pl_counter {
  PL_WOKE_EVENT,    /* a watched file was closed (or renamed, or removed) */
  PL_WOKE_KERNEL,   /* the kernel queue granted the lock */
  PL_WOKE_TIMER,    /* the fallback timer (next_attempt) ran out first */
  PL_WOKE_DEADLINE, /* the caller's deadline came first */
  PL_WOKE_SIGNAL,
  PL_LOST_RACE, /* woken by an event, the next attempt found the lock taken again */
  PL_UNWATCHED, /* no watch could be made (no inotify, or EMFILE): the wait polls */
  PL_COUNTERS
} pl_counter;

void pl_count(pl_counter what);
/* Sleeps until `fd` (when >= 0) is readable, or until next_attempt or deadline; counts and
 * returns what ended the sleep. */
pl_counter pl_sleep(int fd, double next_attempt, double deadline);
/* A non-blocking inotify instance (counting PL_UNWATCHED when there is none), or -1. */
int pl_watch_open(void);
/* Watches `path` for the events that may end a wait. A watch descriptor, or -1 with errno. */
int pl_watch_add(int watch_fd, const char *path);
void pl_watch_remove(int watch_fd, int watch);
void pl_watch_drain(int watch_fd);
/* Whether a wait may queue in the kernel: with a deadline (a helper thread, needing
 * pthread_clockjoin_np), or with none (the caller's thread, wherever the backend blocks). */
int pl_kernel_queue_available(portalock_backend backend);
int pl_kernel_queue_forever_available(portalock_backend backend);
/* Blocks in the kernel's lock call on `fd` until it is granted (PL_WOKE_KERNEL: `fd` now
 * holds the lock) or until next_attempt or deadline. `*stack` is the caller's stack for the
 * helper thread (made at the first wait, freed with pl_kernel_queue_stack_free). */
pl_counter pl_kernel_queue_wait(int fd, int type, portalock_backend backend, double next_attempt,
                                double deadline, void **stack);
/* The same queue for a wait without a deadline, in the caller's thread: PL_WOKE_KERNEL when
 * granted (signals do not end it); if the kernel refuses to queue, it sleeps until
 * next_attempt instead. */
pl_counter pl_kernel_queue_wait_forever(int fd, int type, portalock_backend backend,
                                        double next_attempt);
void pl_kernel_queue_stack_free(void *stack);

/* A wait in progress on one lock file, from a contended attempt until the lock is taken or
 * the wait is given up. */
typedef struct pl_waiting {
  int file_fd; /* the lock file, open and unlocked, for the next attempt (-1: none): closing
                  it after each failed attempt would wake every other waiter */
  dev_t dev;
  ino_t ino;
  uint64_t serial; /* file_fd's held-table entry: a forked child must not share it */
  pid_t pid;       /* the process that opened file_fd and watch_fd */
  int watch_fd;    /* this wait's inotify instance, or -1 */
  int watch;       /* its watch on the lock file, or -1 (removed when the lock is crowded) */
  int unwatched;   /* making a watch failed: this wait does without */
  int woke;        /* the last wait ended on an event: a failed attempt now lost a race */
  int remote;      /* file_fd is on a network file system (or that is unknown): its kernel
                      queue may be slow to answer (see pl_platform_network_file), so the wait
                      never queues there */
  int forever;     /* a C loop waits with no deadline: no watch, the kernel queue at once
                      (set and cleared by pl_lock_acquire_loop) */
} pl_waiting;

/* ---------------------------------------------------------------- lock.c and its kinds */

typedef struct pl_kind {
  const char *name;             /* for messages: "Lock", "TemporaryFileLock", ... */
  const char *default_filename; /* NULL: required */
  const char *mode;             /* forced mode, or NULL for the options' mode */
  const char *lock_suffix;      /* appended to the filename for the file that is locked */
  int exclusive_only;
  int default_fail_when_locked;
  /* After the kernel lock is taken: OK, or OK with *replaced (drop it and try again), or a
   * failure (err filled) after which the caller unlocks and closes. */
  portalock_status (*after_lock)(portalock_lock_t *lock, int fd, int *replaced,
                                 portalock_error *err);
  /* Contention: may add the holder to the error. */
  void (*on_contended)(portalock_lock_t *lock, portalock_error *err);
  /* Release, before unlocking (never in a forked child). */
  portalock_status (*before_unlock)(portalock_lock_t *lock, int fd, portalock_error *err);
} pl_kind;

struct portalock_lock {
  const pl_kind *kind;
  portalock_lock_options opts; /* opts.mode points at mode_buf */
  char mode_buf[4];
  pl_mode mode;
  char *filename;
  char *lock_filename; /* == filename unless the kind has a lock_suffix */
  int fd;              /* -1 when not held */
  int handed_over;
  pid_t holder; /* the process that took the lock: another pid means a forked child */
  dev_t dev;
  ino_t ino;
  uint64_t serial; /* of the held-table entry */
  pl_waiting waiting;
  double crowded_until; /* a wake-up lost the race: until then (monotonic seconds) blocking
                           waits queue in the kernel (see wake.c) */
  int unwatched;        /* its waits never watch the file (a bounded semaphore watches its slots) */
  void *queue_stack;    /* the kernel queue's thread stack, kept for the next wait, or NULL */
  dev_t fs_dev;         /* the device whose file system fs_remote describes */
  int fs_remote;        /* fs_dev is a network file system (1) or not (0); -1: not asked yet */
};

portalock_status pl_lock_create(portalock_lock_t **out, const pl_kind *kind, const char *filename,
                                const portalock_lock_options *opts, portalock_error *err);

/* portalock_lock_wait; `patient`: a kernel-queued wait lasts up to the deadline. */
int pl_lock_wait(portalock_lock_t *lock, const portalock_wait *wait, double deadline, int patient);

extern const pl_kind pl_temporary_kind;
extern const pl_kind pl_pidfile_kind;

/* temporary.c: for a kind whose lock file is removed on release (TemporaryFileLock's file,
 * PidFileLock's sidecar). After locking: *replaced when the path no longer names the locked
 * file (a previous holder removed it: lock the new one instead). Before unlocking: removes
 * the file, if the path still names it. */
portalock_status pl_temporary_after_lock(portalock_lock_t *lock, int fd, int *replaced,
                                         portalock_error *err);
portalock_status pl_temporary_before_unlock(portalock_lock_t *lock, int fd, portalock_error *err);

/* ---------------------------------------------------------------- wait.c */

/* What the acquire loop needs of an object: its step, its blocking wait (as
 * portalock_lock_wait) and how to give a wait up. */
typedef struct pl_waitable {
  portalock_status (*try_step)(void *ctx, portalock_wait *wait, portalock_error *err);
  int (*wait)(void *ctx, const portalock_wait *wait, double deadline);
  void (*wait_done)(void *ctx);
} pl_waitable;

/* The acquire loop shared by every object that waits. */
portalock_status pl_acquire_loop(const pl_waitable *waitable, void *ctx, double timeout,
                                 double check_interval, int fail_when_locked, portalock_error *err);
/* The same loop for a Lock's or an RLock's `waitable`, which waits on `lock` (lock.c). */
portalock_status pl_lock_acquire_loop(portalock_lock_t *lock, const pl_waitable *waitable,
                                      void *ctx, double timeout, double check_interval,
                                      int fail_when_locked, portalock_error *err);
/* Fills `wait` (may be NULL) for a clock-only wait of `check_interval`. */
void pl_wait_clock(portalock_wait *wait, double check_interval);
/* Longest single sleep: a wait on nothing but an infinite clock still wakes up now and then. */
#define PL_MAX_SLEEP 3600.0
struct timespec;
/* The CLOCK_MONOTONIC timespec of `when` (monotonic seconds), at most PL_MAX_SLEEP away. */
void pl_monotonic_timespec(double when, struct timespec *ts);
/* portalock_wait_step's result for what ended a wait. */
int pl_wait_result(pl_counter woke);

#endif /* PORTALOCK_PRIVATE_H */
