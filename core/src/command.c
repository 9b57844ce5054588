/* Running a command that inherits held lock descriptors, as flock(1) does, and forwarding the
 * signals that ask the runner to stop, optionally ending it when a watched descriptor becomes
 * readable (a grant that was lost); or replacing the caller with it, as flock --no-fork does.
 * No signal handler is installed: the signals are blocked for the duration of the call and
 * taken with sigtimedwait(2). */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <time.h>

#include "platform/platform.h"

extern char **environ;

/* How long the wait for the child may go without looking at it even with no signal at all:
 * a safety net for a SIGCHLD that another thread of the caller took. */
#define PL_CHILD_CHECK_SECONDS 1.0
/* Where the system has no descriptor for pending signals (pl_platform_signal_open), how often
 * a watching wait looks at the watched descriptor between signals. */
#define PL_WATCH_POLL_SECONDS 0.05

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

/* `func` names the caller in the messages. */
static portalock_status pl_check_command(const char *func, const char *const *argv, const int *keep,
                                         size_t nkeep, portalock_error *err) {
  if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "%s: `argv` names no command", func);
  if (nkeep > 0 && keep == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "%s: `keep` is NULL", func);
  for (size_t i = 0; i < nkeep; i++)
    if (keep[i] < 0 || fcntl(keep[i], F_GETFD) < 0)
      return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                     "%s: keep[%zu] (%d) is not an open descriptor", func, i, keep[i]);
  return PORTALOCK_OK;
}

/* Where the spawn cannot clear FD_CLOEXEC in the child (PL_SPAWN_CLEARS_CLOEXEC, platform.h),
 * the flag is cleared in the caller for the moment of the spawn: a fork by another thread of
 * the caller in that moment would inherit the descriptor too. */

/* Clears FD_CLOEXEC on `keep` (on = 0), remembering in `had` which had it, or sets it back. */
static void pl_set_cloexec(const int *keep, size_t nkeep, unsigned char *had, int on) {
  for (size_t i = 0; i < nkeep; i++) {
    int flags = fcntl(keep[i], F_GETFD);
    if (flags < 0) continue;
    if (!on) had[i] = (flags & FD_CLOEXEC) != 0;
    if (had[i]) fcntl(keep[i], F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
  }
}

/* Starts `file` (searched in PATH when `search`) with `argv`, the caller's signal mask from
 * before the call and `keep` inheritable. Returns 0 or an errno value. */
static int pl_spawn(pid_t *pid, const char *file, int search, const char *const *argv,
                    const int *keep, size_t nkeep, const sigset_t *child_mask) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  int rc = posix_spawn_file_actions_init(&actions);
  if (rc != 0) return rc;
  rc = posix_spawnattr_init(&attr);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return rc;
  }
  for (size_t i = 0; PL_SPAWN_CLEARS_CLOEXEC && i < nkeep && rc == 0; i++)
    rc = posix_spawn_file_actions_adddup2(&actions, keep[i], keep[i]);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, child_mask);
  if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  unsigned char *had = NULL;
  if (rc == 0 && !PL_SPAWN_CLEARS_CLOEXEC && nkeep > 0 && (had = calloc(nkeep, 1)) == NULL)
    rc = ENOMEM;
  if (rc == 0) {
    if (had != NULL) pl_set_cloexec(keep, nkeep, had, 0);
    char *const *args = (char *const *)argv;
    rc = search ? posix_spawnp(pid, file, &actions, &attr, args, environ)
                : posix_spawn(pid, file, &actions, &attr, args, environ);
    if (had != NULL) pl_set_cloexec(keep, nkeep, had, 1);
  }
  free(had);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc;
}

/* The file execvp would run for `name`: itself when it has a slash, else the first
 * executable regular file of that name in PATH. Returns 0, or ENOENT. */
static int pl_find_in_path(const char *name, char *out, size_t size) {
  if (strchr(name, '/') != NULL) {
    if (strlen(name) >= size) return ENAMETOOLONG;
    strcpy(out, name);
    return 0;
  }
  const char *path = getenv("PATH");
  if (path == NULL) path = "/bin:/usr/bin";
  for (const char *dir = path;; dir++) {
    const char *end = strchr(dir, ':');
    size_t len = end != NULL ? (size_t)(end - dir) : strlen(dir);
    int n = snprintf(out, size, "%.*s%s%s", (int)len, dir, len > 0 ? "/" : "", name);
    struct stat st;
    if (n > 0 && (size_t)n < size && access(out, X_OK) == 0 && stat(out, &st) == 0 &&
        S_ISREG(st.st_mode))
      return 0;
    if (end == NULL) return ENOENT;
    dir = end;
  }
}

