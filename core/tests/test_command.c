/* Tests portalock_command_run, portalock_command_run_watching and portalock_command_exec with
 * real processes: exit statuses, start failures, argument checks, inherited descriptors, signal
 * forwarding, a watched descriptor that ends the command, and the caller's signal state
 * afterwards. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* No single wait of this test lasts longer than this. */
#define WAIT_SECONDS 10.0
/* reap_within's result for a process that died of a signal: KILLED + the signal's number. */
#define KILLED 1000

/* Runs `sh -c script [args...]` and returns the status; *code is set on OK. */
static portalock_status run_sh(const char *script, const int *keep, size_t nkeep, int *code,
                               portalock_error *err) {
  const char *argv[] = {"sh", "-c", script, NULL};
  return portalock_command_run(argv, keep, nkeep, code, err);
}

/* The exit code of `sh -c script`, failing the test unless the call returns OK. */
static int sh_code(const char *script, const int *keep, size_t nkeep) {
  portalock_error err;
  int code = -99;
  CHECK_OK(run_sh(script, keep, nkeep, &code, &err), &err);
  CHECK_INT(err.status, PORTALOCK_OK);
  CHECK_STR(err.message, "");
  return code;
}

/* Reaps `pid` within WAIT_SECONDS (SIGKILL and failure otherwise); returns its exit status, or
 * KILLED + N when it died of signal N. Leaves any pipes alone, unlike tu_reap. */
static int reap_within(pid_t pid) {
  double deadline = tu_now() + WAIT_SECONDS;
  for (;;) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : KILLED + WTERMSIG(status);
    if (r < 0 && errno != EINTR)
      tu_fail(__FILE__, __LINE__, "waitpid(%ld): %s", (long)pid, strerror(errno));
    if (tu_now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      tu_fail(__FILE__, __LINE__, "process %ld still running after %g s", (long)pid, WAIT_SECONDS);
    }
    tu_sleep(0.01);
  }
}

/* One byte from `fd` within WAIT_SECONDS: the byte, or -1 at end of file. */
static int read_byte_within(int fd) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
  double deadline = tu_now() + WAIT_SECONDS;
  for (;;) {
    int left = (int)((deadline - tu_now()) * 1000);
    if (left <= 0) tu_fail(__FILE__, __LINE__, "nothing to read within %g s", WAIT_SECONDS);
    int r = poll(&pfd, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) tu_fail(__FILE__, __LINE__, "poll: %s", strerror(errno));
    if (r == 0) continue;
    unsigned char c;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) tu_fail(__FILE__, __LINE__, "read: %s", strerror(errno));
    return n == 1 ? c : -1;
  }
}

