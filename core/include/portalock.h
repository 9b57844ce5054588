/*
 * portalock — cross-process locks on kernel file locks.
 *
 * The C API of libportalock. No Lua in it; the Lua module is one of its users.
 *
 * Conventions
 *   - Fallible calls return a portalock_status and, when `err` is not NULL, fill the
 *     caller-owned portalock_error with the status, errno, path and a message.
 *   - A handle (portalock_lock, portalock_rlock) is used by one thread at a time; the
 *     library's internal global state (the table of held descriptors) is synchronised.
 *   - Every descriptor the library opens has O_CLOEXEC; lock files are opened with
 *     O_NOFOLLOW, so a symlink planted as the last path component fails with ELOOP.
 *   - Times are seconds on the monotonic clock (portalock_monotonic()).
 *   - No call installs a signal handler or leaves a thread running after it returns.
 *   - After fork() the child holds nothing its parent held: descriptors of held locks are
 *     detached in the child (re-pointed at /dev/null by a pthread_atfork handler), the
 *     child's handles report "not held", and releasing or freeing them never unlocks,
 *     unlinks or removes the parent's files.
 */
#ifndef PORTALOCK_H
#define PORTALOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PORTALOCK_API __attribute__((visibility("default")))
#else
#define PORTALOCK_API
#endif

#define PORTALOCK_VERSION_MAJOR 0
#define PORTALOCK_VERSION_MINOR 1
#define PORTALOCK_VERSION_PATCH 0
#define PORTALOCK_VERSION_STRING "0.1.0"

/** The version of the library actually loaded, e.g. "0.1.0". */
PORTALOCK_API const char *portalock_version(void);

/* ---------------------------------------------------------------- flags */

/* Values match flock(2) on Linux and Python's portalocker.LockFlags. */
#define PORTALOCK_LOCK_SH 1 /* shared lock */
#define PORTALOCK_LOCK_EX 2 /* exclusive lock */
#define PORTALOCK_LOCK_NB 4 /* do not block: report contention at once */
#define PORTALOCK_LOCK_UN 8 /* unlock (only portalock_unlock uses it) */

typedef enum portalock_backend {
  PORTALOCK_BACKEND_FLOCK = 0, /* flock(2): per open file description; interoperates
                                  with flock(1) and Python's portalocker */
  PORTALOCK_BACKEND_OFD = 1,   /* Linux open-file-description record locks */
  PORTALOCK_BACKEND_POSIX = 2  /* fcntl(2) record locks, owned by the process */
} portalock_backend;

/* The backend's name as front ends spell it ("flock", "ofd", "posix"), or NULL for a value
 * that is no backend. */
PORTALOCK_API const char *portalock_backend_name(portalock_backend backend);

/* ---------------------------------------------------------------- errors */

typedef enum portalock_status {
  PORTALOCK_OK = 0,
  PORTALOCK_CONTENDED = 1,      /* step API only: someone else holds it; wait, try again */
  PORTALOCK_ALREADY_LOCKED = 2, /* contention that outlasted the timeout (AlreadyLocked) */
  PORTALOCK_LOCK_EXCEPTION = 3, /* a system call failed; errnum says why (LockException) */
  PORTALOCK_INVALID = 4         /* misuse: a bad argument or call order; message names it */
} portalock_status;

#define PORTALOCK_PATH_MAX 4096
#define PORTALOCK_MESSAGE_MAX 512

typedef struct portalock_error {
  portalock_status status;
  int errnum;      /* errno of the failed system call, or 0 */
  int lost;        /* 1 when a failed shared<->exclusive conversion left the file unlocked */
  long holder_pid; /* PidFileLock contention: portalock_pid_file_holder, or 0 if unknown */
  char path[PORTALOCK_PATH_MAX];       /* the file concerned, or "" */
  char message[PORTALOCK_MESSAGE_MAX]; /* human-readable, complete sentence fragment */
} portalock_error;

/** "OK", "Contended", "AlreadyLocked", "LockException" or "Invalid". */
PORTALOCK_API const char *portalock_status_name(portalock_status status);

/* ---------------------------------------------------------------- clock and waiting */

/** Seconds on CLOCK_MONOTONIC. */
PORTALOCK_API double portalock_monotonic(void);

/*
 * What a contended attempt tells its caller: wait until `fd` becomes readable (poll(2)
 * POLLIN) or until `next_attempt` (monotonic seconds), whichever comes first, then try
 * again. `fd` is -1 when there is nothing to wait on but the clock. The descriptor
 * belongs to the handle that returned it and stays valid until the next call on that
 * handle; the caller never closes it.
 *
 * Which path runs (Linux; elsewhere there is no watch: the step API polls on the clock, and
 * the blocking waits of a Lock queue in the kernel as below, having no inotify instance):
 *   - Lock, RLock, TemporaryFileLock, PidFileLock and bounded-semaphore slots: `fd` is an
 *     inotify instance watching the lock file(s), readable when a holder closes the file
 *     (every release ends with that, and so does a holder's death). A contended attempt
 *     keeps the file open and unlocked for the next attempt (a failed attempt that closed
 *     it would wake every other waiter); portalock_*_wait_done or the next successful
 *     attempt closes it. At most one inotify instance per wait; without one (EMFILE,
 *     ENOSPC, no inotify) `fd` is -1 and the wait polls.
 *   - The blocking waits (portalock_sleep, the acquire loops) of a Lock whose wake-ups
 *     keep losing the race to other waiters ("crowded"), or that has no inotify instance,
 *     queue in the kernel instead: a helper thread blocks in flock(2)/F_OFD_SETLKW on the
 *     kept descriptor, so a release wakes one waiter, not all; the calling thread waits for
 *     it in poll(2), which a signal ends. The thread is cancelled at the wait's end and
 *     joined before the call returns; until then the calling thread is not cancellable. An
 *     acquisition with no timeout (INFINITY, not fail_when_locked, not polling) queues from its
 *     first contention, with no watch (on any system), until granted or a signal: in the
 *     caller's own thread, with no helper, where SIGINT interrupts a lock call (no handler,
 *     or one installed without SA_RESTART).
 *     None of this on a network file system (NFS, SMB, Ceph, AFS, 9P), whose client may
 *     answer a blocking lock call only when it next retries (NFS: backing off up to 30 s):
 *     there waits watch (which sees this machine's releases) and poll.
 *   - The counting Semaphore has no descriptor: `fd` is -1 with a back-off; its blocking
 *     wait (portalock_sleep) sleeps in sem_clockwait.
 *   - Polled: posix-backend locks (an attempt must close the file, see
 *     PORTALOCK_BACKEND_POSIX), bounded semaphores of more than 64 slots, a bounded-semaphore
 *     wait that runs out of descriptors for its slot files (EMFILE, ENFILE: it then keeps
 *     none open, so it needs one at a time), and holders that unlock without closing
 *     (flock -u, portalock_unlock): their release is seen at the next `next_attempt`
 *     (check_interval).
 *   - Nothing watched, queued or kept: an acquisition that gives up at its first contention
 *     (fail_when_locked, timeout 0) makes no inotify instance (it would only be closed at
 *     once, and that close waits for an RCU grace period: up to tens of milliseconds), and
 *     an acquisition declared with portalock_acquisition_polls (a caller sleeping in its own
 *     scheduler) opens no watch and closes its lock file or slot files before each contended
 *     step returns: `fd` is -1, and the release is seen at the next `next_attempt`. A try
 *     outside an acquisition (portalock_lock_try, ...) watches as above.
 */
typedef struct portalock_wait {
  int fd;
  double next_attempt;
} portalock_wait;

/*
 * Sleeps as `wait` says, but never past `deadline` (monotonic seconds). Returns 1 when the
 * descriptor became readable, 0 when the time ran out, -1 when a signal interrupted the
 * sleep early (errno EINTR; the caller simply tries again: a signal never ends a wait with
 * an error and never extends a timeout).
 */
PORTALOCK_API int portalock_wait_step(const portalock_wait *wait, double deadline);

/*
 * The step API: one acquisition of one object, waited out under one policy, so that a caller
 * with its own scheduler owns the sleeping. Begin it with the object's portalock_*_begin (which
 * checks timeout and check_interval and sets the deadline), then call portalock_step until it
 * is not PORTALOCK_CONTENDED:
 *   - PORTALOCK_OK: acquired.
 *   - PORTALOCK_CONTENDED: sleep as `*wait` says (a descriptor or -1, and next_attempt, never
 *     past the deadline nor later than check_interval from now), in your scheduler or with
 *     portalock_sleep, then step again.
 *   - PORTALOCK_ALREADY_LOCKED: given up (fail_when_locked, timeout 0, or the deadline has
 *     passed); the message, "<what> is locked[ by process N]: gave up <why>", is made here for
 *     every kind of object.
 *   - anything else: failed for good.
 * After any result but CONTENDED the wait is over (what it kept is closed, but for the watch of
 * a lock just taken, which stays until its release). A caller that abandons an acquisition
 * between steps calls portalock_give_up. `target_fd` is portalock_lock_try_onto's (-1: none;
 * only a Lock or RLock uses it). The struct's trailing fields belong to the engine.
 */
typedef struct portalock_acquisition {
  double timeout;
  double check_interval; /* in effect: at least PORTALOCK_CHECK_INTERVAL_MIN */
  int fail_when_locked;
  double deadline; /* monotonic seconds: the start plus timeout */
  const struct pl_waitable *waitable_;
  void *object_;
  uintptr_t owner_;
  int polls_; /* portalock_acquisition_polls was called */
} portalock_acquisition;

