/* Test helpers shared by the core's unit tests (see testutil.h). */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *tu_name = "test";
static pid_t tu_main_pid;
static char tu_scratch_dir[PORTALOCK_PATH_MAX];

void tu_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: FAIL %s:%d (pid %ld): ", tu_name, file, line, (long)getpid());
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(NULL);
  if (getpid() == tu_main_pid) exit(1);
  _exit(1);
}

void tu_group(const char *name) {
  printf("%s: %s\n", tu_name, name);
  fflush(stdout);
}

void tu_init(const char *test_name) {
  tu_name = test_name;
  tu_main_pid = getpid();
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  alarm(55); /* a hang ends the test with SIGALRM before ctest's own timeout */
}

int tu_done(void) {
  printf("%s: all checks passed\n", tu_name);
  return 0;
}

double tu_now(void) {
  return portalock_monotonic();
}

void tu_sleep(double seconds) {
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---------------------------------------------------------------- files */

static int tu_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  remove(path);
  return 0;
}

static void tu_remove_scratch(void) {
  if (getpid() == tu_main_pid && tu_scratch_dir[0] != '\0')
    nftw(tu_scratch_dir, tu_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_scratch(void) {
  if (tu_scratch_dir[0] != '\0') return tu_scratch_dir;
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0') base = "/tmp";
  snprintf(tu_scratch_dir, sizeof tu_scratch_dir, "%s/portalock-%s-XXXXXX", base, tu_name);
  if (mkdtemp(tu_scratch_dir) == NULL)
    tu_fail(__FILE__, __LINE__, "mkdtemp(%s): %s", tu_scratch_dir, strerror(errno));
  atexit(tu_remove_scratch);
  return tu_scratch_dir;
}

const char *tu_path(const char *name) {
  static char ring[8][PORTALOCK_PATH_MAX];
  static int next;
  char *buf = ring[next++ % 8];
  int len = snprintf(buf, PORTALOCK_PATH_MAX, "%s/%s", tu_scratch(), name);
  if (len < 0 || len >= PORTALOCK_PATH_MAX) tu_fail(__FILE__, __LINE__, "path too long: %s", name);
  return buf;
}

void tu_write_file(const char *path, const char *text) {
  int fd = tu_open(path, O_WRONLY | O_CREAT | O_TRUNC);
  size_t len = strlen(text);
  if (write(fd, text, len) != (ssize_t)len)
    tu_fail(__FILE__, __LINE__, "write(%s): %s", path, strerror(errno));
  close(fd);
}

long tu_read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  return (long)n;
}

int tu_exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

int tu_open(const char *path, int oflags) {
  int fd = open(path, oflags | O_CLOEXEC, 0644);
  if (fd < 0) tu_fail(__FILE__, __LINE__, "open(%s): %s", path, strerror(errno));
  return fd;
}

int tu_count_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) tu_fail(__FILE__, __LINE__, "opendir(/proc/self/fd): %s", strerror(errno));
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(dir);
  return n - 1; /* the directory's own descriptor */
}

int tu_count_inotify(pid_t pid) {
  char dir[64], link[PATH_MAX + 64], target[PATH_MAX];
  snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len < 0) continue;
    target[len] = '\0';
    n += strcmp(target, "anon_inode:inotify") == 0;
  }
  closedir(d);
  return n;
}

/* ---------------------------------------------------------------- processes */

pid_t tu_fork(tu_proc *p) {
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0)
    tu_fail(__FILE__, __LINE__, "pipe2: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) tu_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    p->pid = 0;
    p->from = up[1];
    p->to = down[0];
    return 0;
  }
  close(up[1]);
  close(down[0]);
  p->pid = pid;
  p->from = up[0];
  p->to = down[1];
  return pid;
}

static int tu_out_fd(const tu_proc *p) {
  return p->pid == 0 ? p->from : p->to;
}

static int tu_in_fd(const tu_proc *p) {
  return p->pid == 0 ? p->to : p->from;
}

static void tu_write_all(int fd, const void *buf, size_t len) {
  if (write(fd, buf, len) != (ssize_t)len)
    tu_fail(__FILE__, __LINE__, "pipe write: %s", strerror(errno));
}