/* The calling thread's signal mask equals `expected` for every signal. */
static void check_mask(const sigset_t *expected) {
  sigset_t now;
  CHECK_INT(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
  for (int sig = 1; sig < NSIG; sig++) {
    int want = sigismember(expected, sig);
    if (want < 0) continue;
    if (sigismember(&now, sig) != want)
      tu_fail(__FILE__, __LINE__, "signal %d is %s after the call, %s before", sig,
              want ? "unblocked" : "blocked", want ? "blocked" : "unblocked");
  }
}

/* SIGCHLD's disposition equals `expected`. */
static void check_chld(const struct sigaction *expected) {
  struct sigaction now;
  CHECK_INT(sigaction(SIGCHLD, NULL, &now), 0);
  CHECK(now.sa_handler == expected->sa_handler);
  CHECK_INT(now.sa_flags, expected->sa_flags);
}

/* Sets SIGCHLD's disposition and returns it as the system reports it. */
static struct sigaction set_chld(void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  CHECK_INT(sigaction(SIGCHLD, &sa, NULL), 0);
  CHECK_INT(sigaction(SIGCHLD, NULL, &sa), 0);
  return sa;
}

/* ---------------------------------------------------------------- exit statuses */

static void test_exit_status(void) {
  CHECK_INT(sh_code("exit 0", NULL, 0), 0);
  CHECK_INT(sh_code("exit 3", NULL, 0), 3);
  CHECK_INT(sh_code("exit 255", NULL, 0), 255);
  CHECK_INT(sh_code("kill -TERM $$", NULL, 0), 128 + SIGTERM);
  CHECK_INT(sh_code("kill -KILL $$", NULL, 0), 128 + SIGKILL);
  CHECK_INT(sh_code("kill -INT $$", NULL, 0), 128 + SIGINT);

  /* argv reaches the command as given, with the caller's environment; an absolute path and a
   * name searched in PATH both run. */
  const char *args[] = {"/bin/sh", "-c",  "test \"$1\" = 'a b' && test \"$#\" = 1",
                        "sh",      "a b", NULL};
  portalock_error err;
  int code = -99;
  CHECK_OK(portalock_command_run(args, NULL, 0, &code, &err), &err);
  CHECK_INT(code, 0);
  CHECK_INT(setenv("PORTALOCK_TEST_COMMAND", "x y", 1), 0);
  CHECK_INT(sh_code("test \"$PORTALOCK_TEST_COMMAND\" = 'x y'", NULL, 0), 0);
  CHECK_INT(unsetenv("PORTALOCK_TEST_COMMAND"), 0);
  CHECK_INT(sh_code("test -z \"${PORTALOCK_TEST_COMMAND+set}\"", NULL, 0), 0);

  /* A NULL `err` is allowed. */
  code = -99;
  CHECK_INT(run_sh("exit 5", NULL, 0, &code, NULL), PORTALOCK_OK);
  CHECK_INT(code, 5);

  /* The call returns only once the command has ended, and reaps it. */
  double t0 = tu_now();
  CHECK_INT(sh_code("sleep 0.3; exit 2", NULL, 0), 2);
  CHECK_BETWEEN(tu_now() - t0, 0.25, WAIT_SECONDS);
  CHECK_INT(waitpid(-1, NULL, WNOHANG), -1);
  CHECK_INT(errno, ECHILD);
}

/* ---------------------------------------------------------------- start failures */

static void check_start_failure(const char *command, int errnum) {
  const char *argv[] = {command, NULL};
  portalock_error err;
  int code = -99;
  CHECK_STATUS(portalock_command_run(argv, NULL, 0, &code, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.status, PORTALOCK_LOCK_EXCEPTION);
  if (err.errnum != errnum)
    tu_fail(__FILE__, __LINE__, "%s: errnum %d (%s), expected %d (%s)", command, err.errnum,
            strerror(err.errnum), errnum, strerror(errnum));
  CHECK_INT(code, -99);
  CHECK_CONTAINS(err.message, command);
  CHECK_CONTAINS(err.message, strerror(errnum));
  CHECK_STR(err.path, command);
  CHECK_INT(waitpid(-1, NULL, WNOHANG), -1); /* no child left behind */
  CHECK_STATUS(portalock_command_run(argv, NULL, 0, &code, NULL), PORTALOCK_LOCK_EXCEPTION, &err);
}

static void test_start_failures(void) {
  check_start_failure("portalock-test-no-such-command", ENOENT);
  check_start_failure(tu_path("missing"), ENOENT);

  const char *plain = tu_path("not-executable");
  tu_write_file(plain, "#!/bin/sh\nexit 0\n");
  CHECK_INT(chmod(plain, 0644), 0);
  check_start_failure(plain, EACCES);
  check_start_failure(tu_scratch(), EACCES); /* a directory */
}

/* As execvp(3) and flock(1) do, an executable without a "#!" line runs as a /bin/sh script,
 * named by a path or found in PATH. */
static void test_script_without_interpreter(void) {
  const char *script = tu_path("no-interpreter");
  tu_write_file(script, "test \"$1\" = arg || exit 9\nexit 4\n");
  CHECK_INT(chmod(script, 0755), 0);
  const char *by_path[] = {script, "arg", NULL};
  portalock_error err;
  int code = -99;
  CHECK_STATUS(portalock_command_run(by_path, NULL, 0, &code, &err), PORTALOCK_OK, &err);
  CHECK_INT(code, 4);
  const char *old_path = getenv("PATH");
  char *saved = old_path != NULL ? strdup(old_path) : NULL;
  CHECK_INT(setenv("PATH", tu_scratch(), 1), 0);
  const char *by_name[] = {"no-interpreter", "arg", NULL};
  code = -99;
  CHECK_STATUS(portalock_command_run(by_name, NULL, 0, &code, &err), PORTALOCK_OK, &err);
  CHECK_INT(code, 4);
  if (saved != NULL) {
    setenv("PATH", saved, 1);
    free(saved);
  } else {
    unsetenv("PATH");
  }
}

/* ---------------------------------------------------------------- argument checks */

static void check_invalid(const char *const *argv, const int *keep, size_t nkeep, int *code,
                          const char *needle) {
  portalock_error err;
  portalock_status s = portalock_command_run(argv, keep, nkeep, code, &err);
  if (s != PORTALOCK_INVALID)
    tu_fail(__FILE__, __LINE__, "expected Invalid about \"%s\", got %s (message \"%s\")", needle,
            portalock_status_name(s), err.message);
  CHECK_INT(err.status, PORTALOCK_INVALID);
  CHECK(err.message[0] != '\0');
  CHECK_CONTAINS(err.message, needle);
  if (code != NULL) CHECK_INT(*code, -99);
  CHECK_INT(portalock_command_run(argv, keep, nkeep, code, NULL), PORTALOCK_INVALID);
}

static void test_invalid(void) {
  const char *ok[] = {"sh", "-c", "exit 0", NULL};
  const char *empty[] = {NULL};
  const char *blank[] = {"", NULL};
  int code = -99;
  check_invalid(NULL, NULL, 0, &code, "argv");
  check_invalid(empty, NULL, 0, &code, "argv");
  check_invalid(blank, NULL, 0, &code, "argv");
  check_invalid(ok, NULL, 0, NULL, "exit_code");
  check_invalid(ok, NULL, 1, &code, "keep");

  int minus[] = {-1};
  check_invalid(ok, minus, 1, &code, "keep[0] (-1)");

  int open_fd = tu_open(tu_path("open"), O_RDWR | O_CREAT);
  int fd = tu_open(tu_path("closed"), O_RDWR | O_CREAT);
  CHECK_INT(close(fd), 0);
  int closed[] = {fd};
  char needle[64];
  snprintf(needle, sizeof needle, "keep[0] (%d)", fd);
  check_invalid(ok, closed, 1, &code, needle);

  int second[] = {open_fd, fd};
  snprintf(needle, sizeof needle, "keep[1] (%d)", fd);
  check_invalid(ok, second, 2, &code, needle);
  CHECK_INT(close(open_fd), 0);

  /* nkeep == 0 ignores `keep`. */
  CHECK_INT(sh_code("exit 0", closed, 0), 0);
}

/* ---------------------------------------------------------------- inherited descriptors */

static int fd_seen(int fd, const int *keep, size_t nkeep) {
  char script[96];
  snprintf(script, sizeof script, "test -e /proc/self/fd/%d", fd);
  int code = sh_code(script, keep, nkeep);
  CHECK(code == 0 || code == 1);
  return code == 0;
}

static void test_keep(void) {
  const char *path = tu_path("keep.lock");
  int held = tu_open(path, O_RDWR | O_CREAT);
  CHECK_INT(flock(held, LOCK_EX | LOCK_NB), 0);
  int other = tu_open(tu_path("other"), O_RDWR | O_CREAT);
  int high = fcntl(held, F_DUPFD_CLOEXEC, 40); /* beyond a shell's single-digit descriptors */
  CHECK(high >= 40);
  int inheritable = open(tu_path("inheritable"), O_RDWR | O_CREAT, 0644);
  CHECK(inheritable >= 0);

  int keep[] = {held, high};
  CHECK_INT(fd_seen(held, keep, 2), 1);
  CHECK_INT(fd_seen(high, keep, 2), 1);
  CHECK_INT(fd_seen(other, keep, 2), 0); /* O_CLOEXEC and not in keep */
  CHECK_INT(fd_seen(held, NULL, 0), 0);
  CHECK_INT(fd_seen(held, &other, 1), 0);
  CHECK_INT(fd_seen(inheritable, &inheritable, 1), 1);

  /* The flag is cleared in the child only. */
  CHECK(fcntl(held, F_GETFD) & FD_CLOEXEC);
  CHECK(fcntl(high, F_GETFD) & FD_CLOEXEC);
  CHECK(fcntl(other, F_GETFD) & FD_CLOEXEC);
  CHECK_INT(fcntl(inheritable, F_GETFD) & FD_CLOEXEC, 0);

  /* With flock(1) at hand: the command has the very same open file description, so the lock
   * in hand, while a fresh open of the file cannot get it. */
  if (sh_code("command -v flock >/dev/null", NULL, 0) == 0) {
    char script[PORTALOCK_PATH_MAX + 64];
    snprintf(script, sizeof script, "flock -n -x %d 2>/dev/null", held);
    CHECK_INT(sh_code(script, keep, 2), 0);
    CHECK(sh_code(script, NULL, 0) != 0); /* not inherited: a bad descriptor */
    snprintf(script, sizeof script, "flock -n -x '%s' true", path);
    CHECK_INT(sh_code(script, keep, 2), 1);
  }
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);

  close(held);
  close(high);
  close(other);
  close(inheritable);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 0);
}