PORTALOCK_API portalock_status portalock_step(portalock_acquisition *acq, int target_fd,
                                              portalock_wait *wait, portalock_error *err);
/*
 * The step for a caller that knows the object is held by another of its own owners (another
 * coroutine of a Lua state): the policy of portalock_step without an attempt; a CONTENDED
 * result waits on the clock.
 */
PORTALOCK_API portalock_status portalock_step_held(portalock_acquisition *acq, portalock_wait *wait,
                                                   portalock_error *err);
/*
 * The one blocking sleep after a contended step, for every object: it picks the mechanism (see
 * portalock_wait). A wait queued in the kernel or in a semaphore lasts up to the deadline,
 * since these miss nothing, and a wait queued in the kernel returns by `return_by` at the
 * latest (INFINITY: the deadline); signals end it early (the next step queues again, so a
 * caller with hooks to run, Lua's Ctrl-C, needs no `return_by`). Returns 1: step again now
 * (the lock or count may already be taken: the next step completes it), 0: the time ran
 * out, -1: a signal.
 */
PORTALOCK_API int portalock_sleep(portalock_acquisition *acq, const portalock_wait *wait,
                                  double return_by);
/* Abandons the acquisition between steps: closes what its wait kept (a lock or semaphore count
 * granted at that moment goes with it). */
PORTALOCK_API void portalock_give_up(portalock_acquisition *acq);
/*
 * Declares that the caller sleeps between steps on the clock alone, in a scheduler of its own
 * (ngx.sleep, a coroutine scheduler), and never in portalock_sleep: call it after begin, before
 * the first step. From then on the acquisition's attempts make no watch and keep nothing open
 * between steps: a contended step has closed the lock file or slot files it opened, and its
 * `wait` has fd -1 and a next_attempt. A caller that abandons such a wait without
 * portalock_give_up (a killed coroutine, an aborted request) leaks nothing. Its price: a
 * release is seen at the next attempt, not when it happens. Lock, RLock, TemporaryFileLock,
 * PidFileLock and bounded semaphores; the counting Semaphore keeps no descriptor anyway; a
 * Redis acquisition keeps its place in the server's queue and its subscription until it is
 * granted, gives up or is given up (its wake-up descriptor belongs to the handle).
 */
PORTALOCK_API void portalock_acquisition_polls(portalock_acquisition *acq);

/* Whether `acq` may wait at all: 0 when it gives up at its first contention (fail_when_locked,
 * timeout 0), else 1. A caller that orders its waiters (portalock's queue of an nginx worker)
 * lets an acquisition that does not wait try at once, ahead of them. */
PORTALOCK_API int portalock_acquisition_waits(const portalock_acquisition *acq);

/*
 * What ended this process's waits so far (every blocking wait counts once: the acquire
 * loops, portalock_sleep and portalock_wait_step). A wait that the fallback
 * timer ends (`timer`) while its lock was released earlier is a missed wake-up.
 */
typedef struct portalock_wait_counters {
  unsigned long long event;     /* a watched lock file was closed, moved or removed */
  unsigned long long kernel;    /* the kernel granted the lock (or semaphore count) */
  unsigned long long timer;     /* next_attempt came first: nothing woke the wait */
  unsigned long long deadline;  /* the caller's deadline came first */
  unsigned long long signal;    /* a signal interrupted it */
  unsigned long long lost_race; /* an event woke it, then another waiter was faster */
  unsigned long long unwatched; /* waits that could not make a watch (EMFILE, ...) */
} portalock_wait_counters;

PORTALOCK_API void portalock_wait_counters_get(portalock_wait_counters *out);

/* ---------------------------------------------------------------- the low level */

/*
 * Locks an open descriptor. `flags` is exactly one of LOCK_SH/LOCK_EX, optionally with
 * LOCK_NB; anything else is PORTALOCK_INVALID. Without LOCK_NB it blocks in the kernel like
 * flock(2) (restarting after signals). Contention with LOCK_NB is ALREADY_LOCKED.
 * Converting a held lock between shared and exclusive is not atomic with the flock backend:
 * a failed conversion leaves the file unlocked and sets err->lost.
 * The ofd and posix backends need a readable descriptor for LOCK_SH and a writable one for
 * LOCK_EX (EBADF otherwise). A second posix lock through another descriptor on a file this
 * process already holds is refused (LOCK_EXCEPTION, EDEADLK): closing either descriptor
 * would silently drop both.
 */
PORTALOCK_API portalock_status portalock_lock(int fd, int flags, portalock_backend backend,
                                              portalock_error *err);

/** Unlocks a descriptor locked with portalock_lock (LOCK_UN). */
PORTALOCK_API portalock_status portalock_unlock(int fd, portalock_backend backend,
                                                portalock_error *err);

/* ---------------------------------------------------------------- Lock */

typedef struct portalock_lock portalock_lock_t;

/* The shortest time a wait goes between re-checks. Every `check_interval` is a finite number
 * >= 0; one below this (0 included) re-checks this often, without spinning, as Python's
 * portalocker sleeps at least 1 ms. */
#define PORTALOCK_CHECK_INTERVAL_MIN 0.001

/* The defaults of every object's options (the bindings export them; no layer re-types them):
 * a Lock or bounded semaphore waits PORTALOCK_DEFAULT_TIMEOUT seconds, every wait re-checks at
 * least every PORTALOCK_DEFAULT_CHECK_INTERVAL seconds. A counting semaphore waits forever. */
#define PORTALOCK_DEFAULT_TIMEOUT 5.0
#define PORTALOCK_DEFAULT_CHECK_INTERVAL 0.25

/* The largest `perm` of a Lock (and its kinds), a bounded semaphore's slot files and a counting
 * semaphore: permission bits only, no setuid, setgid or sticky bit (which is also what refuses
 * 666, the decimal number a Lua script gets when it writes 0666). */
#define PORTALOCK_PERM_MAX 0777
/* The default `perm` of a Lock (and its kinds) and of a bounded semaphore's slot files: a
 * file it creates gets 0666 less the umask (and a directory's default ACL), as from open(2). */
#define PORTALOCK_PERM_UMASK (-1)

/*
 * `perm`, given (0..PORTALOCK_PERM_MAX), is the exact mode of a file the call creates: open(2)
 * masks its mode with the umask (so 0666 became 0644 under umask 022, and another user's
 * process, say an nginx worker, could not open a file its root master created), so the
 * descriptor of a file just created with O_CREAT|O_EXCL is given `perm` with fchmod(2), as
 * py-filelock does with an explicit `mode`. Only a file this call created is changed, never
 * an existing one (someone else's), and through its descriptor (no name, no symlink to
 * follow). Until the fchmod, a few instructions later, the file has `perm` less the umask,
 * never more. Where the file system keeps no modes (fchmod fails with EPERM) the file keeps
 * what open(2) gave it. Not given (PORTALOCK_PERM_UMASK), the umask and a default ACL decide,
 * as they do for any file (py-filelock does the same since it honours default ACLs).
 *
 * A file this process may not open (EACCES) fails with a message naming its path, its owner
 * and mode, the user this process runs as, and what to change: "open '/tmp/x.lock':
 * Permission denied: owned by root (uid 0), mode 0644, and this process runs as www-data
 * (uid 33); create it with option perm 0666 (438 in decimal), or as www-data, or chown it to
 * www-data".
 */

typedef struct portalock_lock_options {
  const char *mode;          /* "a" (see below) */
  double timeout;            /* 5 seconds; 0 = one attempt; INFINITY = forever */
  double check_interval;     /* 0.25 seconds; the longest a wait goes without re-checking,
                                except one queued in the kernel by an acquire loop (there
                                the kernel's grant ends it, see portalock_wait); >= 0, and
                                at least PORTALOCK_CHECK_INTERVAL_MIN in effect */
  int fail_when_locked;      /* 0 (1 for TemporaryFileLock and PidFileLock) */
  int flags;                 /* LOCK_EX | LOCK_NB; LOCK_SH for a shared lock. An attempt never
                                blocks in the kernel, with or without LOCK_NB: the wait
                                belongs to the loop (timeout, check_interval) */
  portalock_backend backend; /* PORTALOCK_BACKEND_FLOCK */
  int perm;                  /* PORTALOCK_PERM_UMASK: 0666 less the umask for a created
                                file; or 0..PORTALOCK_PERM_MAX: exactly that (see above) */
} portalock_lock_options;

/** Fills `opts` with the defaults above (fail_when_locked = 0). */
PORTALOCK_API void portalock_lock_options_init(portalock_lock_options *opts);

/*
 * The rules of numeric options and arguments, each stated once. The constructors and calls
 * below apply them; a front end asks them about a value it checks before any object exists
 * (a per-call option, a config file, a command line), so that every layer refuses the same
 * values in the same words. A rule takes the value as a double, so a front end whose numbers
 * are doubles asks before converting; a fraction breaks an integer rule.
 */
typedef enum portalock_rule {
  PORTALOCK_RULE_TIMEOUT,           /* >= 0 (INFINITY waits forever), not NaN */
  PORTALOCK_RULE_CHECK_INTERVAL,    /* a finite number >= 0 */
  PORTALOCK_RULE_FLAGS,             /* LOCK_SH or LOCK_EX, optionally with LOCK_NB */
  PORTALOCK_RULE_EXCLUSIVE_FLAGS,   /* LOCK_EX, optionally with LOCK_NB (TemporaryFileLock,
                                       PidFileLock) */
  PORTALOCK_RULE_PERM,              /* an integer within 0..PORTALOCK_PERM_MAX */
  PORTALOCK_RULE_SEMAPHORE_PERM,    /* the same as PORTALOCK_RULE_PERM */
  PORTALOCK_RULE_SEMAPHORE_VALUE,   /* an integer within 0..SEM_VALUE_MAX */
  PORTALOCK_RULE_SEMAPHORE_RELEASE, /* an integer within 1..SEM_VALUE_MAX */
  PORTALOCK_RULE_BOUNDED_MAXIMUM    /* an integer within 1..PORTALOCK_BOUNDED_MAXIMUM */
} portalock_rule;