static long tu_read_exact(int fd, void *buf, size_t len) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
  int r;
  do
    r = poll(&pfd, 1, 30000);
  while (r < 0 && errno == EINTR);
  if (r == 0) tu_fail(__FILE__, __LINE__, "no message from the other process within 30 s");
  ssize_t n;
  do
    n = read(fd, buf, len);
  while (n < 0 && errno == EINTR);
  return (long)n;
}

void tu_send(tu_proc *p, char c) {
  tu_write_all(tu_out_fd(p), &c, 1);
}

int tu_recv(tu_proc *p) {
  unsigned char c;
  return tu_read_exact(tu_in_fd(p), &c, 1) == 1 ? c : -1;
}

void tu_send_long(tu_proc *p, long v) {
  tu_write_all(tu_out_fd(p), &v, sizeof v);
}

long tu_recv_long(tu_proc *p) {
  long v;
  if (tu_read_exact(tu_in_fd(p), &v, sizeof v) != (long)sizeof v)
    tu_fail(__FILE__, __LINE__, "expected a number from the other process");
  return v;
}

void tu_close_to(tu_proc *p) {
  if (p->to >= 0) close(p->to);
  p->to = -1;
}

int tu_reap(tu_proc *p) {
  int status;
  pid_t r;
  do
    r = waitpid(p->pid, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r != p->pid) tu_fail(__FILE__, __LINE__, "waitpid(%ld): %s", (long)p->pid, strerror(errno));
  tu_close_to(p);
  if (p->from >= 0) close(p->from);
  p->from = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void tu_kill(tu_proc *p) {
  kill(p->pid, SIGKILL);
  tu_reap(p);
}

void tu_child_exit(int code) {
  fflush(NULL);
  _exit(code);
}

void tu_hold(tu_proc *p, const char *path, portalock_backend backend) {
  if (tu_fork(p) != 0) {
    if (tu_recv(p) != 'R') tu_fail(__FILE__, __LINE__, "holder of %s did not get the lock", path);
    return;
  }
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.backend = backend;
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  tu_send(p, 'R');
  tu_recv(p); /* a byte or end of file: either way, let go */
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  portalock_lock_free(lock);
  tu_child_exit(0);
}

void tu_hold_end(tu_proc *p) {
  tu_close_to(p);
  CHECK_INT(tu_reap(p), 0);
}

int tu_probe_locked(const char *path, portalock_backend backend) {
  tu_proc p;
  if (tu_fork(&p) == 0) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) tu_child_exit(10);
    portalock_error err;
    portalock_status s = portalock_lock(fd, PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB, backend, &err);
    if (s != PORTALOCK_OK && s != PORTALOCK_ALREADY_LOCKED)
      fprintf(stderr, "probe of %s: %s: %s\n", path, portalock_status_name(s), err.message);
    tu_child_exit(s == PORTALOCK_OK ? 0 : s == PORTALOCK_ALREADY_LOCKED ? 1 : 11);
  }
  int code = tu_reap(&p);
  if (code != 0 && code != 1) tu_fail(__FILE__, __LINE__, "probe of %s ended with %d", path, code);
  return code;
}

int tu_run(char *const argv[]) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) tu_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
  if (pid == 0) {
    execvp(argv[0], argv);
    _exit(127);
  }
  tu_proc p = {.pid = pid, .from = -1, .to = -1};
  return tu_reap(&p);
}

int tu_other_user(const char *what, uid_t *uid, gid_t *gid) {
  struct passwd *nobody = getpwnam("nobody");
  if (geteuid() != 0 || nobody == NULL) {
    printf("%s: SKIP %s: needs root and a user 'nobody'\n", tu_name, what);
    return 0;
  }
  *uid = nobody->pw_uid;
  *gid = nobody->pw_gid;
  return 1;
}

void tu_as_user(uid_t uid, gid_t gid, void (*body)(void)) {
  tu_proc child;
  if (tu_fork(&child) == 0) {
    if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
      tu_child_exit(10);
    body();
    tu_child_exit(0);
  }
  CHECK_INT(tu_reap(&child), 0);
}

const char *tu_shared_dir(void) {
  const char *dir = tu_path("shared");
  if (chmod(tu_scratch(), 0711) != 0 || (mkdir(dir, 0777) != 0 && errno != EEXIST) ||
      chmod(dir, 01777) != 0)
    tu_fail(__FILE__, __LINE__, "make the shared directory %s: %s", dir, strerror(errno));
  return dir;
}