/* A runner child locks a file (O_CLOEXEC descriptor) and runs a command that keeps it; the
 * runner is SIGKILLed: the lock lasts while the command runs, and ends with it. */
static void test_keep_outlives_caller(void) {
  const char *path = tu_path("outlive.lock");
  tu_proc p;
  if (tu_fork(&p) == 0) {
    int fd = tu_open(path, O_RDWR | O_CREAT);
    CHECK_INT(flock(fd, LOCK_EX | LOCK_NB), 0);
    /* The command reports on stdout and waits for end of file on stdin. */
    CHECK(dup2(p.to, STDIN_FILENO) == STDIN_FILENO);
    CHECK(dup2(p.from, STDOUT_FILENO) == STDOUT_FILENO);
    int code = -99;
    portalock_error err;
    CHECK_OK(run_sh("printf R; read x; exit 0", &fd, 1, &code, &err), &err);
    tu_child_exit(code);
  }
  CHECK_INT(read_byte_within(p.from), 'R');
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_INT(kill(p.pid, SIGKILL), 0);
  CHECK_INT(reap_within(p.pid), KILLED + SIGKILL);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1); /* held by the command alone */
  tu_close_to(&p);                                              /* the command's read ends */
  CHECK_INT(read_byte_within(p.from), -1);                      /* and so does the command */
  close(p.from);
  double deadline = tu_now() + WAIT_SECONDS;
  while (tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK) != 0) {
    if (tu_now() > deadline) tu_fail(__FILE__, __LINE__, "%s still locked", path);
    tu_sleep(0.02);
  }
}