/* The argv that runs `argv[0]`, a file without a "#!" line (ENOEXEC), as a /bin/sh script,
 * as execvp(3) does: "sh", its path in `script`, then argv[1..]. Returns it (free it), or NULL
 * with the errno value in *rc. */
static const char **pl_script_argv(const char *const *argv, char *script, size_t size, int *rc) {
  *rc = pl_find_in_path(argv[0], script, size);
  if (*rc != 0) {
    *rc = ENOEXEC;
    return NULL;
  }
  size_t argc = 0;
  while (argv[argc] != NULL)
    argc++;
  const char **sh_argv = malloc((argc + 2) * sizeof *sh_argv);
  if (sh_argv == NULL) {
    *rc = ENOMEM;
    return NULL;
  }
  sh_argv[0] = "sh";
  sh_argv[1] = script;
  for (size_t i = 1; i <= argc; i++) /* argv[argc] is the terminating NULL */
    sh_argv[i + 1] = argv[i];
  return sh_argv;
}

/* Starts the command as execvp(3) would, so as flock(1) does. */
static int pl_start(pid_t *pid, const char *const *argv, const int *keep, size_t nkeep,
                    const sigset_t *child_mask) {
  int rc = pl_spawn(pid, argv[0], 1, argv, keep, nkeep, child_mask);
  if (rc != ENOEXEC) return rc;
  char script[PORTALOCK_PATH_MAX];
  const char **sh_argv = pl_script_argv(argv, script, sizeof script, &rc);
  if (sh_argv == NULL) return rc;
  rc = pl_spawn(pid, "/bin/sh", 0, sh_argv, keep, nkeep, child_mask);
  free(sh_argv);
  return rc;
}

/* What a wait watches besides signals: `fd` (-1: nothing), and what happens once it fired. */
typedef struct pl_watch {
  int fd;
  double grace;   /* seconds from the SIGTERM to the SIGKILL */
  int signal_fd;  /* readable while a signal is pending, or -1 (pl_platform_signal_open) */
  int fired;      /* fd became readable and the command was sent SIGTERM */
  double kill_at; /* when the command gets SIGKILL (INFINITY: not, or already sent) */
} pl_watch;

/* 1 when `fd` is readable now (POLLIN, or a hang-up or error, which a read would report). */
static int pl_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
  return poll(&p, 1, 0) > 0;
}

/* Waits at most `seconds` for one of `signals`, or while the watch is armed for its
 * descriptor. Returns the signal taken (with `info`), 0 when the watched descriptor is
 * readable, or -1 when neither came (or EINTR). */
static int pl_next_event(const sigset_t *signals, const pl_watch *watch, double seconds,
                         siginfo_t *info) {
  if (watch->fd >= 0 && !watch->fired) {
    if (watch->signal_fd >= 0) {
      struct pollfd fds[2] = {{.fd = watch->signal_fd, .events = POLLIN, .revents = 0},
                              {.fd = watch->fd, .events = POLLIN, .revents = 0}};
      if (poll(fds, 2, pl_poll_ms(seconds)) <= 0) return -1;
      if (fds[0].revents == 0) return 0;
      seconds = 0; /* a signal is pending: take it (the watch is seen on the next round) */
    } else {
      if (pl_readable(watch->fd)) return 0;
      if (seconds > PL_WATCH_POLL_SECONDS) seconds = PL_WATCH_POLL_SECONDS;
    }
  }
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  return sigtimedwait(signals, info, &ts);
}

/* How long the wait may last before it must look at the command again, sending the SIGKILL
 * that is due. */
static double pl_next_check(pid_t pid, pl_watch *watch) {
  double wait = PL_CHILD_CHECK_SECONDS;
  if (!watch->fired || isinf(watch->kill_at)) return wait;
  double left = watch->kill_at - portalock_monotonic();
  if (left > 0) return left < wait ? left : wait;
  kill(pid, SIGKILL);
  watch->kill_at = INFINITY;
  return wait;
}

/* Waits for `pid`, forwarding what arrives in `signals` (SIGCHLD among them) meanwhile, and
 * ending it (SIGTERM, then SIGKILL after the grace) once the watched descriptor is readable.
 * Returns 0 with the status, or an errno value. */
