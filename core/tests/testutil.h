/* Test helpers for the core's unit tests: checks, a scratch directory, child processes. */
#ifndef PORTALOCK_TESTUTIL_H
#define PORTALOCK_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, mkdtemp, nftw, F_OFD_SETLK: include this header first */
#endif

#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "portalock.h"

/* ---------------------------------------------------------------- checks */

/* Reports a failed check and ends the process: exit(1) in the test's main process (which
 * removes the scratch directory), _exit(1) in a forked child. */
void tu_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define CHECK(expr)                                                                                \
  do {                                                                                             \
    if (!(expr)) tu_fail(__FILE__, __LINE__, "CHECK(%s) failed", #expr);                           \
  } while (0)

#define CHECK_INT(a, b)                                                                            \
  do {                                                                                             \
    long long tu_a_ = (long long)(a), tu_b_ = (long long)(b);                                      \
    if (tu_a_ != tu_b_)                                                                            \
      tu_fail(__FILE__, __LINE__, "CHECK_INT(%s, %s) failed: %lld != %lld", #a, #b, tu_a_, tu_b_); \
  } while (0)

#define CHECK_STR(a, b)                                                                            \
  do {                                                                                             \
    const char *tu_a_ = (a), *tu_b_ = (b);                                                         \
    if (tu_a_ == NULL || tu_b_ == NULL || strcmp(tu_a_, tu_b_) != 0)                               \
      tu_fail(__FILE__, __LINE__, "CHECK_STR(%s, %s) failed: \"%s\" != \"%s\"", #a, #b,            \
              tu_a_ ? tu_a_ : "(null)", tu_b_ ? tu_b_ : "(null)");                                 \
  } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                           \
  do {                                                                                             \
    const char *tu_h_ = (haystack), *tu_n_ = (needle);                                             \
    if (tu_h_ == NULL || strstr(tu_h_, tu_n_) == NULL)                                             \
      tu_fail(__FILE__, __LINE__, "CHECK_CONTAINS(%s, %s) failed: \"%s\" lacks \"%s\"", #haystack, \
              #needle, tu_h_ ? tu_h_ : "(null)", tu_n_);                                           \
  } while (0)

/* A portalock call's status, with the error's message when it is not the expected one. */
#define CHECK_STATUS(call, expected, errp)                                                         \
  do {                                                                                             \
    portalock_status tu_s_ = (call);                                                               \
    if (tu_s_ != (expected))                                                                       \
      tu_fail(__FILE__, __LINE__, "%s returned %s, expected %s (errnum %d, message \"%s\")",       \
              #call, portalock_status_name(tu_s_), portalock_status_name(expected),                \
              (errp)->errnum, (errp)->message);                                                    \
  } while (0)

#define CHECK_OK(call, errp) CHECK_STATUS(call, PORTALOCK_OK, errp)

/* Elapsed seconds in [lo, hi]. */
#define CHECK_BETWEEN(value, lo, hi)                                                               \
  do {                                                                                             \
    double tu_v_ = (value);                                                                        \
    if (!(tu_v_ >= (lo) && tu_v_ <= (hi)))                                                         \
      tu_fail(__FILE__, __LINE__, "CHECK_BETWEEN(%s, %s, %s) failed: %g", #value, #lo, #hi,        \
              tu_v_);                                                                              \
  } while (0)

/* Prints "<test>: <group>" before a group of checks. */
void tu_group(const char *name);
/* Sets the test's name, arms a watchdog alarm and remembers the main process. */
void tu_init(const char *test_name);
/* Prints "<test>: all checks passed" and returns 0, for `return tu_done();` in main. */
int tu_done(void);

double tu_now(void);
void tu_sleep(double seconds);

/* ---------------------------------------------------------------- files */

/* Creates the scratch directory (once) under $TMPDIR or /tmp; removed when main exits. */
const char *tu_scratch(void);
/* A path inside the scratch directory, in a static ring of buffers (8 live at once). */
const char *tu_path(const char *name);
/* Writes `text` into `path` (created or truncated, mode 0644). */
void tu_write_file(const char *path, const char *text);
/* Reads at most `cap - 1` bytes of `path` into `buf`; returns the length, or -1. */
long tu_read_file(const char *path, char *buf, size_t cap);
int tu_exists(const char *path);
/* Opens with O_CLOEXEC added; fails the test on error. */
int tu_open(const char *path, int oflags);
/* Open descriptors of this process, counted in /proc/self/fd. */
int tu_count_fds(void);
/* The inotify instances process `pid` has open (its anon_inode:inotify descriptors). */
int tu_count_inotify(pid_t pid);

/* ---------------------------------------------------------------- processes */

/* A forked child and two pipes: one from the child (`from`), one to it (`to`). */
typedef struct tu_proc {
  pid_t pid;
  int from; /* parent: read end of child->parent; child: write end */
  int to;   /* parent: write end of parent->child; child: read end */
} tu_proc;

/* fork() with the pipes: returns 0 in the child, the child's PID in the parent. */
pid_t tu_fork(tu_proc *p);
/* Sends one byte (either side). */
void tu_send(tu_proc *p, char c);
/* Receives one byte (either side): -1 at end of file; waits at most 30 s. */
int tu_recv(tu_proc *p);
/* A long, either side. tu_recv_long fails the test at end of file. */
void tu_send_long(tu_proc *p, long v);
long tu_recv_long(tu_proc *p);
/* Parent: closes its write end (the child's tu_recv then sees end of file). */
void tu_close_to(tu_proc *p);
/* Parent: reaps the child; returns its exit status, or 128 + signal. */
int tu_reap(tu_proc *p);
/* Parent: SIGKILLs the child's process group member and reaps it. */
void tu_kill(tu_proc *p);
/* Child: ends the child with `code` (never runs the parent's atexit handlers). */
void tu_child_exit(int code) __attribute__((noreturn));

/* Forks a child that locks `path` with a Lock (exclusive, `backend`, mode "a"), sends 'R'
 * when it holds it, and releases and exits after the parent's tu_send or tu_close_to. */
void tu_hold(tu_proc *p, const char *path, portalock_backend backend);
/* Waits until the holder child from tu_hold lets go, checks it exited 0. */
void tu_hold_end(tu_proc *p);

/* In a fresh child process, tries portalock_lock(LOCK_EX|LOCK_NB) on `path` with `backend`:
 * 1 when another holder has it, 0 when it was free. Any other outcome fails the test. */
int tu_probe_locked(const char *path, portalock_backend backend);

/* ---------------------------------------------------------------- another user */

/* The unprivileged user 'nobody' that root's tests act as: 1 with its uid and gid, or 0
 * (having printed "<test>: SKIP <what>: needs root and a user 'nobody'") when this process is
 * not root or there is no such user. */
int tu_other_user(const char *what, uid_t *uid, gid_t *gid);
/* Runs `body` in a child process as `uid`/`gid` (no supplementary groups); checks that it
 * passed. */
void tu_as_user(uid_t uid, gid_t gid, void (*body)(void));
/* A directory in the scratch directory that every user may create files in (mode 01777, as
 * /tmp), the scratch directory made searchable by all: its path. */
const char *tu_shared_dir(void);

/* Runs argv (execvp) in a child and returns its exit status (128 + signal if killed). */
int tu_run(char *const argv[]);

#endif /* PORTALOCK_TESTUTIL_H */