/* ---------------------------------------------------------------- signal forwarding */

/* A runner child runs `script` (which prints R once its trap is set); the test sends `sig` to
 * the runner. Returns the runner's exit status: the command's exit code when the call returned
 * OK (100 + status otherwise), or KILLED + N if the runner died of signal N. */
static int run_signalled(const char *script, int sig) {
  tu_proc p;
  if (tu_fork(&p) == 0) {
    /* An ignored signal stays ignored in the command, and a shell cannot trap it then. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    CHECK_INT(pthread_sigmask(SIG_SETMASK, &none, NULL), 0);
    CHECK(dup2(p.from, STDOUT_FILENO) == STDOUT_FILENO);
    int code = -99;
    portalock_error err;
    portalock_status s = run_sh(script, NULL, 0, &code, &err);
    if (s != PORTALOCK_OK) {
      fprintf(stderr, "runner: %s: %s\n", portalock_status_name(s), err.message);
      tu_child_exit(100 + (int)s);
    }
    check_mask(&none);
    tu_child_exit(code);
  }
  CHECK_INT(read_byte_within(p.from), 'R');
  tu_sleep(0.3);
  CHECK_INT(kill(p.pid, sig), 0); /* si_code SI_USER */
  int status = reap_within(p.pid);
  close(p.from);
  tu_close_to(&p);
  return status;
}

static void test_forwarding(void) {
  static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
  static const char *const names[] = {"TERM", "INT", "HUP"};
  for (int i = 0; i < 3; i++) {
    char script[160];
    snprintf(script, sizeof script, "trap 'exit 7' %s; printf R; while :; do sleep 0.05; done",
             names[i]);
    int status = run_signalled(script, sigs[i]);
    if (status != 7)
      tu_fail(__FILE__, __LINE__, "SIG%s: runner ended with %d, expected 7", names[i], status);
  }
  /* A command that ignores the signal carries on, and so does the caller. */
  CHECK_INT(run_signalled("trap '' TERM; printf R; sleep 0.5; exit 9", SIGTERM), 9);
  /* A command without a trap dies of the forwarded signal; the caller reports it. */
  CHECK_INT(run_signalled("printf R; while :; do sleep 0.05; done", SIGTERM), 128 + SIGTERM);
}

/* ---------------------------------------------------------------- the caller's signal state */

static int chld_calls;
static void on_chld(int sig) {
  (void)sig;
  chld_calls++;
}

static void test_signal_state(void) {
  sigset_t before;
  struct sigaction chld_before;
  CHECK_INT(pthread_sigmask(SIG_BLOCK, NULL, &before), 0);
  CHECK_INT(sigaction(SIGCHLD, NULL, &chld_before), 0);
  CHECK_INT(sh_code("exit 1", NULL, 0), 1);
  check_mask(&before);
  check_chld(&chld_before);
  check_start_failure("portalock-test-no-such-command", ENOENT);
  check_mask(&before);
  check_chld(&chld_before);

  /* A mask with forwarded signals and others in it is restored, and the command starts with
   * it: SIGUSR1 blocked in the caller is blocked in the command. */
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGCHLD);
  sigset_t saved;
  CHECK_INT(pthread_sigmask(SIG_BLOCK, &blocked, &saved), 0);
  sigset_t expected;
  CHECK_INT(pthread_sigmask(SIG_BLOCK, NULL, &expected), 0);
  CHECK_INT(sh_code("kill -USR1 $$; exit 5", NULL, 0), 5);
  check_mask(&expected);
  CHECK_INT(pthread_sigmask(SIG_SETMASK, &saved, NULL), 0);
  check_mask(&before);
  /* Unblocked in the caller, unblocked in the command. */
  CHECK_INT(sh_code("kill -USR1 $$; exit 5", NULL, 0), 128 + SIGUSR1);

  /* An ignored SIGCHLD: the status is still reported, SIG_IGN is restored. */
  struct sigaction ign = set_chld(SIG_IGN, 0);
  CHECK_INT(sh_code("exit 4", NULL, 0), 4);
  CHECK_INT(sh_code("kill -TERM $$", NULL, 0), 128 + SIGTERM);
  check_chld(&ign);
  check_mask(&before);
  check_start_failure("portalock-test-no-such-command", ENOENT);
  check_chld(&ign);
  portalock_error err;
  int code = -99;
  CHECK_STATUS(run_sh("exit 0", NULL, 1, &code, &err), PORTALOCK_INVALID, &err);
  check_chld(&ign);

  /* SA_NOCLDWAIT would let the kernel reap the command: the status is still reported. */
  struct sigaction nocldwait = set_chld(SIG_DFL, SA_NOCLDWAIT);
  CHECK_INT(sh_code("exit 3", NULL, 0), 3);
  check_chld(&nocldwait);
  check_mask(&before);

  /* A handler is left in place. */
  struct sigaction handled = set_chld(on_chld, SA_RESTART);
  CHECK_INT(sh_code("exit 6", NULL, 0), 6);
  check_chld(&handled);
  check_mask(&before);

  CHECK_INT(sigaction(SIGCHLD, &chld_before, NULL), 0);

  /* A SIGTERM the caller blocks and has pending is the caller's: it is not forwarded and
   * stays pending. */
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  CHECK_INT(pthread_sigmask(SIG_BLOCK, &term, &saved), 0);
  CHECK_INT(raise(SIGTERM), 0);
  CHECK_INT(sh_code("sleep 0.3; exit 0", NULL, 0), 0);
  sigset_t pending;
  CHECK_INT(sigpending(&pending), 0);
  CHECK_INT(sigismember(&pending, SIGTERM), 1);
  int taken = 0;
  CHECK_INT(sigwait(&term, &taken), 0);
  CHECK_INT(taken, SIGTERM);
  CHECK_INT(pthread_sigmask(SIG_SETMASK, &saved, NULL), 0);
  check_mask(&before);
}