static int pl_wait_forwarding(pid_t pid, const sigset_t *signals, pl_watch *watch, int *status) {
  for (;;) {
    pid_t done = waitpid(pid, status, WNOHANG);
    if (done == pid) return 0;
    if (done < 0 && errno != EINTR) return errno;
    siginfo_t info;
    int sig = pl_next_event(signals, watch, pl_next_check(pid, watch), &info);
    if (sig == 0) {
      watch->fired = 1;
      watch->kill_at = portalock_monotonic() + watch->grace;
      kill(pid, SIGTERM);
    } else if (sig > 0 && sig != SIGCHLD && !pl_from_terminal(&info)) {
      kill(pid, sig);
    }
  }
}

/* Runs the command (arguments checked), watching `watch` while it runs. */
static portalock_status pl_run(const char *const *argv, const int *keep, size_t nkeep,
                               pl_watch *watch, int *exit_code, portalock_error *err) {
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
  /* Without it (ENOSYS, EMFILE) a watching wait looks at the watch between short waits. */
  watch->signal_fd = watch->fd >= 0 ? pl_platform_signal_open(&signals) : -1;

  pid_t pid;
  int started = pl_start(&pid, argv, keep, nkeep, &caller_mask);
  int waited = 0, status = 0;
  if (started == 0) waited = pl_wait_forwarding(pid, &signals, watch, &status);

  if (watch->signal_fd >= 0) close(watch->signal_fd);
  pthread_sigmask(SIG_SETMASK, &caller_mask, NULL);
  if (chld_ignored) sigaction(SIGCHLD, &chld, NULL);
  if (started != 0) return pl_fail_sys(err, started, "cannot run", argv[0]);
  /* ECHILD: another thread of the caller reaped the command; it ran, its status is lost. */
  if (waited != 0) return pl_fail_sys(err, waited, "lost the status of", argv[0]);
  *exit_code = pl_exit_code(status);
  return PORTALOCK_OK;
}

portalock_status portalock_command_run(const char *const *argv, const int *keep, size_t nkeep,
                                       int *exit_code, portalock_error *err) {
  pl_clear(err);
  if (exit_code == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "command_run: `exit_code` is NULL");
  portalock_status st = pl_check_command("command_run", argv, keep, nkeep, err);
  if (st != PORTALOCK_OK) return st;
  pl_watch none = {.fd = -1, .grace = 0, .signal_fd = -1, .fired = 0, .kill_at = INFINITY};
  return pl_run(argv, keep, nkeep, &none, exit_code, err);
}

portalock_status portalock_command_run_watching(const char *const *argv, const int *keep,
                                                size_t nkeep, int watch_fd, double grace,
                                                int *exit_code, int *watch_fired,
                                                portalock_error *err) {
  pl_clear(err);
  if (exit_code == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "command_run_watching: `exit_code` is NULL");
  if (watch_fired == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "command_run_watching: `watch_fired` is NULL");
  portalock_status st = pl_check_command("command_run_watching", argv, keep, nkeep, err);
  if (st != PORTALOCK_OK) return st;
  if (watch_fd < 0 || fcntl(watch_fd, F_GETFD) < 0)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "command_run_watching: `watch_fd` (%d) is not an open descriptor", watch_fd);
  st = pl_check_rule(PORTALOCK_RULE_TIMEOUT, "command_run_watching: `grace`", grace, err);
  if (st != PORTALOCK_OK) return st;
  pl_watch watch = {
      .fd = watch_fd, .grace = grace, .signal_fd = -1, .fired = 0, .kill_at = INFINITY};
  st = pl_run(argv, keep, nkeep, &watch, exit_code, err);
  if (st == PORTALOCK_OK) *watch_fired = watch.fired;
  return st;
}

portalock_status portalock_command_exec(const char *const *argv, const int *keep, size_t nkeep,
                                        portalock_error *err) {
  pl_clear(err);
  portalock_status st = pl_check_command("command_exec", argv, keep, nkeep, err);
  if (st != PORTALOCK_OK) return st;
  unsigned char *had = nkeep > 0 ? calloc(nkeep, 1) : NULL;
  if (nkeep > 0 && had == NULL) return pl_fail_sys(err, ENOMEM, "cannot run", argv[0]);
  pl_set_cloexec(keep, nkeep, had, 0);
  char *const *args = (char *const *)argv;
  execvp(argv[0], args);
  int rc = errno;
  if (rc == ENOEXEC) { /* glibc's execvp runs such a file with sh itself; others may not */
    char script[PORTALOCK_PATH_MAX];
    const char **sh_argv = pl_script_argv(argv, script, sizeof script, &rc);
    if (sh_argv != NULL) {
      execv("/bin/sh", (char *const *)sh_argv);
      rc = errno;
      free(sh_argv);
    }
  }
  pl_set_cloexec(keep, nkeep, had, 1);
  free(had);
  return pl_fail_sys(err, rc, "cannot run", argv[0]);
}