/*
 * NULL when `value` obeys `rule`; else what is wrong with it as a phrase ("must be >= 0
 * (infinity waits forever)"), written into `buf` (`size` bytes; PORTALOCK_MESSAGE_MAX is
 * always enough). A PORTALOCK_INVALID message for the same value ends with this phrase.
 */
PORTALOCK_API const char *portalock_rule_problem(portalock_rule rule, double value, char *buf,
                                                 size_t size);

/*
 * NULL when a Lock may open `mode` for a lock of `flags` on `backend` (both valid); else what
 * is wrong with the mode, as a phrase in `buf`: not one of the modes below, or one the lock
 * cannot use ("w" truncates, which needs LOCK_EX; the fcntl backends need a readable mode for
 * LOCK_SH and a writable one for LOCK_EX). LOCK_EX on flock asks about the letters alone.
 */
PORTALOCK_API const char *portalock_lock_mode_problem(const char *mode, int flags,
                                                      portalock_backend backend, char *buf,
                                                      size_t size);

/*
 * A lock on `filename`. The path is joined to the working directory now (not normalised,
 * not resolved). Nothing touches the file system until an attempt.
 *
 * mode: "r", "r+", "a", "a+", "w", "w+", each optionally with "b". A missing file is
 * created (an existing one is opened without O_CREAT). "w" means "a" plus a truncate once
 * the lock is held (which needs LOCK_EX); after it the descriptor is no longer in append
 * mode. With the ofd/posix backends the mode must allow reading for LOCK_SH and writing for
 * LOCK_EX. Invalid options are PORTALOCK_INVALID with a message naming the option.
 * The lock file must be a regular file: a symlink at the path is ELOOP, a directory EISDIR,
 * a FIFO, socket or device EINVAL or ENXIO (LOCK_EXCEPTION at the attempt).
 */
PORTALOCK_API portalock_status portalock_lock_new(portalock_lock_t **out, const char *filename,
                                                  const portalock_lock_options *opts,
                                                  portalock_error *err);

/*
 * A lock whose file is removed on release: exclusive only, mode "w"; the file is unlinked
 * before it is unlocked, and after locking the descriptor is checked against the path
 * (device and inode), so two holders never end up on two different files.
 * `filename` NULL means ".lock"; `opts` NULL means the defaults with fail_when_locked = 1.
 */
PORTALOCK_API portalock_status portalock_temporary_file_lock_new(portalock_lock_t **out,
                                                                 const char *filename,
                                                                 const portalock_lock_options *opts,
                                                                 portalock_error *err);

/*
 * A PID-file lock: the lock is on the sidecar `filename` + ".lock"; once held, the
 * process's PID is written atomically (temporary file + rename) into `filename`. On release
 * both files are removed before the sidecar is unlocked (the PID file only if it still holds
 * this process's PID, the sidecar only if the path still names the locked file), as
 * portalocker 4.x does. The sidecar is handled as a TemporaryFileLock's file: after locking
 * it is checked against its path (device and inode), so a waiter that was queued on a
 * removed sidecar starts over on the current one and two holders never lock two different
 * files. Contention fills err->holder_pid (see portalock_pid_file_holder).
 * `filename` NULL means ".pid"; `opts` NULL means the defaults with fail_when_locked = 1.
 */
PORTALOCK_API portalock_status portalock_pid_file_lock_new(portalock_lock_t **out,
                                                           const char *filename,
                                                           const portalock_lock_options *opts,
                                                           portalock_error *err);

/*
 * Frees the handle. A held lock whose descriptor the handle still owns is released first
 * (as portalock_lock_release); a descriptor handed over to a stream is left alone.
 */
PORTALOCK_API void portalock_lock_free(portalock_lock_t *lock);

/** The absolute path given at construction. */
PORTALOCK_API const char *portalock_lock_filename(const portalock_lock_t *lock);
/** The file that carries the kernel lock: the sidecar for PidFileLock, else the filename. */
PORTALOCK_API const char *portalock_lock_lock_filename(const portalock_lock_t *lock);
/** The options the handle was made with (after defaults). */
PORTALOCK_API const portalock_lock_options *portalock_lock_options_of(const portalock_lock_t *lock);

/*
 * One attempt, without waiting (portalock_step runs it). PORTALOCK_OK: the lock is held (or
 * already was: a no-op). PORTALOCK_CONTENDED: another holder has it; `*wait` says what to wait
 * for before the next attempt. Anything else is a permanent failure (ENOLCK, EISDIR, EACCES,
 * ENOENT, ELOOP, ...), reported at once. The handle's timeout and fail_when_locked are not
 * used here: they belong to the acquisition.
 */
PORTALOCK_API portalock_status portalock_lock_try(portalock_lock_t *lock, portalock_wait *wait,
                                                  portalock_error *err);

/*
 * Closes what a contended attempt kept for the next one (the lock file, the watch). After an
 * acquisition the watch stays open until the release (closing an inotify instance takes an
 * RCU grace period, which would delay the handoff); the owner of a handed-over descriptor
 * calls this after closing it.
 */
PORTALOCK_API void portalock_lock_wait_done(portalock_lock_t *lock);
/* Begins an acquisition of `lock` (see portalock_step). */
PORTALOCK_API portalock_status portalock_lock_begin(portalock_acquisition *acq,
                                                    portalock_lock_t *lock, double timeout,
                                                    double check_interval, int fail_when_locked,
                                                    portalock_error *err);

/*
 * The convenience loop (portalock_step and portalock_sleep): waits at most `timeout` seconds,
 * re-checking at least every `check_interval` while it polls or watches; with
 * `fail_when_locked` the first contention ends it. Contention that outlasts the timeout is
 * ALREADY_LOCKED. portalock_lock_acquire uses the handle's own options.
 * With no timeout (INFINITY) on a local file system it blocks in flock(2)/F_OFD_SETLKW on
 * the file it opened, as flock(1) does: it waits for that file even if the path is replaced
 * meanwhile (the attempt after the grant sees the replacement and starts over); a
 * pthread_cancel ends it only with the ofd backend (F_OFD_SETLKW is a cancellation point,
 * flock(2) is not).
 */
PORTALOCK_API portalock_status portalock_lock_acquire_with(portalock_lock_t *lock, double timeout,
                                                           double check_interval,
                                                           int fail_when_locked,
                                                           portalock_error *err);
PORTALOCK_API portalock_status portalock_lock_acquire(portalock_lock_t *lock, portalock_error *err);

/*
 * Releases: (PidFileLock: removes the PID file and the sidecar; TemporaryFileLock: unlinks
 * the file,) then unlocks and closes the descriptor, or, if it was handed over, leaves
 * closing it to its new owner. Releasing a lock that is not held, or in a forked child, is
 * a no-op.
 */
PORTALOCK_API portalock_status portalock_lock_release(portalock_lock_t *lock, portalock_error *err);

/** 1 while this process holds the lock through this handle. */
PORTALOCK_API int portalock_lock_locked(const portalock_lock_t *lock);

/** The descriptor that holds the lock, or -1 when not held. Owned by the handle. */
PORTALOCK_API int portalock_lock_fd(const portalock_lock_t *lock);

/*
 * portalock_lock_try for runtimes whose file handles only their own io library can make
 * (Lua 5.1, LuaJIT): the lock file's descriptor is moved onto `target_fd` (dup3 with
 * O_CLOEXEC) after opening and before locking, so the lock is taken on the stream's own
 * descriptor (moving it after locking would drop a posix lock). On PORTALOCK_OK the lock
 * is handed over (see portalock_lock_hand_over) unless it was already held; on any other
 * status `target_fd` may refer to the lock file, unlocked, and its owner closes it.
 */
PORTALOCK_API portalock_status portalock_lock_try_onto(portalock_lock_t *lock, int target_fd,
                                                       portalock_wait *wait, portalock_error *err);

/*
 * Hands the held descriptor (portalock_lock_fd) over to a stream (a FILE* that now owns
 * it). From now on release unlocks without closing, and whoever owns the stream closes it.
 */
PORTALOCK_API portalock_status portalock_lock_hand_over(portalock_lock_t *lock,
                                                        portalock_error *err);

/*
 * The handed-over descriptor was closed by its owner (which released the kernel lock):
 * drop the handle's state without touching the descriptor or any file.
 */
PORTALOCK_API void portalock_lock_forget(portalock_lock_t *lock);

/*
 * Reads a PID file strictly: ASCII digits only (surrounding whitespace allowed), a positive
 * value. Returns the PID, or 0 when the file is missing, unreadable, malformed or a symlink
 * (it is opened with O_NOFOLLOW).
 */
PORTALOCK_API long portalock_read_pid(const char *filename);

/*
 * The holder a PidFileLock reports: the PID in `filename` (read as portalock_read_pid) when
 * that process exists (kill(pid, 0) succeeds or says EPERM), else 0: a PID file left by a
 * dead process names nobody. The one rule for err->holder_pid, in every layer.
 */