/* ---------------------------------------------------------------- watching a descriptor */

/* The read end of a pipe (close-on-exec) whose write end only a forked child keeps: after
 * `delay` seconds it writes one byte (when `write_byte`) and exits, closing it. *writer is the
 * child's PID. */
static int delayed_pipe(double delay, int write_byte, pid_t *writer) {
  int fds[2];
  CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
  *writer = fork();
  CHECK(*writer >= 0);
  if (*writer == 0) {
    close(fds[0]);
    tu_sleep(delay);
    if (write_byte && write(fds[1], "L", 1) != 1) _exit(1);
    _exit(0);
  }
  CHECK_INT(close(fds[1]), 0);
  return fds[0];
}

/* Runs `sh -c script` watching `watch_fd` (grace `grace`): the exit code, *fired, and the
 * seconds the call took in *elapsed. Fails the test unless the call returns OK. */
static int watched(const char *script, int watch_fd, double grace, int *fired, double *elapsed) {
  const char *argv[] = {"sh", "-c", script, NULL};
  portalock_error err;
  int code = -99;
  *fired = -99;
  double t0 = tu_now();
  CHECK_OK(portalock_command_run_watching(argv, NULL, 0, watch_fd, grace, &code, fired, &err),
           &err);
  *elapsed = tu_now() - t0;
  CHECK_STR(err.message, "");
  return code;
}

