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

/* ---------------------------------------------------------------- access.c */

/* "root (uid 0)", or "uid 1234" when the user has no name. */
void pl_describe_user(uid_t uid, char *buf, size_t cap);
/* Who must pass a sharing `perm` for another user to use a file: its creator (a lock file,
 * whose mode is all that counts), or its creator and every user (a counting semaphore, which
 * each user's own perm must also agree to share). */
typedef enum pl_sharing { PL_SHARED_BY_CREATOR, PL_SHARED_BY_BOTH } pl_sharing;
/* A file this process may not open or create: LOCK_EXCEPTION, "<what> '<path>': <strerror>: "
 * then, for EACCES, the file's owner and mode (or its directory's when it is missing), the
 * user this process runs as, and what to change (option perm, chown, chmod); for ENOENT, the
 * directory that does not exist. */
portalock_status pl_fail_access(portalock_error *err, int errnum, const char *what,
                                const char *path, pl_sharing sharing);

/* ---------------------------------------------------------------- backend.c */

/* NULL when `flags` is exactly one of LOCK_SH/LOCK_EX plus optionally LOCK_NB, else why not. */
const char *pl_flags_problem(int flags);
/* OK, or PORTALOCK_INVALID naming `what` ("backend", "option 'backend'") and the value. */
portalock_status pl_check_backend(portalock_backend backend, const char *what,
                                  portalock_error *err);
/* How pl_backend_apply waits: not at all, until granted (restarting after signals), or until
 * granted or a signal (EINTR). */
enum { PL_NO_BLOCK = 0, PL_BLOCK = 1, PL_BLOCK_UNTIL_SIGNAL = 2 };
/* Applies LOCK_SH, LOCK_EX or LOCK_UN; waits as `block` says. Returns 0, or -1 with errno. */
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
/* Posix lock attempts one at a time in the process, each from its pl_held_posix_fd check to
 * the entry that records its lock: the kernel grants a process a second posix lock on a file
 * it holds, so only that check refuses it, and no other attempt may pass it in between.
 * Nothing that waits runs between enter and leave. */
void pl_held_posix_enter(void);
void pl_held_posix_leave(void);

/* ---------------------------------------------------------------- options.c */

typedef struct pl_mode {
  int oflags; /* O_RDONLY, O_WRONLY or O_RDWR, maybe with O_APPEND */
  int truncate;
  int readable;
  int writable;
} pl_mode;

/* PORTALOCK_OK when `value` obeys `rule`; else PORTALOCK_INVALID with the message "bad
 * <what> (<value>): <the rule's problem>", `what` naming it ("option 'perm'"). */
portalock_status pl_check_rule(portalock_rule rule, const char *what, double value,
                               portalock_error *err);
portalock_status pl_check_timing(double timeout, double check_interval, portalock_error *err);
/* A file `perm` of a Lock or bounded semaphore: PORTALOCK_PERM_UMASK, or the rule's range. */
portalock_status pl_check_perm(int perm, portalock_error *err);
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
 * one with O_CREAT|O_EXCL, given exactly `perm` (PORTALOCK_PERM_UMASK: 0666 less the umask).
 * Fills `st`; a directory is EISDIR; EACCES names the owner and mode (pl_fail_access). */
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
 * it with `value` and exactly `perm` when missing (less the umask where it is no file). Where
 * it is a file (platform.h), the file is checked before it is mapped: a symlink, a file of
 * another owner, one that group or others may write beyond what `perm` grants (EACCES), or
 * one that is no semaphore (EINVAL: not a regular file, or not sizeof(sem_t) bytes) is
 * LOCK_EXCEPTION with a message naming the path, its owner and its mode; one this process
 * may not open also says what to change (pl_fail_access). */
portalock_status pl_semfile_open(const char *name, const char *label, int perm, unsigned value,
                                 pl_semfile *out, portalock_error *err);
void pl_semfile_close(pl_semfile *file);

/* ---------------------------------------------------------------- clock.c */

