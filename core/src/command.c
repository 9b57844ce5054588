/* Running a command that inherits held lock descriptors, as flock(1) does, and forwarding
 * the signals that ask the runner to stop. No signal handler is installed: the signals are
 * blocked for the duration of the call and taken with sigtimedwait(2). */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

/* How long the wait for the child may go without looking at it even with no signal at all:
 * a safety net for a SIGCHLD that another thread of the caller took. */
#define PL_CHILD_CHECK_SECONDS 1

static const int pl_forwarded[] = {SIGINT, SIGTERM, SIGHUP};

static int pl_exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 128;
}

/* A terminal's SIGINT or SIGHUP reaches the whole foreground process group, the child
 * included: passing it on again would deliver it twice. */
static int pl_from_terminal(const siginfo_t *info) {
  return info->si_code == SI_KERNEL;
}

static portalock_status pl_check_command(const char *const *argv, const int *keep, size_t nkeep,
                                         int *exit_code, portalock_error *err) {
  if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "command_run: `argv` names no command");
  if (exit_code == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "command_run: `exit_code` is NULL");
  if (nkeep > 0 && keep == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "command_run: `keep` is NULL");
  for (size_t i = 0; i < nkeep; i++)
    if (keep[i] < 0 || fcntl(keep[i], F_GETFD) < 0)
      return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                     "command_run: keep[%zu] (%d) is not an open descriptor", i, keep[i]);
  return PORTALOCK_OK;
}

/* Starts the child with the caller's signal mask from before the call and `keep` made
 * inheritable in the child only (dup2 onto itself clears FD_CLOEXEC: POSIX.1-2024,
 * glibc, musl and the BSDs). Returns 0 or an errno value. */
static int pl_spawn(pid_t *pid, const char *const *argv, const int *keep, size_t nkeep,
                    const sigset_t *child_mask) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  int rc = posix_spawn_file_actions_init(&actions);
  if (rc != 0) return rc;
  rc = posix_spawnattr_init(&attr);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return rc;
  }
  for (size_t i = 0; i < nkeep && rc == 0; i++)
    rc = posix_spawn_file_actions_adddup2(&actions, keep[i], keep[i]);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, child_mask);
  if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  if (rc == 0) rc = posix_spawnp(pid, argv[0], &actions, &attr, (char *const *)argv, environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc;
}

/* Waits for `pid`, forwarding what arrives in `signals` (SIGCHLD among them) meanwhile.
 * Returns 0 with the status, or an errno value. */
static int pl_wait_forwarding(pid_t pid, const sigset_t *signals, int *status) {
  for (;;) {
    pid_t done = waitpid(pid, status, WNOHANG);
    if (done == pid) return 0;
    if (done < 0 && errno != EINTR) return errno;
    siginfo_t info;
    struct timespec check = {PL_CHILD_CHECK_SECONDS, 0};
    int sig = sigtimedwait(signals, &info, &check);
    if (sig < 0 || sig == SIGCHLD || pl_from_terminal(&info)) continue;
    kill(pid, sig);
  }
}

portalock_status portalock_command_run(const char *const *argv, const int *keep, size_t nkeep,
                                       int *exit_code, portalock_error *err) {
  pl_clear(err);
  portalock_status st = pl_check_command(argv, keep, nkeep, exit_code, err);
  if (st != PORTALOCK_OK) return st;

  /* A signal the caller blocks is one it wants kept: it is neither forwarded nor taken. */
  sigset_t signals, caller_mask;
  pthread_sigmask(SIG_BLOCK, NULL, &caller_mask);
  sigemptyset(&signals);
  for (size_t i = 0; i < sizeof pl_forwarded / sizeof pl_forwarded[0]; i++)
    if (!sigismember(&caller_mask, pl_forwarded[i])) sigaddset(&signals, pl_forwarded[i]);
  sigaddset(&signals, SIGCHLD);
  /* With SIGCHLD ignored or SA_NOCLDWAIT the kernel reaps children itself and the status is
   * lost. While SIGCHLD is blocked no handler would run anyway: the default stands in. */
  struct sigaction chld;
  sigaction(SIGCHLD, NULL, &chld);
  int chld_ignored = (chld.sa_handler == SIG_IGN && !(chld.sa_flags & SA_SIGINFO)) ||
                     (chld.sa_flags & SA_NOCLDWAIT);
  if (chld_ignored) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, NULL);
  }
  pthread_sigmask(SIG_BLOCK, &signals, &caller_mask);

  pid_t pid;
  int rc = pl_spawn(&pid, argv, keep, nkeep, &caller_mask);
  int status = 0;
  if (rc == 0) rc = pl_wait_forwarding(pid, &signals, &status);

  pthread_sigmask(SIG_SETMASK, &caller_mask, NULL);
  if (chld_ignored) sigaction(SIGCHLD, &chld, NULL);
  if (rc != 0) return pl_fail_sys(err, rc, "cannot run", argv[0]);
  *exit_code = pl_exit_code(status);
  return PORTALOCK_OK;
}