/* Runs `sh -c script` as watched() does, watching a pipe that becomes readable after `delay`
 * seconds (by a byte, or by a hang-up when !write_byte; when 0, before the command starts). */
static int watch_case(const char *script, double delay, int write_byte, double grace, int *fired,
                      double *elapsed) {
  pid_t writer;
  int fd = delayed_pipe(delay, write_byte, &writer);
  if (delay == 0) CHECK_INT(reap_within(writer), 0);
  int code = watched(script, fd, grace, fired, elapsed);
  if (delay > 0) {
    CHECK_INT(kill(writer, SIGKILL), 0); /* it may have ended: a zombie takes signals too */
    reap_within(writer);
  }
  CHECK_INT(close(fd), 0);
  return code;
}

static void test_watch_ends_command(void) {
  int fds = tu_count_fds();
  int fired;
  double elapsed;

  /* The byte arrives after 0.3 s: `sleep 30` ends by SIGTERM at once. */
  CHECK_INT(watch_case("exec sleep 30", 0.3, 1, PORTALOCK_COMMAND_GRACE, &fired, &elapsed),
            128 + SIGTERM);
  CHECK_INT(fired, 1);
  CHECK_BETWEEN(elapsed, 0.25, 3.0);

  /* A command that handles SIGTERM ends its own way, and the call says why it was sent. */
  CHECK_INT(
      watch_case("trap 'exit 7' TERM; while :; do sleep 0.05; done", 0.3, 1, 5.0, &fired, &elapsed),
      7);
  CHECK_INT(fired, 1);
  CHECK_BETWEEN(elapsed, 0.25, 3.0);

  /* One that ignores SIGTERM gets SIGKILL once the grace has passed. */
  CHECK_INT(watch_case("trap '' TERM; exec sleep 30", 0.2, 1, 0.5, &fired, &elapsed),
            128 + SIGKILL);
  CHECK_INT(fired, 1);
  CHECK_BETWEEN(elapsed, 0.65, 4.0);

  /* A hang-up (the writer gone without writing) fires too: a read would no longer block. */
  CHECK_INT(watch_case("exec sleep 30", 0.2, 0, 5.0, &fired, &elapsed), 128 + SIGTERM);
  CHECK_INT(fired, 1);
  CHECK_BETWEEN(elapsed, 0.15, 3.0);

  /* Readable from the start: the command is ended as soon as it runs. */
  CHECK_INT(watch_case("exec sleep 30", 0, 1, 5.0, &fired, &elapsed), 128 + SIGTERM);
  CHECK_INT(fired, 1);
  CHECK_BETWEEN(elapsed, 0.0, 3.0);

  /* A command that ends before the watch fires: its own status, not fired. */
  CHECK_INT(watch_case("sleep 0.2; exit 3", 5.0, 1, 5.0, &fired, &elapsed), 3);
  CHECK_INT(fired, 0);

  /* The command does not inherit the watched descriptor. */
  pid_t writer;
  int fd = delayed_pipe(5.0, 1, &writer);
  char script[96];
  snprintf(script, sizeof script, "test -e /proc/self/fd/%d && exit 8; exit 0", fd);
  CHECK_INT(watched(script, fd, 5.0, &fired, &elapsed), 0);
  CHECK_INT(fired, 0);
  CHECK_INT(kill(writer, SIGKILL), 0);
  CHECK_INT(reap_within(writer), KILLED + SIGKILL);
  CHECK_INT(close(fd), 0);

  CHECK_INT(tu_count_fds(), fds); /* nothing left open (the signal descriptor included) */
  CHECK_INT(waitpid(-1, NULL, WNOHANG), -1);
  CHECK_INT(errno, ECHILD);
}