/* Longest single sleep: a wait on nothing but an infinite clock still wakes up now and then. */
#define PL_MAX_SLEEP 3600.0
struct timespec;
/* The CLOCK_MONOTONIC timespec of `when` (monotonic seconds), at most PL_MAX_SLEEP away. */
void pl_monotonic_timespec(double when, struct timespec *ts);
/* poll(2)'s timeout for `left` seconds (>= 0): never shorter (waking before the time would
 * only spin), but at most INT_MAX ms; -1 for no end. */
int pl_poll_ms(double left);

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
/* What a wait on an object can sleep on; the object fills it, pl_wake_sleep picks how. A new
 * kind of object plugs in here (and in a pl_waitable, wait.c) rather than with a loop of its
 * own: a descriptor to poll is a watch_fd. */
typedef struct pl_wake_source {
  int watch_fd;                    /* readable when what is waited for may have changed (an
                                      inotify instance watching the files), or -1 */
  int queue_fd;                    /* the object's file, open and unlocked, that the kernel
                                      can queue a lock call on (never one on a network file
                                      system: see pl_wake_queues), or -1 */
  int queue_type;                  /* PORTALOCK_LOCK_SH or PORTALOCK_LOCK_EX */
  portalock_backend queue_backend; /* flock or ofd: a posix lock keeps no file to queue on */
  void **queue_stack; /* the object's helper-thread stack (pl_kernel_queue_stack_free) */
  sem_t *sem;         /* a counting semaphore whose count the wait may take, or NULL */
} pl_wake_source;

#define PL_WAKE_SOURCE_NONE                                                                        \
  { .watch_fd = -1, .queue_fd = -1 }

/* Whether a wait on a lock file queues in the kernel rather than watching it: a wait with no
 * end (`forever`), or a crowded one, on a local file system whose kernel can queue it. */
int pl_wake_queues(portalock_backend backend, int remote, int crowded, int forever);
/* Sleeps on what `src` offers until it may have changed, or until next_attempt (only a watch
 * or the clock need it: the kernel queue and a semaphore miss nothing and last up to the
 * deadline), never past `deadline`; the kernel queue also returns by `return_by` (INFINITY:
 * the deadline). A signal ends the sleep. Counts and returns what ended the sleep:
 * PL_WOKE_KERNEL means the kernel granted the lock on queue_fd, or the semaphore's count
 * was taken for the caller. */
pl_counter pl_wake_sleep(const pl_wake_source *src, double next_attempt, double deadline,
                         double return_by);
void pl_kernel_queue_stack_free(void *stack);

/* ---------------------------------------------------------------- wait.c's policy */

/* How the attempts of an acquisition may prepare for a wait: wait.c decides it from the
 * acquisition (pl_wait_how_of), and every object obeys it.
 *   PL_WAIT_WATCH: the caller sleeps in portalock_sleep or on the step's descriptor: a contended
 *                  attempt keeps the files it opened and watches them (see portalock_wait);
 *   PL_WAIT_QUEUE: the same without a deadline: a Lock queues in the kernel instead of watching;
 *   PL_WAIT_POLL:  the caller sleeps on the clock (portalock_acquisition_polls): an attempt
 *                  watches nothing and keeps nothing open once it returns;
 *   PL_WAIT_NONE:  the acquisition gives up at its first contention (fail_when_locked, timeout
 *                  0): nothing to wait on, so nothing is watched or kept either. */
typedef enum pl_wait_how { PL_WAIT_WATCH, PL_WAIT_QUEUE, PL_WAIT_POLL, PL_WAIT_NONE } pl_wait_how;

/* Whether an attempt under `how` keeps what it opened for the next one (and may watch it). */
#define PL_WAIT_KEEPS(how) ((how) == PL_WAIT_WATCH || (how) == PL_WAIT_QUEUE)

/* ---------------------------------------------------------------- watcher.c */

/* A wait's watch: its inotify instance and what its wake-ups were. */
typedef struct pl_watcher {
  int fd;           /* the wait's inotify instance, or -1 */
  int unwatched;    /* making a watch failed: this wait does without (it polls or queues) */
  int woke;         /* the last sleep ended on an event */
  int attempt_woke; /* ... and the attempt since then followed it */
  int undrained;    /* that attempt ran with the instance's events still queued */
} pl_watcher;

#define PL_WATCHER_NONE                                                                            \
  { .fd = -1 }

