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
  long holder_pid; /* PidFileLock contention: the live holder's PID, or 0 if unknown */
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

typedef struct portalock_lock_options {
  const char *mode;          /* "a" (see below) */
  double timeout;            /* 5 seconds; 0 = one attempt; INFINITY = forever */
  double check_interval;     /* 0.25 seconds; the longest a wait goes without re-checking */
  int fail_when_locked;      /* 0 (1 for TemporaryFileLock and PidFileLock) */
  int flags;                 /* LOCK_EX | LOCK_NB; LOCK_SH for a shared lock. An attempt never
                                blocks in the kernel, with or without LOCK_NB: the wait
                                belongs to the loop (timeout, check_interval) */
  portalock_backend backend; /* PORTALOCK_BACKEND_FLOCK */
  int perm;                  /* 0666: permissions of a created file, less the umask */
} portalock_lock_options;

/** Fills `opts` with the defaults above (fail_when_locked = 0). */
PORTALOCK_API void portalock_lock_options_init(portalock_lock_options *opts);

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
 * process's PID is written atomically (temporary file + rename) into `filename`, which is
 * removed before the sidecar is unlocked on release. Contention fills err->holder_pid.
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
 * One step of acquiring (the step API). PORTALOCK_OK: the lock is held (or already was: a
 * no-op). PORTALOCK_CONTENDED: another holder has it; `*wait` says what to wait for before
 * the next step. Anything else is a permanent failure (ENOLCK, EISDIR, EACCES, ENOENT,
 * ELOOP, ...), reported at once. The handle's timeout and fail_when_locked are not used
 * here: they belong to the loop that calls this.
 */
PORTALOCK_API portalock_status portalock_lock_try(portalock_lock_t *lock, portalock_wait *wait,
                                                  portalock_error *err);

/*
 * The convenience loop over portalock_lock_try: waits at most `timeout` seconds,
 * re-checking at least every `check_interval`; with `fail_when_locked` the first
 * contention ends it. Contention that outlasts the timeout is ALREADY_LOCKED.
 * portalock_lock_acquire uses the handle's own options.
 */
PORTALOCK_API portalock_status portalock_lock_acquire_with(portalock_lock_t *lock, double timeout,
                                                           double check_interval,
                                                           int fail_when_locked,
                                                           portalock_error *err);
PORTALOCK_API portalock_status portalock_lock_acquire(portalock_lock_t *lock, portalock_error *err);

/*
 * Releases: (PidFileLock: removes the PID file; TemporaryFileLock: unlinks the file,) then
 * unlocks and closes the descriptor, or, if it was handed over, leaves closing it to its
 * new owner. Releasing a lock that is not held, or in a forked child, is a no-op.
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
 * value. Returns the PID, or 0 when the file is missing, unreadable or malformed.
 */
PORTALOCK_API long portalock_read_pid(const char *filename);

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

#ifdef __cplusplus
}
#endif

#endif /* PORTALOCK_H */