/* While watching, signals sent to the caller are still forwarded, and the caller's signal
 * state is restored afterwards. */
static void test_watch_forwards(void) {
  sigset_t before;
  struct sigaction chld_before;
  CHECK_INT(pthread_sigmask(SIG_BLOCK, NULL, &before), 0);
  CHECK_INT(sigaction(SIGCHLD, NULL, &chld_before), 0);
  tu_proc p;
  if (tu_fork(&p) == 0) {
    signal(SIGTERM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    CHECK_INT(pthread_sigmask(SIG_SETMASK, &none, NULL), 0);
    CHECK(dup2(p.from, STDOUT_FILENO) == STDOUT_FILENO);
    int fired;
    double elapsed;
    /* p.to stays empty and open while the parent lives: the watch never fires. */
    int code = watched("trap 'exit 7' TERM; printf R; while :; do sleep 0.05; done", p.to, 5.0,
                       &fired, &elapsed);
    check_mask(&none);
    tu_child_exit(fired == 0 ? code : 50 + fired);
  }
  CHECK_INT(read_byte_within(p.from), 'R');
  tu_sleep(0.3);
  CHECK_INT(kill(p.pid, SIGTERM), 0);
  CHECK_INT(reap_within(p.pid), 7);
  close(p.from);
  tu_close_to(&p);

  int fired;
  double elapsed;
  pid_t writer;
  int fd = delayed_pipe(0.2, 1, &writer);
  struct sigaction ign = set_chld(SIG_IGN, 0);
  CHECK_INT(watched("exec sleep 30", fd, 5.0, &fired, &elapsed), 128 + SIGTERM);
  CHECK_INT(fired, 1);
  check_chld(&ign);
  check_mask(&before);
  CHECK_INT(sigaction(SIGCHLD, &chld_before, NULL), 0);
  CHECK_INT(close(fd), 0);
  /* SIGCHLD was ignored while the writer ended: the kernel reaped it, or it is still there. */
  waitpid(writer, NULL, 0);
}

static void check_watch_invalid(int watch_fd, double grace, int *fired, const char *needle) {
  const char *ok[] = {"sh", "-c", "exit 0", NULL};
  portalock_error err;
  int code = -99;
  CHECK_STATUS(portalock_command_run_watching(ok, NULL, 0, watch_fd, grace, &code, fired, &err),
               PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, needle);
  CHECK_INT(code, -99);
  if (fired != NULL) CHECK_INT(*fired, -99);
}

static void test_watch_invalid(void) {
  int open_fd = tu_open(tu_path("watch-open"), O_RDWR | O_CREAT);
  int closed = tu_open(tu_path("watch-closed"), O_RDWR | O_CREAT);
  CHECK_INT(close(closed), 0);
  int fired = -99;
  check_watch_invalid(open_fd, 1.0, NULL, "command_run_watching: `watch_fired` is NULL");
  check_watch_invalid(-1, 1.0, &fired, "`watch_fd` (-1) is not an open descriptor");
  char needle[64];
  snprintf(needle, sizeof needle, "`watch_fd` (%d) is not an open descriptor", closed);
  check_watch_invalid(closed, 1.0, &fired, needle);
  check_watch_invalid(open_fd, -1.0, &fired,
                      "bad command_run_watching: `grace` (-1): must be >= 0");
  check_watch_invalid(open_fd, NAN, &fired, "`grace` (nan)");

  const char *blank[] = {"", NULL};
  portalock_error err;
  int code = -99;
  CHECK_STATUS(portalock_command_run_watching(blank, NULL, 0, open_fd, 1.0, &code, &fired, &err),
               PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "command_run_watching: `argv`");
  const char *ok[] = {"sh", "-c", "exit 0", NULL};
  CHECK_STATUS(portalock_command_run_watching(ok, NULL, 0, open_fd, 1.0, NULL, &fired, &err),
               PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "`exit_code` is NULL");

  /* A command that cannot start: LOCK_EXCEPTION as for command_run, *watch_fired untouched. */
  const char *missing[] = {"portalock-test-no-such-command", NULL};
  CHECK_STATUS(portalock_command_run_watching(missing, NULL, 0, open_fd, 1.0, &code, &fired, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);
  CHECK_INT(fired, -99);
  CHECK_INT(close(open_fd), 0);
}

/* ---------------------------------------------------------------- exec (--no-fork) */

/* In a forked child: portalock_command_exec(argv, keep); the child's exit status (or 99 when
 * the exec returned). */
static int exec_in_child(const char *const *argv, const int *keep, size_t nkeep) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    portalock_command_exec(argv, keep, nkeep, NULL);
    _exit(99);
  }
  return reap_within(pid);
}

