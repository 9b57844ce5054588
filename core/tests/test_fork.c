/* Tests fork(): a child of a holder holds nothing, cannot unlock or prolong the parent's lock. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

static const char *const names[] = {"flock", "ofd", "posix"};

static portalock_lock_t *new_lock(const char *path, portalock_backend backend) {
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.backend = backend;
  o.check_interval = 0.02;
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);
  return lock;
}

/* The child sees "not held", its release is a no-op; the parent's release (child alive) frees
 * the file; then the child can lock it afresh through its inherited handle. */
static void test_child_release(portalock_backend be) {
  char name[32];
  snprintf(name, sizeof name, "fork-release-%s", names[be]);
  const char *path = tu_path(name);
  portalock_lock_t *lock = new_lock(path, be);
  portalock_error err;
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  tu_proc p;
  if (tu_fork(&p) == 0) {
    CHECK_INT(portalock_lock_locked(lock), 0);
    CHECK_INT(portalock_lock_fd(lock), -1);
    CHECK_OK(portalock_lock_release(lock, &err), &err);
    CHECK_OK(portalock_lock_release(lock, &err), &err);
    tu_send(&p, 'r');
    CHECK_INT(tu_recv(&p), 'g'); /* the parent has released */
    CHECK_OK(portalock_lock_acquire_with(lock, 5, 0.02, 0, &err), &err);
    CHECK_INT(portalock_lock_locked(lock), 1);
    tu_send(&p, 'h');
    tu_recv(&p);
    portalock_lock_free(lock);
    tu_child_exit(0);
  }
  CHECK_INT(tu_recv(&p), 'r');
  CHECK_INT(portalock_lock_locked(lock), 1);
  CHECK_INT(tu_probe_locked(path, be), 1); /* the child's release did not unlock */
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_probe_locked(path, be), 0); /* the child, still alive, does not keep it */
  tu_send(&p, 'g');
  CHECK_INT(tu_recv(&p), 'h');
  CHECK_INT(tu_probe_locked(path, be), 1); /* the child's fresh lock */
  CHECK_STATUS(portalock_lock_acquire_with(lock, 0, 0.02, 0, &err), PORTALOCK_ALREADY_LOCKED, &err);
  tu_send(&p, 'x');
  CHECK_INT(tu_reap(&p), 0);
  CHECK_INT(tu_probe_locked(path, be), 0);
  portalock_lock_free(lock);
}