PORTALOCK_API long portalock_pid_file_holder(const char *filename);

/* ---------------------------------------------------------------- lock holders */

/* One lock on a file, or one process waiting for it, as the kernel lists it (/proc/locks). */
typedef struct portalock_holder {
  long pid;      /* the process that took the lock (flock: the one that called flock(2), also
                    for a descriptor shared since), -1 for an OFD lock (no owning process), 0
                    when the owner is not visible in this PID namespace */
  int exclusive; /* 1 WRITE, 0 READ */
  int waiting;   /* 1 for a blocked waiter ("->" in /proc/locks), 0 for a holder */
  char type[8];  /* "FLOCK", "POSIX", "OFDLCK", "LEASE", "DELEG", ... as /proc/locks says */
} portalock_holder;

/*
 * Who holds (and who waits for) the locks on the file `path`: stat(2)s it (following
 * symlinks, as opening it would) and collects the lines of /proc/locks with its device
 * (major:minor) and inode, in the kernel's order. Fills up to `cap` entries of `out` and sets
 * *count to the number found, which may exceed `cap` (call again with more room; locks come
 * and go between calls). `out` may be NULL when `cap` is 0.
 *   - PORTALOCK_OK: *count entries (0: nobody holds or waits for a lock on the file).
 *   - PORTALOCK_LOCK_EXCEPTION: `path` cannot be stat'ed (errnum ENOENT, EACCES, ...), or
 *     /proc/locks cannot be read: errnum ENOSYS where it does not exist (not Linux, no
 *     procfs), else the errno of the failed read; the message says that lock holders are
 *     only known on Linux.
 *   - PORTALOCK_INVALID: `path` or `count` is NULL, or `out` is NULL with `cap` > 0.
 * A file system whose stat(2) device differs from the superblock's (btrfs subvolumes) shows
 * no holders.
 */
PORTALOCK_API portalock_status portalock_lock_holders(const char *path, portalock_holder *out,
                                                      size_t cap, size_t *count,
                                                      portalock_error *err);

/* ---------------------------------------------------------------- RLock */

/*
 * A reentrant lock: acquires are counted per owner token (any non-zero value that
 * identifies a thread, a coroutine or a request). The owner that holds it re-acquires at
 * once; any other owner is contended, in this process as in any other.
 */
typedef struct portalock_rlock portalock_rlock_t;

PORTALOCK_API portalock_status portalock_rlock_new(portalock_rlock_t **out, const char *filename,
                                                   const portalock_lock_options *opts,
                                                   portalock_error *err);
/** Frees the handle, releasing every hold whose descriptor it still owns. */
PORTALOCK_API void portalock_rlock_free(portalock_rlock_t *rlock);

/** The underlying Lock (its filename, descriptor, hand-over and forget). */
PORTALOCK_API portalock_lock_t *portalock_rlock_lock(portalock_rlock_t *rlock);

PORTALOCK_API portalock_status portalock_rlock_try(portalock_rlock_t *rlock, uintptr_t owner,
                                                   portalock_wait *wait, portalock_error *err);
/** portalock_lock_wait_done and portalock_lock_begin for an RLock and `owner`. */
PORTALOCK_API void portalock_rlock_wait_done(portalock_rlock_t *rlock);
PORTALOCK_API portalock_status portalock_rlock_begin(portalock_acquisition *acq,
                                                     portalock_rlock_t *rlock, uintptr_t owner,
                                                     double timeout, double check_interval,
                                                     int fail_when_locked, portalock_error *err);
/** portalock_rlock_try with portalock_lock_try_onto's `target_fd` for a fresh hold. */
PORTALOCK_API portalock_status portalock_rlock_try_onto(portalock_rlock_t *rlock, uintptr_t owner,
                                                        int target_fd, portalock_wait *wait,
                                                        portalock_error *err);
PORTALOCK_API portalock_status portalock_rlock_acquire_with(portalock_rlock_t *rlock,
                                                            uintptr_t owner, double timeout,
                                                            double check_interval,
                                                            int fail_when_locked,
                                                            portalock_error *err);
PORTALOCK_API portalock_status portalock_rlock_acquire(portalock_rlock_t *rlock, uintptr_t owner,
                                                       portalock_error *err);

/*
 * Drops one hold of `owner`; the last one releases the lock. Releasing more often than
 * acquired, or by an owner that does not hold it, is PORTALOCK_INVALID.
 */
PORTALOCK_API portalock_status portalock_rlock_release(portalock_rlock_t *rlock, uintptr_t owner,
                                                       portalock_error *err);
/** Drops every hold of `owner` (no-op if it holds none). */
PORTALOCK_API portalock_status portalock_rlock_release_all(portalock_rlock_t *rlock,
                                                           uintptr_t owner, portalock_error *err);

/** The holding owner (0 when not held) and its number of holds. */
PORTALOCK_API uintptr_t portalock_rlock_owner(const portalock_rlock_t *rlock);
PORTALOCK_API unsigned long portalock_rlock_count(const portalock_rlock_t *rlock);

/* ---------------------------------------------------------------- bounded semaphores */

/*
 * A bounded semaphore: at most `maximum` holders at once across every process that uses the
 * same name, filename pattern and directory. Slot `i` (0-based) is the file
 * `directory/pattern(name, i)`, named byte-for-byte as Python's portalocker names it, so
 * Python and C/Lua programs share one semaphore. A slot is held with an exclusive flock(2)
 * lock on the slot file, opened read-only (created when missing, never removed). A holder
 * that dies frees its slot. Slots are tried in a random order drawn from the OS random
 * source (getrandom(2) or /dev/urandom), never rand().
 */
typedef struct portalock_bounded_semaphore portalock_bounded_semaphore_t;

#define PORTALOCK_BOUNDED_MAXIMUM 10000 /* the largest `maximum` */

typedef struct portalock_bounded_semaphore_options {
  const char *name;             /* NULL: "bounded_semaphore.<16 hex digits>" from the OS
                                   random source (NamedBoundedSemaphore); Python's
                                   BoundedSemaphore default is "bounded_semaphore" */
  const char *filename_pattern; /* NULL: "{name}.{number:02d}.lock". Supports {name},
                                   {number}, {number:0Nd}, {{ and }} (str.format) */
  const char *directory;        /* NULL: the first usable of $TMPDIR, $TEMP, $TMP, /tmp,
                                   /var/tmp, /usr/tmp, then the working directory (as
                                   Python's tempfile.gettempdir()), decided at first use */
  double timeout;               /* 5 seconds; 0 = one sweep; INFINITY = forever */
  double check_interval;        /* 0.25 seconds (>= 0; at least PORTALOCK_CHECK_INTERVAL_MIN
                                   in effect) */
  int perm;                     /* PORTALOCK_PERM_UMASK: a slot file it creates gets 0666
                                   less the umask; or 0..PORTALOCK_PERM_MAX: exactly that, as
                                   a Lock's `perm` (the directory is never created) */
} portalock_bounded_semaphore_options;

/** Fills `opts` with the defaults above. */
PORTALOCK_API void
portalock_bounded_semaphore_options_init(portalock_bounded_semaphore_options *opts);

/*
 * A bounded semaphore of `maximum` (1..10000) slots. Nothing touches the file system here.
 * A given directory is joined to the working directory now and tidied as Python's pathlib
 * does (repeated and trailing "/" and "." components dropped; ".." kept). PORTALOCK_INVALID,
 * with a message naming the option and the value, for: `maximum` out of range; a name with
 * "/" or equal to "." or ".."; a pattern with an unsupported or unbalanced field, or without
 * {number} when maximum > 1 (all slots would be one file); any slot name that is not one
 * path component (contains "/", is "." or "..", is empty or longer than 255 bytes); a
 * negative or NaN timeout; a check_interval that is not a finite number >= 0; a perm that is
 * neither PORTALOCK_PERM_UMASK nor within 0..PORTALOCK_PERM_MAX.
 */
PORTALOCK_API portalock_status portalock_bounded_semaphore_new(
    portalock_bounded_semaphore_t **out, long maximum,
    const portalock_bounded_semaphore_options *opts, portalock_error *err);

/** Frees the handle, releasing the slot it holds (never a forked parent's slot). */
PORTALOCK_API void portalock_bounded_semaphore_free(portalock_bounded_semaphore_t *sem);

/*
 * One sweep (portalock_step runs it): tries every slot once, in a fresh random order, without
 * blocking. PORTALOCK_OK: a slot is held (see portalock_bounded_semaphore_slot).
 * PORTALOCK_CONTENDED: every usable slot is held by someone else; `*wait` says when to sweep
 * again (fd: one inotify instance watching every slot file, or -1; next_attempt = now +
 * check_interval). A slot file that cannot be used for a reason waiting won't cure (ELOOP:
 * a symlink; not a regular file; EISDIR, EACCES, EPERM, ENXIO, ...) is skipped by this
 * sweep, which goes on with the other slots (a wait waits for those); when every slot file
 * is unusable the sweep is LOCK_EXCEPTION, naming the first. Any other failure (a missing
 * directory: ENOENT, ENOTDIR; ENOMEM, EIO, ...) is LOCK_EXCEPTION at once, naming the slot
 * file. Calling it while the handle already holds a slot is PORTALOCK_INVALID.
 */
PORTALOCK_API portalock_status portalock_bounded_semaphore_try(portalock_bounded_semaphore_t *sem,
                                                               portalock_wait *wait,
                                                               portalock_error *err);