static void test_exec(void) {
  /* The command replaces the process and keeps the descriptors of `keep` only. */
  int held = tu_open(tu_path("exec.lock"), O_RDWR | O_CREAT);
  int other = tu_open(tu_path("exec-other"), O_RDWR | O_CREAT);
  char script[128];
  snprintf(script, sizeof script,
           "test -e /proc/self/fd/%d || exit 5; test -e /proc/self/fd/%d && exit 6; exit 7", held,
           other);
  const char *argv[] = {"sh", "-c", script, NULL};
  CHECK_INT(exec_in_child(argv, &held, 1), 7);
  /* As execvp does, a file without "#!" runs as a /bin/sh script. */
  const char *plain = tu_path("exec-no-interpreter");
  tu_write_file(plain, "test \"$1\" = arg || exit 9\nexit 4\n");
  CHECK_INT(chmod(plain, 0755), 0);
  const char *by_path[] = {plain, "arg", NULL};
  CHECK_INT(exec_in_child(by_path, NULL, 0), 4);

  /* A command that cannot start returns, with the close-on-exec flags as they were. */
  const char *missing[] = {"portalock-test-no-such-command", NULL};
  portalock_error err;
  CHECK_STATUS(portalock_command_exec(missing, &held, 1, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);
  CHECK_CONTAINS(err.message, missing[0]);
  CHECK(fcntl(held, F_GETFD) & FD_CLOEXEC);
  const char *blank[] = {"", NULL};
  CHECK_STATUS(portalock_command_exec(blank, NULL, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "command_exec: `argv`");
  CHECK_INT(close(other), 0);
  CHECK_STATUS(portalock_command_exec(argv, &other, 1, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "keep[0]");
  CHECK_INT(close(held), 0);
}

int main(void) {
  tu_init("command");
  tu_group("exit status, 128+N for a signal, argv and environment");
  test_exit_status();
  tu_group("a command that cannot start: ENOENT, EACCES");
  test_start_failures();
  tu_group("a script without #! runs with /bin/sh, as with execvp");
  test_script_without_interpreter();
  tu_group("invalid arguments");
  test_invalid();
  tu_group("kept descriptors are inherited, others are not");
  test_keep();
  tu_group("a kept lock outlives a killed caller, ends with the command");
  test_keep_outlives_caller();
  tu_group("SIGTERM, SIGINT, SIGHUP sent to the caller reach the command");
  test_forwarding();
  tu_group("the caller's signal mask and SIGCHLD disposition are restored");
  test_signal_state();
  tu_group("watching: a readable descriptor ends the command (SIGTERM, SIGKILL after grace)");
  test_watch_ends_command();
  tu_group("watching: signals are still forwarded, the signal state restored");
  test_watch_forwards();
  tu_group("watching: invalid arguments");
  test_watch_invalid();
  tu_group("exec: the command replaces the caller, keeping the kept descriptors");
  test_exec();
  return tu_done();
}