/* Watches `path` for this wait, making the instance at the first call. A watch descriptor,
 * or -1 (counted as PL_UNWATCHED; w->unwatched is set). */
int pl_watcher_add(pl_watcher *w, const char *path);
/* Before an attempt: remembers whether a wake-up led to it, and drains the instance unless
 * one did. */
void pl_watcher_arm(pl_watcher *w);
/* After a contended attempt that pl_watcher_arm left undrained: drains the instance now and
 * returns 1, since a release between that attempt and the drain went unseen: the caller tries
 * again. 0 (nothing done) otherwise. */
int pl_watcher_drain_late(pl_watcher *w);
/* After a contended attempt: 1 (counted as PL_LOST_RACE) when a wake-up led to it. */
int pl_watcher_lost_race(pl_watcher *w);
/* What ended the sleep after a contended attempt. */
void pl_watcher_woke(pl_watcher *w, pl_counter woke);
/* Ends the wait's watch: closes the instance, letting a waiter that the caller's release woke
 * on this CPU run first. */
void pl_watcher_close(pl_watcher *w);

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

/* The Lock itself is private to lock.c; its kinds and the objects built on Locks use these. */
/* Its waits never watch the file (a bounded semaphore watches all its slots itself). */
void pl_lock_never_watch(portalock_lock_t *lock);
/* The file the lock was last taken on. */
void pl_lock_held_file(const portalock_lock_t *lock, dev_t *dev, ino_t *ino);

portalock_status pl_lock_create(portalock_lock_t **out, const pl_kind *kind, const char *filename,
                                const portalock_lock_options *opts, portalock_error *err);

/* The Lock's side of the wait engine (wait.c), shared with RLock: one attempt (`how`: see
 * pl_wait_how), what its sleep waits on, what ended that sleep, the subject of its AlreadyLocked
 * message, and who holds it when it is held within this process. */
portalock_status pl_lock_try(portalock_lock_t *lock, int target_fd, pl_wait_how how,
                             portalock_wait *wait, portalock_error *err);
void pl_lock_source(portalock_lock_t *lock, pl_wake_source *src);
void pl_lock_woke(portalock_lock_t *lock, pl_counter woke);
const char *pl_lock_describe(portalock_lock_t *lock, char *buf, size_t cap);
long pl_lock_held_by(portalock_lock_t *lock);

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

/* What the wait engine needs of a kind of object (Lock, RLock, the semaphores). */
typedef struct pl_waitable pl_waitable;
struct pl_waitable {
  /* One attempt for `acq` (its object_, owner_, check_interval), as the object's try: OK,
   * CONTENDED (`wait` filled; err->holder_pid when the holder is known) or a failure.
   * `how`: what the attempt may watch and keep (pl_wait_how). */
  portalock_status (*attempt)(const portalock_acquisition *acq, int target_fd, pl_wait_how how,
                              portalock_wait *wait, portalock_error *err);
  /* What a sleep after a contended attempt can wait on. */
  void (*source)(void *object, pl_wake_source *src);
  /* What ended that sleep (may be NULL). */
  void (*woke)(void *object, pl_counter woke);
  /* Gives the wait up: closes what it kept (a lock or count granted meanwhile goes with it). */
  void (*give_up)(void *object);
  /* The subject of the AlreadyLocked message ("'PATH' is locked") into `buf`; returns the
   * path the error names. */
  const char *(*describe)(void *object, char *buf, size_t cap);
  /* The process named as the holder when the object is held within this process (NULL: none). */
  long (*held_by)(void *object);
};

/* Starts an acquisition of `object` (timeout and check_interval checked here). */
portalock_status pl_begin(portalock_acquisition *acq, const struct pl_waitable *waitable,
                          void *object, uintptr_t owner, double timeout, double check_interval,
                          int fail_when_locked, portalock_error *err);
/* The convenience loop: steps and sleeps until the acquisition is no longer contended. */
portalock_status pl_acquire(portalock_acquisition *acq, portalock_error *err);
/* Fills `wait` (may be NULL) for a clock-only wait of `check_interval`. */
void pl_wait_clock(portalock_wait *wait, double check_interval);

#endif /* PORTALOCK_PRIVATE_H */