/** As portalock_lock_wait_done, for a sweep that found no slot. */
PORTALOCK_API void portalock_bounded_semaphore_wait_done(portalock_bounded_semaphore_t *sem);
/** Begins an acquisition (see portalock_step); fail_when_locked is always 0. */
PORTALOCK_API portalock_status portalock_bounded_semaphore_begin(portalock_acquisition *acq,
                                                                 portalock_bounded_semaphore_t *sem,
                                                                 double timeout,
                                                                 double check_interval,
                                                                 portalock_error *err);

/*
 * The convenience loop (portalock_step and portalock_sleep): sweeps until a slot is free
 * or `timeout` seconds have passed, re-checking at least every `check_interval`; every
 * slot held until then is ALREADY_LOCKED; unusable slot files are skipped, and only when
 * no slot file is usable does it end at once with LOCK_EXCEPTION (see
 * portalock_bounded_semaphore_try). timeout 0 is exactly one sweep. There is no
 * fail_when_locked: a semaphore always waits up to its timeout (as Python's does).
 * portalock_bounded_semaphore_acquire uses the handle's own timeout and check_interval.
 */
PORTALOCK_API portalock_status
portalock_bounded_semaphore_acquire_with(portalock_bounded_semaphore_t *sem, double timeout,
                                         double check_interval, portalock_error *err);
PORTALOCK_API portalock_status
portalock_bounded_semaphore_acquire(portalock_bounded_semaphore_t *sem, portalock_error *err);

/* Releases the held slot (unlock and close); a no-op when none is held or in a forked child. */
PORTALOCK_API portalock_status
portalock_bounded_semaphore_release(portalock_bounded_semaphore_t *sem, portalock_error *err);

/** 1 while this process holds a slot through this handle. */
PORTALOCK_API int portalock_bounded_semaphore_locked(const portalock_bounded_semaphore_t *sem);
/** The held slot's number (0-based), or -1. */
PORTALOCK_API long portalock_bounded_semaphore_slot(const portalock_bounded_semaphore_t *sem);
/** The held slot's Lock (owned by the semaphore: do not release or free it), or NULL. */
PORTALOCK_API portalock_lock_t *
portalock_bounded_semaphore_lock(const portalock_bounded_semaphore_t *sem);
/** The descriptor holding the slot (owned by the semaphore), or -1. */
PORTALOCK_API int portalock_bounded_semaphore_fd(const portalock_bounded_semaphore_t *sem);

PORTALOCK_API long portalock_bounded_semaphore_maximum(const portalock_bounded_semaphore_t *sem);
/** The name: the given one, or the generated one. */
PORTALOCK_API const char *
portalock_bounded_semaphore_name(const portalock_bounded_semaphore_t *sem);
PORTALOCK_API const char *
portalock_bounded_semaphore_filename_pattern(const portalock_bounded_semaphore_t *sem);
/*
 * The absolute directory of the slot files. The default is decided at the first call that
 * needs it (this one, _filename or a sweep: a stat(2) and access(2) per candidate, nothing
 * is created) and kept. NULL only when no candidate, not even the working directory, is
 * usable.
 */
PORTALOCK_API const char *portalock_bounded_semaphore_directory(portalock_bounded_semaphore_t *sem);
/*
 * The default directory of every object that names its file after a name (bounded
 * semaphores, Lockable): the first usable of $TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, /usr/tmp,
 * then the working directory, made absolute, as Python's tempfile.gettempdir() chooses.
 * Usable: an existing directory this process may write into and search (nothing is
 * created). Decided anew at every call, into `buf` (PORTALOCK_PATH_MAX bytes always
 * suffice). PORTALOCK_LOCK_EXCEPTION (ENOENT) when no candidate is usable.
 */
PORTALOCK_API portalock_status portalock_default_temp_directory(char *buf, size_t cap,
                                                                portalock_error *err);
/*
 * The path of slot `number` (0..maximum-1), in a buffer of the handle that stays valid
 * until the next call of this function on it; NULL for a number out of range, when the
 * directory cannot be decided, or when that buffer cannot be allocated.
 */
PORTALOCK_API const char *portalock_bounded_semaphore_filename(portalock_bounded_semaphore_t *sem,
                                                               long number);
/*
 * Fills `order` (maximum entries) with a random permutation of 0..maximum-1 from the OS
 * random source: the order a sweep tries the slots in. LOCK_EXCEPTION if that source fails.
 */
PORTALOCK_API portalock_status portalock_bounded_semaphore_random_order(
    const portalock_bounded_semaphore_t *sem, long *order, portalock_error *err);
/* ---------------------------------------------------------------- counting semaphore */

/*
 * A counting semaphore with multiprocessing.Semaphore semantics, shared by name between
 * unrelated processes. It is a POSIX named semaphore (sem_open(3)) called
 * "/portalock.<name>" (on Linux the file /dev/shm/sem.portalock.<name>), created with the
 * initial value and exactly `perm` by whichever process opens it first. It persists until
 * portalock_semaphore_unlink or reboot.
 *
 * `perm` is applied exactly, not masked by the umask (sem_open's mode is): a root process
 * (an nginx master) that creates a semaphore with perm 0666 under umask 022 makes it 0666, not
 * 0644, so processes of other users (its workers) can open it. Race-free: sem_open makes the
 * semaphore under a temporary name ("/portalock-new.<16 hex digits>", mode 0600), its file is
 * given `perm` with fchmod(2) through a descriptor, and only then linked to its own name, so no
 * process meets it at its name incomplete or with another mode (a process killed in between
 * leaves a /dev/shm/sem.portalock-new.* file behind). The default stays 0600: a semaphore's
 * counts are shared with other users only on purpose (see below), and with a usual umask the
 * exact 0600 is what "0600 less the umask" gave. Where named semaphores are no files (macOS,
 * the BSDs) there is no descriptor to fchmod: the umask still applies there.
 *
 * A holder that dies does NOT give its count back: nothing in the kernel undoes a
 * semaphore's decrements, so a count taken by a process that is killed is lost until someone
 * releases one or the semaphore is unlinked and re-created. (The bounded semaphores, built on
 * file locks, do not have this problem.)
 *
 * Each handle counts the acquires it made and has not released (portalock_semaphore_held),
 * so a scope can give back exactly what it took (portalock_semaphore_release_held). A forked
 * child's handle counts none of its parent's acquires.
 *
 * Names: non-empty, no '/', no NUL, not "." or "..", at most PORTALOCK_SEMAPHORE_NAME_MAX
 * bytes (the "portalock." prefix and glibc's "sem." must fit one 255-byte file name).
 * The semaphore is opened (created if missing) at the first try, release or value, never by
 * portalock_semaphore_new; no descriptor stays open.
 *
 * Anyone can create a file in /dev/shm first, so on Linux the file is opened without
 * following a symlink (O_NOFOLLOW) and checked through that descriptor before it is mapped
 * (the library maps the checked descriptor itself; a missing semaphore's file appears whole
 * or not at all, as above). Refused with
 * PORTALOCK_LOCK_EXCEPTION, whose message names the path, the owner and the mode: a file
 * another user owns, unless this handle's opts.perm opts into sharing (grants group or
 * others write) and the file's mode grants nothing beyond opts.perm; a file that group or
 * others may write beyond what opts.perm grants (errnum EACCES: its counts are not this
 * user's to trust); then a file that is not a regular file of sizeof(sem_t) bytes (EINVAL;
 * an empty file would fault with SIGBUS); a file that cannot be opened read-write (a symlink
 * ELOOP, another user's 0600 semaphore EACCES, whose message also names the user this process
 * runs as and says what to change, as for a Lock's file). So a semaphore is shared between
 * users only when each of them passes a perm that shares it (0666, or 0660 within a group):
 * an nginx master and its workers all give the same `perm`. Where named semaphores are no files
 * (macOS, the BSDs) sem_open opens it, with the system's own checks. Where sem_open keeps
 * them in files elsewhere than /dev/shm (glibc before 2.34 without a tmpfs there), every use
 * fails with PORTALOCK_LOCK_EXCEPTION, errnum ENOTSUP, saying so.
 */
typedef struct portalock_semaphore portalock_semaphore_t;

#define PORTALOCK_SEMAPHORE_NAME_MAX 241
#define PORTALOCK_SEMAPHORE_PERM_MAX PORTALOCK_PERM_MAX /* the same rule as a Lock's */

typedef struct portalock_semaphore_options {
  double timeout;        /* INFINITY: portalock_semaphore_acquire waits forever; 0 = one try */
  double check_interval; /* 0.25 seconds: the longest clock-only wait a contended step asks for
                            (>= 0; at least PORTALOCK_CHECK_INTERVAL_MIN in effect) */
  int perm;              /* 0600: the exact mode of a newly created semaphore (not masked by
                            the umask, see above); group/other write bits also let an
                            existing one that grants no more be opened, another user's
                            included */
} portalock_semaphore_options;

/** Fills `opts` with the defaults above. */
PORTALOCK_API void portalock_semaphore_options_init(portalock_semaphore_options *opts);

/* NULL when `name` is a valid semaphore name (see above: the rule NUL aside, which a C string
 * cannot break), else what is wrong with it as a phrase ("must not contain '/'"). */
PORTALOCK_API const char *portalock_semaphore_name_problem(const char *name);

/*
 * A handle on the semaphore `name` (NULL: a generated "semaphore.<16 hex digits>" from the OS
 * random source). `value` (0..SEM_VALUE_MAX) initialises only a semaphore that does not exist
 * yet. `opts` NULL means the defaults. A bad name, value or option is PORTALOCK_INVALID with
 * a message naming it. Touches nothing in the file system.
 */