/* 1 while `pid` exists and is not a zombie. */
static int alive(pid_t pid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  if (tu_read_file(path, buf, sizeof buf) <= 0) return 0;
  const char *paren = strrchr(buf, ')');
  return paren != NULL && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

/* A holder process P of two locks forks G; G frees the handle of one (no unlock) and keeps the
 * other untouched; P is killed while G lives on: both locks must be free, G's inherited
 * descriptors do not keep them. */
static void test_holder_dies(portalock_backend be) {
  char name[32];
  snprintf(name, sizeof name, "fork-dies-%s", names[be]);
  const char *path = tu_path(name);
  snprintf(name, sizeof name, "fork-dies-freed-%s", names[be]);
  const char *freed = tu_path(name);
  int stay[2]; /* G lives until the test closes stay[1] */
  CHECK(pipe2(stay, O_CLOEXEC) == 0);
  tu_proc p;
  if (tu_fork(&p) == 0) {
    close(stay[1]);
    portalock_lock_t *lock = new_lock(path, be);
    portalock_error err;
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    portalock_lock_t *lock2 = new_lock(freed, be);
    CHECK_OK(portalock_lock_acquire(lock2, &err), &err);
    int gp[2];
    CHECK(pipe2(gp, O_CLOEXEC) == 0);
    pid_t g = fork();
    CHECK(g >= 0);
    if (g == 0) {
      close(gp[0]);
      int ok = portalock_lock_locked(lock) == 0 && portalock_lock_fd(lock) == -1 &&
               portalock_lock_locked(lock2) == 0;
      portalock_lock_free(lock2);
      ok = write(gp[1], ok ? "g" : "F", 1) == 1 && ok;
      close(gp[1]);
      char c;
      while (read(stay[0], &c, 1) < 0 && errno == EINTR) {
      }
      tu_child_exit(0);
    }
    close(gp[1]);
    char c = 0;
    CHECK(read(gp[0], &c, 1) == 1);
    tu_send_long(&p, c == 'g' ? (long)g : -1L);
    tu_recv(&p); /* killed here */
    tu_child_exit(0);
  }
  close(stay[0]);
  long g = tu_recv_long(&p);
  CHECK(g > 0);
  CHECK_INT(tu_probe_locked(path, be), 1);
  CHECK_INT(tu_probe_locked(freed, be), 1); /* freeing in G did not unlock */
  tu_kill(&p);
  CHECK(alive((pid_t)g));
  CHECK_INT(tu_probe_locked(path, be), 0); /* G, alive, does not keep them */
  CHECK_INT(tu_probe_locked(freed, be), 0);
  CHECK(alive((pid_t)g));
  close(stay[1]);
  for (double end = tu_now() + 5; alive((pid_t)g) && tu_now() < end;)
    tu_sleep(0.01);
}

/* A child freeing its copies of TemporaryFileLock and PidFileLock removes none of the files. */
static void test_kinds_in_child(void) {
  const char *tpath = tu_path("fork-temp");
  const char *ppath = tu_path("fork.pid");
  portalock_lock_t *temp, *pid;
  portalock_error err;
  CHECK_OK(portalock_temporary_file_lock_new(&temp, tpath, NULL, &err), &err);
  CHECK_OK(portalock_pid_file_lock_new(&pid, ppath, NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(temp, &err), &err);
  CHECK_OK(portalock_lock_acquire(pid, &err), &err);
  portalock_rlock_t *rlock;
  CHECK_OK(portalock_rlock_new(&rlock, tu_path("fork-rlock"), NULL, &err), &err);
  CHECK_OK(portalock_rlock_acquire(rlock, 1, &err), &err);
  CHECK_OK(portalock_rlock_acquire(rlock, 1, &err), &err);
  tu_proc p;
  if (tu_fork(&p) == 0) {
    CHECK_INT(portalock_rlock_count(rlock), 0);
    CHECK_INT(portalock_rlock_owner(rlock), 0);
    CHECK_STATUS(portalock_rlock_release(rlock, 1, &err), PORTALOCK_INVALID, &err);
    CHECK_OK(portalock_lock_release(temp, &err), &err);
    CHECK_OK(portalock_lock_release(pid, &err), &err);
    portalock_lock_free(temp);
    portalock_lock_free(pid);
    portalock_rlock_free(rlock);
    tu_child_exit(0);
  }
  CHECK_INT(tu_reap(&p), 0);
  CHECK(tu_exists(tpath));
  CHECK_INT(portalock_read_pid(ppath), getpid());
  CHECK_INT(tu_probe_locked(tpath, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_INT(tu_probe_locked(tu_path("fork.pid.lock"), PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_INT(tu_probe_locked(tu_path("fork-rlock"), PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_INT(portalock_rlock_count(rlock), 2);
  portalock_lock_free(temp);
  portalock_lock_free(pid);
  portalock_rlock_free(rlock);
  CHECK_INT(tu_exists(tpath), 0);
  CHECK_INT(tu_exists(ppath), 0);
  CHECK_INT(tu_probe_locked(tu_path("fork-rlock"), PORTALOCK_BACKEND_FLOCK), 0);
}

int main(void) {
  tu_init("fork");
  for (int b = 0; b < 3; b++) {
    char group[96];
    snprintf(group, sizeof group, "%s: child release is a no-op, parent release frees it",
             names[b]);
    tu_group(group);
    test_child_release((portalock_backend)b);
    snprintf(group, sizeof group, "%s: holder killed, its child does not keep the lock", names[b]);
    tu_group(group);
    test_holder_dies((portalock_backend)b);
  }
  tu_group("TemporaryFileLock, PidFileLock and RLock copies in a child");
  test_kinds_in_child();
  return tu_done();
}
