/* Tests PidFileLock (sidecar lock, PID file, both removed on release, holder PID on
 * contention, waiters converging on the current sidecar), portalock_read_pid and
 * portalock_pid_file_holder. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_pid_file_lock(void) {
  const char *pidfile = tu_path("daemon.pid");
  char sidecar[PORTALOCK_PATH_MAX];
  snprintf(sidecar, sizeof sidecar, "%s.lock", pidfile);
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_pid_file_lock_new(&lock, pidfile, NULL, &err), &err);
  CHECK_STR(portalock_lock_filename(lock), pidfile);
  CHECK_STR(portalock_lock_lock_filename(lock), sidecar);
  CHECK_INT(tu_exists(pidfile), 0);

  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK_INT(portalock_read_pid(pidfile), getpid());
  char buf[64];
  snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  char content[64];
  CHECK(tu_read_file(pidfile, content, sizeof content) > 0);
  CHECK_STR(content, buf);
  CHECK(tu_exists(sidecar));
  CHECK_INT(tu_probe_locked(sidecar, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_exists(pidfile), 0);
  CHECK_INT(tu_exists(sidecar), 0); /* as portalocker 4.x: no file is left behind */
  portalock_lock_free(lock);
}

static void test_contention(void) {
  const char *pidfile = tu_path("contended.pid");
  tu_proc p;
  if (tu_fork(&p) == 0) {
    portalock_lock_t *lock;
    portalock_error err;
    CHECK_OK(portalock_pid_file_lock_new(&lock, pidfile, NULL, &err), &err);
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    tu_send(&p, 'R');
    tu_recv(&p);
    CHECK_OK(portalock_lock_release(lock, &err), &err);
    portalock_lock_free(lock);
    tu_child_exit(0);
  }
  CHECK_INT(tu_recv(&p), 'R');
  CHECK_INT(portalock_read_pid(pidfile), p.pid);
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_pid_file_lock_new(&lock, pidfile, NULL, &err), &err);
  double t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3); /* fail_when_locked by default */
  CHECK_INT(err.holder_pid, p.pid);
  char pidtext[32];
  snprintf(pidtext, sizeof pidtext, "%ld", (long)p.pid);
  CHECK_CONTAINS(err.message, pidtext);
  portalock_wait wait;
  CHECK_STATUS(portalock_lock_try(lock, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK_INT(err.holder_pid, p.pid);
  /* the loser must not have touched the holder's PID file */
  CHECK_INT(portalock_read_pid(pidfile), p.pid);

  tu_send(&p, 'x');
  CHECK_INT(tu_reap(&p), 0);
  CHECK_INT(tu_exists(pidfile), 0);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK_INT(err.holder_pid, 0);
  CHECK_INT(portalock_read_pid(pidfile), getpid());
  portalock_lock_free(lock); /* free releases and removes the PID file */
  CHECK_INT(tu_exists(pidfile), 0);
}

static void test_default_name(void) {
  char old_cwd[PORTALOCK_PATH_MAX];
  CHECK(getcwd(old_cwd, sizeof old_cwd) != NULL);
  CHECK(chdir(tu_scratch()) == 0);
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_pid_file_lock_new(&lock, NULL, NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK_INT(portalock_read_pid(".pid"), getpid());
  CHECK(tu_exists(".pid.lock"));
  const char *name = portalock_lock_filename(lock);
  CHECK(name[0] == '/');
  CHECK(strlen(name) > 5 && strcmp(name + strlen(name) - 5, "/.pid") == 0);
  portalock_lock_free(lock);
  CHECK_INT(tu_exists(".pid"), 0);
  CHECK_INT(tu_exists(".pid.lock"), 0);
  CHECK(chdir(old_cwd) == 0);
}

static void test_read_pid(void) {
  const struct {
    const char *text;
    long pid;
  } cases[] = {
      {"123\n", 123},
      {" 42 ", 42},
      {"\t7\r\n", 7},
      {"1", 1},
      {"", 0},
      {"abc", 0},
      {"-5", 0},
      {"0", 0},
      {"000", 0},
      {"12a", 0},
      {"+7", 0},
      {"1 2", 0},
      {"\n", 0},
      {"0x10", 0},
      {"4194304\n", 4194304},
      {"99999999999999999999999", 0},
      {"9223372036854775808", 0},
      {"9223372036854775807", 9223372036854775807L},
  };
  const char *path = tu_path("read.pid");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tu_write_file(path, cases[i].text);
    long got = portalock_read_pid(path);
    if (got != cases[i].pid)
      tu_fail(__FILE__, __LINE__, "read_pid(\"%s\") = %ld, expected %ld", cases[i].text, got,
              cases[i].pid);
  }
  /* a long run of whitespace around a valid PID is still not a PID file */
  char big[200];
  memset(big, ' ', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  big[100] = '5';
  tu_write_file(path, big);
  CHECK_INT(portalock_read_pid(path), 0);
  CHECK_INT(portalock_read_pid(tu_path("missing.pid")), 0);
  CHECK_INT(portalock_read_pid(NULL), 0);
  CHECK_INT(portalock_read_pid(tu_scratch()), 0); /* a directory */
}

/* The holder releases (removing the sidecar) while a waiter is queued in the kernel on the
 * old sidecar: the waiter starts over on the current one, so it and a newcomer never both
 * hold (portalocker's test_temporary_lock_waiters_converge_on_current_inode[pid]). */
static void test_waiters_converge(void) {
  const char *pidfile = tu_path("converge.pid");
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_pid_file_lock_new(&lock, pidfile, NULL, &err), &err);
  const char *sidecar = portalock_lock_lock_filename(lock);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  tu_proc waiter;
  if (tu_fork(&waiter) == 0) {
    portalock_lock_t *w;
    portalock_error e;
    CHECK_OK(portalock_pid_file_lock_new(&w, pidfile, NULL, &e), &e);
    tu_send(&waiter, 'W');
    /* no timeout: it blocks in flock(2) on the sidecar it opened */
    CHECK_OK(portalock_lock_acquire_with(w, INFINITY, 0.02, 0, &e), &e);
    struct stat held;
    CHECK(fstat(portalock_lock_fd(w), &held) == 0);
    tu_send_long(&waiter, (long)held.st_ino);
    tu_recv(&waiter);
    portalock_lock_free(w);
    tu_child_exit(0);
  }
  CHECK_INT(tu_recv(&waiter), 'W');
  tu_sleep(0.2); /* into its wait */
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  long ino = tu_recv_long(&waiter);
  struct stat now;
  CHECK(stat(sidecar, &now) == 0);
  CHECK_INT(ino, (long)now.st_ino);
  CHECK_INT(portalock_read_pid(pidfile), waiter.pid);
  /* a newcomer meets the waiter's lock, not a file of its own */
  CHECK_STATUS(portalock_lock_acquire_with(lock, 0, 0.02, 1, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_INT(err.holder_pid, waiter.pid);
  tu_close_to(&waiter);
  CHECK_INT(tu_reap(&waiter), 0);
  CHECK_INT(tu_exists(sidecar), 0);
  portalock_lock_free(lock);
}

/* A process that has ended: its PID is free (until reused, which takes a while). */
static long dead_pid(void) {
  tu_proc p;
  if (tu_fork(&p) == 0) tu_child_exit(0);
  long pid = p.pid;
  CHECK_INT(tu_reap(&p), 0);
  return pid;
}

static void test_holder(void) {
  const char *path = tu_path("holder.pid");
  char text[32];
  snprintf(text, sizeof text, "%ld\n", (long)getpid());
  tu_write_file(path, text);
  CHECK_INT(portalock_pid_file_holder(path), getpid());
  long dead = dead_pid();
  snprintf(text, sizeof text, "%ld\n", dead);
  tu_write_file(path, text);
  CHECK_INT(portalock_read_pid(path), dead);
  CHECK_INT(portalock_pid_file_holder(path), 0);
  CHECK_INT(portalock_pid_file_holder(tu_path("missing.pid")), 0);
  CHECK_INT(portalock_pid_file_holder(NULL), 0);

  /* a symlink is no PID file, whatever it points at */
  const char *target = tu_path("target.pid");
  const char *link = tu_path("link.pid");
  snprintf(text, sizeof text, "%ld\n", (long)getpid());
  tu_write_file(target, text);
  CHECK_INT(symlink(target, link), 0);
  CHECK_INT(portalock_read_pid(target), getpid());
  CHECK_INT(portalock_read_pid(link), 0);
  CHECK_INT(portalock_pid_file_holder(link), 0);
}

int main(void) {
  tu_init("pidfile");
  tu_group("PidFileLock: sidecar, PID file written and removed");
  test_pid_file_lock();
  tu_group("contention reports the holder's PID");
  test_contention();
  tu_group("default filename .pid");
  test_default_name();
  tu_group("portalock_read_pid is strict");
  test_read_pid();
  tu_group("waiters converge on the current sidecar");
  test_waiters_converge();
  tu_group("portalock_pid_file_holder: a live process, never a symlink");
  test_holder();
  return tu_done();
}