PORTALOCK_API portalock_status portalock_semaphore_new(portalock_semaphore_t **out,
                                                       const char *name, unsigned long value,
                                                       const portalock_semaphore_options *opts,
                                                       portalock_error *err);

/* Frees the handle (unmaps the semaphore). Outstanding acquires are NOT released: call
 * portalock_semaphore_release_held first to give them back. */
PORTALOCK_API void portalock_semaphore_free(portalock_semaphore_t *sem);

/** The semaphore's name as given (or generated), without the "/portalock." prefix. */
PORTALOCK_API const char *portalock_semaphore_name(const portalock_semaphore_t *sem);

/*
 * One attempt (sem_trywait; portalock_step runs it): PORTALOCK_OK takes one count (the handle's
 * held count grows by one). PORTALOCK_CONTENDED: the value is 0; there is no descriptor to wait on,
 * so `wait->fd` is -1 and `wait->next_attempt` is a short back-off (1 ms, doubling up to
 * check_interval, reset by a success). Anything else is a permanent failure (a file refused
 * as above, ENOSYS or ENOENT without /dev/shm, ...).
 */
PORTALOCK_API portalock_status portalock_semaphore_try(portalock_semaphore_t *sem,
                                                       portalock_wait *wait, portalock_error *err);
/* Gives back a count that portalock_sleep took (sem_clockwait) for a try that will not come. */
PORTALOCK_API void portalock_semaphore_wait_done(portalock_semaphore_t *sem);
/* Begins an acquisition (see portalock_step); it never fails when locked. portalock_sleep waits
 * in sem_clockwait, which takes the posted count for the next step; check_interval bounds the
 * back-off a caller that polls is given. */
PORTALOCK_API portalock_status portalock_semaphore_begin(portalock_acquisition *acq,
                                                         portalock_semaphore_t *sem, double timeout,
                                                         double check_interval,
                                                         portalock_error *err);

/*
 * The convenience loop (portalock_step and portalock_sleep): waits at most `timeout` seconds
 * (INFINITY: forever; 0: one try) on the monotonic clock, in sem_clockwait(CLOCK_MONOTONIC)
 * where the C library has it, polling elsewhere. Signals neither end nor extend the wait. A count
 * that does not come in time is PORTALOCK_ALREADY_LOCKED. portalock_semaphore_acquire uses
 * opts.timeout.
 */
PORTALOCK_API portalock_status portalock_semaphore_acquire_with(portalock_semaphore_t *sem,
                                                                double timeout,
                                                                portalock_error *err);
PORTALOCK_API portalock_status portalock_semaphore_acquire(portalock_semaphore_t *sem,
                                                           portalock_error *err);

/*
 * Posts `n` counts (1..SEM_VALUE_MAX; else PORTALOCK_INVALID). Like multiprocessing, anyone
 * may release, with or without acquiring; the handle's held count drops by up to `n`. A
 * release that would lift the value beyond SEM_VALUE_MAX is PORTALOCK_LOCK_EXCEPTION
 * (EOVERFLOW), normally before posting anything; if another process raced it there, the
 * message says how many were posted.
 */
PORTALOCK_API portalock_status portalock_semaphore_release(portalock_semaphore_t *sem,
                                                           unsigned long n, portalock_error *err);

/* Posts exactly the handle's outstanding acquires (none: a no-op) and zeroes its count. */
PORTALOCK_API portalock_status portalock_semaphore_release_held(portalock_semaphore_t *sem,
                                                                portalock_error *err);

/** Acquires made through this handle, in this process, and not yet released. */
PORTALOCK_API unsigned long portalock_semaphore_held(const portalock_semaphore_t *sem);

/* The current value (sem_getvalue; never negative on Linux: 0 while others wait). */
PORTALOCK_API portalock_status portalock_semaphore_value(portalock_semaphore_t *sem, long *value,
                                                         portalock_error *err);

/*
 * Removes the name `name` (sem_unlink): processes that have it open keep using the old
 * semaphore; the next open creates a new one. A missing name is PORTALOCK_LOCK_EXCEPTION
 * with ENOENT; a bad name PORTALOCK_INVALID.
 */
PORTALOCK_API portalock_status portalock_semaphore_unlink(const char *name, portalock_error *err);

/* ---------------------------------------------------------------- atomic writes */

/*
 * open_atomic: the new content of `filename` is written into a temporary file in the same
 * directory, `.<basename>.portalock-<16 hex>.tmp` (16 hex digits from the OS random source;
 * the basename part is shortened when the name would exceed 255 bytes), created with
 * O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC and mode 0600, and published only by an explicit
 * portalock_atomic_commit: a reader of `filename` sees the old content or the whole new
 * content, never a mix. Abort, free, or a SIGKILL before commit leave `filename` untouched
 * (a killed writer leaves at most its one temporary file). The handle keeps the directory
 * open and works relative to it, so a chdir() after open does not matter.
 * After fork() a child's copy of the handle is inert: commit and write are PORTALOCK_INVALID,
 * abort and free close the child's descriptors but never remove the parent's temporary.
 */
typedef struct portalock_atomic portalock_atomic_t;

typedef struct portalock_atomic_options {
  int replace; /* 1: commit replaces an existing `filename` (a symlink there is replaced,
                  not written through). 0: commit never replaces anything, not even a file
                  that appears while writing: it publishes with renameat2(RENAME_NOREPLACE)
                  or link()+unlink(), and fails (keeping the temporary) when neither works */
} portalock_atomic_options;

/** Fills `opts` with the defaults: replace = 1. */
PORTALOCK_API void portalock_atomic_options_init(portalock_atomic_options *opts);

/*
 * Creates the temporary file for `filename` (opts may be NULL for the defaults). The
 * directory must exist: a missing one is LOCK_EXCEPTION (ENOENT). An empty filename, one
 * ending in '/', or whose last component is "." or "..", is PORTALOCK_INVALID. An existing
 * `filename` that is neither a regular file nor a symlink is refused, whatever opts.replace
 * says (a rename would turn a device or FIFO into a regular file): LOCK_EXCEPTION with EINVAL
 * (EISDIR for a directory), the message naming the path and its type. On success *out is a
 * handle to free with portalock_atomic_free.
 */
PORTALOCK_API portalock_status portalock_atomic_open(portalock_atomic_t **out, const char *filename,
                                                     const portalock_atomic_options *opts,
                                                     portalock_error *err);

/*
 * The temporary's descriptor (O_RDWR, O_CLOEXEC), or -1 once the handle is committed or
 * aborted. A caller may write to it directly (and must then abort on a failed write).
 */
PORTALOCK_API int portalock_atomic_fd(const portalock_atomic_t *atomic);
/** The target filename as given to portalock_atomic_open. */
PORTALOCK_API const char *portalock_atomic_filename(const portalock_atomic_t *atomic);
/*
 * The temporary's path (the directory part of the filename joined with the temporary's
 * name) while it exists: before commit, and after a refused commit that kept the payload
 * there; NULL otherwise (and in a forked child).
 */
PORTALOCK_API const char *portalock_atomic_temp_path(const portalock_atomic_t *atomic);

/*
 * Writes all `len` bytes at the descriptor's position (restarting after signals and short
 * writes). A failure is LOCK_EXCEPTION and poisons the handle: commit will abort.
 */
PORTALOCK_API portalock_status portalock_atomic_write(portalock_atomic_t *atomic, const void *buf,
                                                      size_t len, portalock_error *err);

/*
 * Publishes: fsync the temporary; give it the old file's mode and (where permitted: EPERM
 * is ignored) owner and group when `filename` is a regular file, otherwise the mode open(2)
 * with 0666 would give (0666 & ~umask; the umask is read from /proc/self/status, or with a
 * umask() round trip where that is missing); rename it over `filename` (replace = 1) or
 * publish it without replacing (replace = 0); fsync the directory.
 *  - OK: `filename` holds the new content; the handle is finished.
 *  - LOCK_EXCEPTION with *published = 1: only the directory fsync failed; the new content
 *    is in place but may not survive a power loss.
 *  - LOCK_EXCEPTION with *published = 0: nothing was published. With replace = 1 the
 *    temporary is removed. With replace = 0 a publishing failure (EEXIST: the file exists;
 *    ENOTSUP: neither RENAME_NOREPLACE nor link() works here; ...) keeps the temporary and
 *    the message names it (portalock_atomic_temp_path). A target that has become a device,
 *    FIFO, socket or directory since open is refused as at open, keeping the temporary
 *    likewise (only one that appears between this lstat and the rename is still replaced).
 *    Any other failure before publishing (a poisoned handle, fsync, fchmod) removes it.
 *  - PORTALOCK_INVALID: the handle is already committed or aborted, or belongs to the
 *    parent process.
 * `published` may be NULL. The handle is finished after every call, whatever the result.
 */
PORTALOCK_API portalock_status portalock_atomic_commit(portalock_atomic_t *atomic, int *published,
                                                       portalock_error *err);

/*
 * Closes and removes the temporary; `filename` stays untouched. A no-op (OK) on a finished
 * handle. Fails only when unlink fails (LOCK_EXCEPTION; the handle is finished anyway).
 */
PORTALOCK_API portalock_status portalock_atomic_abort(portalock_atomic_t *atomic,
                                                      portalock_error *err);

/** 1 while the handle can still be written and committed. */
PORTALOCK_API int portalock_atomic_is_open(const portalock_atomic_t *atomic);
/** 1 when a failed write has poisoned the handle (commit will abort). */
PORTALOCK_API int portalock_atomic_is_poisoned(const portalock_atomic_t *atomic);

