/* Tests PidFileLock (sidecar lock, PID file, holder PID on contention) and portalock_read_pid. */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
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
  CHECK_INT(tu_probe_locked(sidecar, PORTALOCK_BACKEND_FLOCK), 0);
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
  return tu_done();
}