/** Aborts an uncommitted handle (ignoring errors) and frees it. NULL is a no-op. */
PORTALOCK_API void portalock_atomic_free(portalock_atomic_t *atomic);

/* ---------------------------------------------------------------- Redis (distributed) */

/*
 * RedisLock and RedisSemaphore: one lock (or `maximum` permits) shared by every process, on any
 * machine, that uses the same Redis primary. Built only when hiredis is found (the CMake option
 * PORTALOCK_REDIS); hiredis formats and parses RESP, portalock owns the sockets.
 *
 * A process opens a *session*: a connection subscribed to its own random channel (Redis drops
 * the subscription when the connection ends, whatever ends it) and a command connection. A
 * grant belongs to a session: it ends when its holder releases it, when Redis sees the
 * session's subscription gone (the holder's process died on a live host: at once), or when its
 * lease (`ttl`) runs out unrenewed (a paused, cut-off or frozen holder). A keep-alive thread
 * per session renews every grant of the session each ttl/3 in one script; it starts with the
 * session, and a child process does not inherit it (nor the connections: a pthread_atfork
 * handler closes the child's copies, so a child can neither keep a grant alive nor release it;
 * the child's handles report "forked"). Every decision is one script on the server, timed by
 * the server's TIME. A session that loses a connection is never re-connected: its grants are
 * LOST, and a new session takes new grants.
 *
 * A grant carries a fencing token that increases strictly per name (a counter, floored by the
 * server's clock in microseconds so that it keeps increasing across a restart that lost the
 * counter, as long as the server's clock does not go back). A holder that may have lost its
 * grant without knowing it yet (a pause) writes through portalock_redis_fenced_write, which
 * rejects a token older than the newest one seen for the key.
 *
 * Keys of a name share the hash tag "{name}" (one slot): "portalock:{name}:holders", ":queue",
 * ":fence", ":subscribers", ":maximum". The backend talks to one primary: Redis Cluster is not
 * supported (no redirections, and a renewal covers the grants of several names). Channels are
 * "portalock:session:<random>" (a session) and "portalock:session:<random>:<n>" (one acquisition:
 * waiters are woken on it one at a time, in arrival order). A RedisLock also subscribes to the
 * channel `name` itself while it waits and holds, as Python portalocker's RedisLock does, so that
 * each sees the other's holders (portalock_redis_lock_set_visible). Commands used: AUTH, SELECT,
 * CLIENT SETNAME, SCRIPT LOAD, EVALSHA, SUBSCRIBE, UNSUBSCRIBE, ZREM (and, inside the scripts,
 * TIME, PUBSUB NUMSUB, PUBLISH and key commands); none needs admin rights (README: the ACL line).
 */
typedef struct portalock_redis_options {
  const char *host;       /* "127.0.0.1" when NULL (and `path` is NULL) */
  int port;               /* 6379 when 0 */
  const char *path;       /* a unix socket instead of host and port, or NULL */
  long db;                /* SELECT'ed on the command connection; 0 */
  const char *username;   /* AUTH username password (an ACL user), or NULL */
  const char *password;   /* AUTH password, or NULL */
  double connect_timeout; /* seconds, > 0: 5 */
  double command_timeout; /* seconds, > 0: 5; a command that outlasts it loses the session */
  double ttl;             /* the lease, seconds, > 0: 30; renewed every ttl/3 */
} portalock_redis_options;

#define PORTALOCK_REDIS_DEFAULT_PORT 6379
#define PORTALOCK_REDIS_DEFAULT_TIMEOUT 5.0
#define PORTALOCK_REDIS_DEFAULT_TTL 30.0
/* How often a waiter re-checks without being woken: a holder whose process died without a
 * release publishes nothing, and its grant goes when the next check sees its session gone. */
#define PORTALOCK_REDIS_RECHECK_INTERVAL 0.1
/* The longest name of a RedisLock (its channel) or RedisSemaphore, in bytes. */
#define PORTALOCK_REDIS_NAME_MAX 1024

PORTALOCK_API void portalock_redis_options_init(portalock_redis_options *opts);
/*
 * Fills `opts` (host, port, path, db, username, password; the rest is left) from
 * "redis://[[user]:password@]host[:port][/db]" (host may be "[IPv6]") or
 * "unix://[[user]:password@]/path" (path absolute), either followed by an optional query
 * "?db=N&username=U&password=P" (each at most once; user and password %-decoded). The strings
 * point into `buf`, which must hold at least strlen(url) + 1 bytes and outlive their use.
 * INVALID, naming the part, for anything else; the message never shows a credential.
 */
PORTALOCK_API portalock_status portalock_redis_options_parse_url(portalock_redis_options *opts,
                                                                 const char *url, char *buf,
                                                                 size_t cap, portalock_error *err);

/* OK when a session could open with `opts` (nothing is connected), else INVALID naming the
 * option and its value: timeouts and ttl positive seconds (at most a year; ttl at least
 * 0.001), port 1..65535 (or 0: the default), db 0..2147483647. */
PORTALOCK_API portalock_status portalock_redis_options_check(const portalock_redis_options *opts,
                                                             portalock_error *err);

typedef struct portalock_redis_session portalock_redis_session_t;

/*
 * Opens a session: both connections (connect_timeout each), AUTH and SELECT, the session's
 * subscription confirmed, the scripts loaded, the keep-alive thread started. LOCK_EXCEPTION
 * with the server's or the system's reason when any of it fails; INVALID for bad options.
 */
PORTALOCK_API portalock_status portalock_redis_session_open(portalock_redis_session_t **out,
                                                            const portalock_redis_options *opts,
                                                            portalock_error *err);
/* Closes the connections (every grant still held ends at once) and stops the keep-alive
 * thread. The session's locks and semaphores must be freed first. NULL is a no-op. */
PORTALOCK_API void portalock_redis_session_free(portalock_redis_session_t *session);
/* Why the session is lost ("connection closed by the server", "command timed out", "forked",
 * ...), or NULL while it is alive. */
PORTALOCK_API const char *portalock_redis_session_lost(const portalock_redis_session_t *session);
/*
 * A descriptor for an event loop: readable (POLLIN) once any grant of the session is lost
 * (then check each: portalock_redis_lock_check) and stays readable. Owned by the session.
 */
PORTALOCK_API int portalock_redis_session_fd(const portalock_redis_session_t *session);
/*
 * Called on the keep-alive thread (never on a caller's, also when a caller's call found the
 * loss), once per grant lost while held, with the name and the reason (NULL: none), holding no
 * lock of the session's (it may take the application's). It must not free the session, and
 * should return soon: renewals and wake-ups wait for it.
 */
typedef void (*portalock_redis_lost_callback)(void *data, const char *name, const char *reason);
PORTALOCK_API void portalock_redis_session_on_lost(portalock_redis_session_t *session,
                                                   portalock_redis_lost_callback callback,
                                                   void *data);
/*
 * Writes `value` to the hash `key` (fields "value" and "token") only if `token` is not older
 * than the token stored there: *written is 1 when written, 0 when rejected (a newer holder has
 * written). One round trip.
 */
PORTALOCK_API portalock_status portalock_redis_fenced_write(portalock_redis_session_t *session,
                                                            const char *key, uint64_t token,
                                                            const char *value, size_t len,
                                                            int *written, portalock_error *err);

/* A holder of a name, as portalock_redis_name_status reports it. */
typedef struct portalock_redis_holder {
  char session[17]; /* its session's first 16 hex digits: the server knows its connections as
                       "portalock-<these>-command" and "-subscription" (CLIENT LIST) */
  uint64_t token;   /* its fencing token */
  double lease;     /* seconds left of its lease by the server's clock (renewed every ttl/3) */
} portalock_redis_holder;

/* Who holds and waits for a name, counted as a grant counts them (a holder whose lease ran out
 * or whose session's connection ended holds nothing). */
typedef struct portalock_redis_status {
  long maximum; /* the maximum stored with the name (1 for a RedisLock), 0 when none is: nobody
                   has held or waited for it lately */
  long waiting; /* portalock waiters */
  long foreign; /* subscribers of the channel `name` that are no portalock acquisition: Python
                   portalocker's RedisLock holders (its waiters subscribe only for a moment) */
  size_t count; /* portalock holders */
  portalock_redis_holder *holders; /* `count` of them, oldest token first */
} portalock_redis_status;

/*
 * Fills *out with who holds and waits for `name` (a RedisLock's channel or a RedisSemaphore's
 * name) now; one round trip, which changes nothing on the server. Free with
 * portalock_redis_status_free (also after a failure, which leaves it empty).
 */
PORTALOCK_API portalock_status portalock_redis_name_status(portalock_redis_session_t *session,
                                                           const char *name,
                                                           portalock_redis_status *out,
                                                           portalock_error *err);
PORTALOCK_API void portalock_redis_status_free(portalock_redis_status *status);

/*
 * A RedisLock (maximum 1, subscribed to the channel `name` as portalocker's RedisLock is) and a
 * RedisSemaphore (any maximum: the maximum stored with the name must match, else INVALID).
 * Both follow the step API (portalock_step, portalock_sleep): the attempt is one script (plus,
 * the first time, the acquisition's subscription sent alongside); a contended step waits on a
 * descriptor that the next release in arrival order makes readable, re-checking at least every
 * PORTALOCK_REDIS_RECHECK_INTERVAL. A handle is used by one thread at a time; several handles
 * share one session from any threads.
 *  - check: NULL while held, else why not ("not held", "lost", "forked"); no I/O. "lost": the
 *    server dropped the grant, the session failed, or the lease ran out by this process's
 *    clock with no renewal back (the grant is then never renewed again).
 *  - ensure: one round trip: OK while the server still holds the grant, else LOCK_EXCEPTION
 *    (and the grant is LOST from then on).
 *  - release: OK, or LOCK_EXCEPTION when the grant was already lost (the handle is released
 *    either way; a failure to reach the server leaves the grant to end with the session).
 *  - token: the grant's fencing token, 0 when not held.
 */
typedef struct portalock_redis_lock portalock_redis_lock_t;
typedef struct portalock_redis_semaphore portalock_redis_semaphore_t;

PORTALOCK_API portalock_status portalock_redis_lock_new(portalock_redis_lock_t **out,
                                                        portalock_redis_session_t *session,
                                                        const char *name, portalock_error *err);
PORTALOCK_API void portalock_redis_lock_free(portalock_redis_lock_t *lock);
PORTALOCK_API portalock_status portalock_redis_lock_begin(portalock_acquisition *acq,
                                                          portalock_redis_lock_t *lock,
                                                          double timeout, double check_interval,
                                                          int fail_when_locked,
                                                          portalock_error *err);
PORTALOCK_API portalock_status portalock_redis_lock_acquire_with(portalock_redis_lock_t *lock,
                                                                 double timeout,
                                                                 double check_interval,
                                                                 int fail_when_locked,
                                                                 portalock_error *err);
PORTALOCK_API portalock_status portalock_redis_lock_release(portalock_redis_lock_t *lock,
                                                            portalock_error *err);
PORTALOCK_API const char *portalock_redis_lock_check(const portalock_redis_lock_t *lock);
PORTALOCK_API portalock_status portalock_redis_lock_ensure(portalock_redis_lock_t *lock,
                                                           portalock_error *err);
/*
 * Whether the lock subscribes to the channel `name` while it waits and holds (1, the default),
 * so that Python portalocker's RedisLock sees its holder; it then costs a subscription per
 * acquisition, which the server may see after the grant script (which then waits for it: one
 * round trip more). 0: one subscription for the handle's life, and portalocker does not see
 * this holder (a portalocker holder still blocks this lock's grant). Before the first
 * acquisition only (INVALID after).
 */
PORTALOCK_API portalock_status portalock_redis_lock_set_visible(portalock_redis_lock_t *lock,
                                                                int visible, portalock_error *err);
PORTALOCK_API uint64_t portalock_redis_lock_token(const portalock_redis_lock_t *lock);
PORTALOCK_API const char *portalock_redis_lock_name(const portalock_redis_lock_t *lock);

PORTALOCK_API portalock_status portalock_redis_semaphore_new(portalock_redis_semaphore_t **out,
                                                             portalock_redis_session_t *session,
                                                             const char *name, long maximum,
                                                             portalock_error *err);
PORTALOCK_API void portalock_redis_semaphore_free(portalock_redis_semaphore_t *sem);
PORTALOCK_API portalock_status portalock_redis_semaphore_begin(
    portalock_acquisition *acq, portalock_redis_semaphore_t *sem, double timeout,
    double check_interval, int fail_when_locked, portalock_error *err);
PORTALOCK_API portalock_status portalock_redis_semaphore_acquire_with(
    portalock_redis_semaphore_t *sem, double timeout, double check_interval, int fail_when_locked,
    portalock_error *err);
PORTALOCK_API portalock_status portalock_redis_semaphore_release(portalock_redis_semaphore_t *sem,
                                                                 portalock_error *err);
PORTALOCK_API const char *portalock_redis_semaphore_check(const portalock_redis_semaphore_t *sem);
PORTALOCK_API portalock_status portalock_redis_semaphore_ensure(portalock_redis_semaphore_t *sem,
                                                                portalock_error *err);
PORTALOCK_API uint64_t portalock_redis_semaphore_token(const portalock_redis_semaphore_t *sem);
PORTALOCK_API const char *portalock_redis_semaphore_name(const portalock_redis_semaphore_t *sem);
PORTALOCK_API long portalock_redis_semaphore_maximum(const portalock_redis_semaphore_t *sem);

/*
 * A remote acquisition: a RedisLock (is_lock; maximum 1) or RedisSemaphore acquisition whose
 * attempts the caller makes over a transport of its own (OpenResty's cosockets), sending the
 * same scripts and reading the same replies as this library's sessions, while the timing and
 * the AlreadyLocked message stay the engine's: after each contended attempt the caller asks
 * portalock_step_held (sleep until when, or give up with the message); portalock_step fails
 * with INVALID. Giving up keeps nothing here: the caller leaves the queue of waiters itself.
 * `name` and `maximum` are checked as portalock_redis_semaphore_new checks them.
 */
typedef struct portalock_redis_remote portalock_redis_remote_t;

PORTALOCK_API portalock_status portalock_redis_remote_new(portalock_redis_remote_t **out,
                                                          const char *name, long maximum,
                                                          int is_lock, portalock_error *err);
PORTALOCK_API void portalock_redis_remote_free(portalock_redis_remote_t *remote);
PORTALOCK_API portalock_status portalock_redis_remote_begin(portalock_acquisition *acq,
                                                            portalock_redis_remote_t *remote,
                                                            double timeout, double check_interval,
                                                            int fail_when_locked,
                                                            portalock_error *err);

/* ---------------------------------------------------------------- running a command */

/*
 * Runs a command under held locks, as flock(1) does: `argv[0]` (searched in PATH) starts with
 * `argv` (NULL-terminated) and the caller's environment, as execvp(3) starts it (a file
 * without a "#!" line runs as a /bin/sh script), inheriting the descriptors
 * keep[0..nkeep) (for example portalock_lock_fd of a held Lock). Their close-on-exec flag is
 * cleared in the child only, so the lock lasts as long as the command even if the caller dies.
 * The call returns when the command has ended.
 *
 * While it runs, SIGINT, SIGTERM and SIGHUP sent to the calling thread are passed on to the
 * command and do not end the caller; the terminal's own SIGINT and SIGHUP (si_code SI_KERNEL)
 * are not, since they already reached the command's process group, and neither are signals
 * the caller blocks (they stay pending for it). No handler is installed: these signals and
 * SIGCHLD are blocked during the call, and a SIGCHLD that is ignored or has SA_NOCLDWAIT is
 * set to the default for its duration. The SIGCHLD of the caller's other children that end
 * meanwhile is taken too (reap them with waitpid afterwards). In a program with several
 * threads, only the calling thread's signals are forwarded.
 *  - OK: *exit_code is the command's exit status, or 128+N when it died of signal N.
 *  - LOCK_EXCEPTION: the command could not be started; errnum says why (ENOENT: not found,
 *    EACCES, ENOEXEC, ETXTBSY, ...: not executable; EAGAIN, ENOMEM: no process), or, with
 *    ECHILD, its status was lost (another thread of the caller reaped it).
 *  - PORTALOCK_INVALID: no command, a NULL `exit_code`, or an entry of `keep` that is not an
 *    open descriptor.
 */
PORTALOCK_API portalock_status portalock_command_run(const char *const *argv, const int *keep,
                                                     size_t nkeep, int *exit_code,
                                                     portalock_error *err);

/*
 * portalock_command_run that also ends the command when a grant it runs under is lost:
 * while the command runs, the call also waits for `watch_fd` to become readable (POLLIN, or a
 * hang-up or error; for example portalock_redis_session_fd, readable once a grant of the
 * session is lost). Then the command is sent SIGTERM, and SIGKILL if it has not ended `grace`
 * seconds later (>= 0; INFINITY: never; PORTALOCK_COMMAND_GRACE is the command line's), and
 * the call returns once it has ended, with *watch_fired = 1. A descriptor readable from the
 * start ends the command at once. Only the command itself gets the signals, as forwarded
 * signals reach only it. Otherwise as portalock_command_run, plus:
 *  - OK: *watch_fired is 1 when the command was ended because of the watch, else 0 (it
 *    ended by itself, or of a forwarded signal).
 *  - PORTALOCK_INVALID also for a NULL `watch_fired`, a `watch_fd` that is not an open
 *    descriptor, or a negative or NaN `grace`.
 * Where the system has a descriptor for pending signals (Linux: signalfd) the call waits on
 * both at once; elsewhere it looks at `watch_fd` every 0.05 s.
 */
#define PORTALOCK_COMMAND_GRACE 10.0
PORTALOCK_API portalock_status portalock_command_run_watching(const char *const *argv,
                                                              const int *keep, size_t nkeep,
                                                              int watch_fd, double grace,
                                                              int *exit_code, int *watch_fired,
                                                              portalock_error *err);

/*
 * Replaces the calling process with the command, as flock(1)'s --no-fork does: `argv` as for
 * portalock_command_run, started as execvp(3) starts it, with the caller's signal mask and
 * with keep[0..nkeep) inheritable (their close-on-exec flag is cleared before the exec, so a
 * fork by another thread of the caller in that moment inherits them too). Returns only when
 * the command cannot be started, with the flags restored:
 *  - LOCK_EXCEPTION: errnum says why (ENOENT: not found; EACCES, ENOEXEC, ETXTBSY, ...: not
 *    executable; ENOMEM).
 *  - PORTALOCK_INVALID: no command, or an entry of `keep` that is not an open descriptor.
 */
PORTALOCK_API portalock_status portalock_command_exec(const char *const *argv, const int *keep,
                                                      size_t nkeep, portalock_error *err);

#ifdef __cplusplus
}
#endif

#endif /* PORTALOCK_H */
