/* Tests Lock: acquire/try/release/free, timeouts, the step API, modes and file-system errors. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static portalock_lock_t *new_lock(const char *path, const char *mode) {
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.mode = mode;
  portalock_lock_t *lock = NULL;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);
  CHECK(lock != NULL);
  return lock;
}

static void test_timeouts(void) {
  const char *path = tu_path("timeout");
  tu_proc holder;
  tu_hold(&holder, path, PORTALOCK_BACKEND_FLOCK);
  portalock_lock_t *lock = new_lock(path, "a");
  portalock_error err;

  double t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire_with(lock, 0.5, 0.05, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_BETWEEN(tu_now() - t0, 0.4, 3.0);
  CHECK_INT(err.status, PORTALOCK_ALREADY_LOCKED);
  CHECK_STR(err.path, path);
  CHECK_CONTAINS(err.message, path);
  CHECK_INT(portalock_lock_locked(lock), 0);
  CHECK_INT(portalock_lock_fd(lock), -1);

  /* the handle's own options, with the default check_interval 0.25 */
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.timeout = 0.5;
  portalock_lock_t *lock2;
  CHECK_OK(portalock_lock_new(&lock2, path, &o, &err), &err);
  t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire(lock2, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.4, 3.0);
  portalock_lock_free(lock2);

  t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire_with(lock, 5.0, 0.25, 1, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3);
  CHECK_CONTAINS(err.message, "fail_when_locked");
  t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire_with(lock, 0.0, 0.25, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3);

  /* flags without LOCK_NB still wait in the loop, never in the kernel past the timeout */
  o.flags = PORTALOCK_LOCK_EX;
  CHECK_OK(portalock_lock_new(&lock2, path, &o, &err), &err);
  t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire(lock2, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.4, 3.0);
  portalock_lock_free(lock2);

  /* a waiter gets the lock soon after the holder lets go */
  tu_send(&holder, 'x');
  t0 = tu_now();
  CHECK_OK(portalock_lock_acquire_with(lock, 10.0, 0.05, 0, &err), &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 3.0);
  CHECK_INT(tu_reap(&holder), 0);
  CHECK_INT(portalock_lock_locked(lock), 1);
  CHECK(portalock_lock_fd(lock) >= 0);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 0);
  portalock_lock_free(lock);
}

static void test_killed_holder(void) {
  const char *path = tu_path("killed");
  portalock_lock_t *lock = new_lock(path, "a");
  portalock_error err;
  for (int b = 0; b < 3; b++) {
    portalock_lock_options o;
    portalock_lock_options_init(&o);
    o.backend = (portalock_backend)b;
    portalock_lock_t *l;
    CHECK_OK(portalock_lock_new(&l, path, &o, &err), &err);
    tu_proc holder;
    tu_hold(&holder, path, (portalock_backend)b);
    CHECK_STATUS(portalock_lock_acquire_with(l, 0, 0.25, 0, &err), PORTALOCK_ALREADY_LOCKED, &err);
    tu_kill(&holder);
    double t0 = tu_now();
    CHECK_OK(portalock_lock_acquire_with(l, 5.0, 0.05, 0, &err), &err);
    CHECK_BETWEEN(tu_now() - t0, 0.0, 2.5);
    portalock_lock_free(l); /* free releases */
    CHECK_INT(tu_probe_locked(path, (portalock_backend)b), 0);
  }
  portalock_lock_free(lock);
}

static void test_step_api(void) {
  const char *path = tu_path("step");
  tu_proc holder;
  tu_hold(&holder, path, PORTALOCK_BACKEND_FLOCK);
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.check_interval = 0.2;
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);

  portalock_wait wait = {.fd = -42, .next_attempt = 0};
  double before = tu_now();
  CHECK_STATUS(portalock_lock_try(lock, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK_INT(err.status, PORTALOCK_CONTENDED);
  CHECK(wait.fd >= -1);
  CHECK(wait.next_attempt > before);
  CHECK(wait.next_attempt <= tu_now() + 0.2 + 0.05);
  CHECK_INT(portalock_lock_locked(lock), 0);

  /* wait_step sleeps until the earlier of next_attempt and the deadline */
  portalock_wait far = {.fd = -1, .next_attempt = tu_now() + 100};
  double t0 = tu_now();
  CHECK_INT(portalock_wait_step(&far, t0 + 0.3), 0);
  CHECK_BETWEEN(tu_now() - t0, 0.25, 3.0);
  t0 = tu_now();
  CHECK_INT(portalock_wait_step(&far, t0 - 1), 0); /* deadline passed: at once */
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.2);
  portalock_wait soon = {.fd = -1, .next_attempt = tu_now() + 0.3};
  t0 = tu_now();
  CHECK_INT(portalock_wait_step(&soon, t0 + 100), 0);
  CHECK_BETWEEN(tu_now() - t0, 0.25, 3.0);

  /* a descriptor: readable ends the wait at once, silent waits for the clock */
  int fds[2];
  CHECK(pipe2(fds, O_CLOEXEC) == 0);
  portalock_wait on_fd = {.fd = fds[0], .next_attempt = tu_now() + 100};
  t0 = tu_now();
  CHECK_INT(portalock_wait_step(&on_fd, t0 + 0.3), 0);
  CHECK_BETWEEN(tu_now() - t0, 0.25, 3.0);
  CHECK(write(fds[1], "!", 1) == 1);
  t0 = tu_now();
  CHECK_INT(portalock_wait_step(&on_fd, t0 + 10), 1);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.5);
  close(fds[0]);
  close(fds[1]);

  /* the caller's own loop over the step API */
  double deadline = tu_now() + 0.5;
  portalock_status s;
  t0 = tu_now();
  while ((s = portalock_lock_try(lock, &wait, &err)) == PORTALOCK_CONTENDED && tu_now() < deadline)
    portalock_wait_step(&wait, deadline);
  CHECK_INT(s, PORTALOCK_CONTENDED);
  CHECK_BETWEEN(tu_now() - t0, 0.4, 3.0);

  tu_hold_end(&holder);
  CHECK_OK(portalock_lock_try(lock, &wait, &err), &err);
  int fd = portalock_lock_fd(lock);
  CHECK(fd >= 0);
  CHECK_OK(portalock_lock_try(lock, &wait, &err), &err); /* already held: no-op */
  CHECK_INT(portalock_lock_fd(lock), fd);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  portalock_lock_free(lock);
}

static void test_release_not_held(void) {
  portalock_lock_t *lock = new_lock(tu_path("not-held"), "a");
  portalock_error err;
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(err.status, PORTALOCK_OK);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(portalock_lock_release(lock, NULL), PORTALOCK_OK);
  CHECK_INT(portalock_lock_locked(lock), 0);
  portalock_lock_free(lock);
  portalock_lock_free(NULL);
}

static void test_write_mode(void) {
  const char *path = tu_path("write-mode");
  tu_write_file(path, "precious");
  tu_proc holder;
  tu_hold(&holder, path, PORTALOCK_BACKEND_FLOCK);
  portalock_lock_t *lock = new_lock(path, "w");
  portalock_error err;
  CHECK_STATUS(portalock_lock_acquire_with(lock, 0.2, 0.05, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  char buf[64];
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 8);
  CHECK_STR(buf, "precious");
  tu_hold_end(&holder);

  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  int fd = portalock_lock_fd(lock);
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 0);
  int fl = fcntl(fd, F_GETFL);
  CHECK(fl >= 0);
  CHECK_INT(fl & O_APPEND, 0);
  CHECK_INT(fl & O_ACCMODE, O_WRONLY);
  CHECK(write(fd, "new", 3) == 3);
  CHECK_INT(lseek(fd, 0, SEEK_CUR), 3);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 3);
  CHECK_STR(buf, "new");
  portalock_lock_free(lock);

  /* "a" keeps the content and stays in append mode; "r+" is read-write */
  portalock_lock_t *app = new_lock(path, "a");
  CHECK_OK(portalock_lock_acquire(app, &err), &err);
  CHECK(fcntl(portalock_lock_fd(app), F_GETFL) & O_APPEND);
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 3);
  portalock_lock_free(app);
  portalock_lock_t *rw = new_lock(path, "r+");
  CHECK_OK(portalock_lock_acquire(rw, &err), &err);
  CHECK_INT(fcntl(portalock_lock_fd(rw), F_GETFL) & (O_ACCMODE | O_APPEND), O_RDWR);
  portalock_lock_free(rw);
}

static void test_fs_errors(void) {
  portalock_error err;
  /* a symlink as the last component: ELOOP, and the target is never created or changed */
  const char *target = tu_path("symlink-target");
  const char *link = tu_path("symlink");
  CHECK(symlink(target, link) == 0);
  const char *modes[] = {"a", "w", "r+", "r"};
  for (int i = 0; i < 4; i++) {
    portalock_lock_t *lock = new_lock(link, modes[i]);
    double t0 = tu_now();
    CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3); /* permanent: not retried until the timeout */
    CHECK_INT(err.errnum, ELOOP);
    CHECK_INT(tu_exists(target), 0);
    portalock_lock_free(lock);
  }
  tu_write_file(target, "keep me");
  for (int i = 0; i < 4; i++) {
    portalock_lock_t *lock = new_lock(link, modes[i]);
    CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_INT(err.errnum, ELOOP);
    portalock_lock_free(lock);
  }
  char buf[64];
  CHECK_INT(tu_read_file(target, buf, sizeof buf), 7);
  CHECK_STR(buf, "keep me");

  const char *dir = tu_path("a-directory");
  CHECK(mkdir(dir, 0755) == 0);
  for (int i = 0; i < 4; i++) {
    portalock_lock_t *lock = new_lock(dir, modes[i]);
    CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_INT(err.errnum, EISDIR);
    portalock_lock_free(lock);
  }

  portalock_lock_t *lock = new_lock(tu_path("no-such-dir/file"), "a");
  double t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3);
  CHECK_INT(err.errnum, ENOENT);
  CHECK_CONTAINS(err.message, "no-such-dir");
  portalock_wait wait;
  CHECK_STATUS(portalock_lock_try(lock, &wait, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);
  portalock_lock_free(lock);

  /* a FIFO at the path: refused at once, never a hang in open(2) */
  const char *fifo = tu_path("a-fifo");
  CHECK(mkfifo(fifo, 0600) == 0);
  for (int i = 0; i < 4; i++) {
    lock = new_lock(fifo, modes[i]);
    t0 = tu_now();
    CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3);
    /* a write-only open of a FIFO without a reader fails by itself (ENXIO) */
    CHECK(err.errnum == EINVAL || err.errnum == ENXIO);
    if (err.errnum == EINVAL) CHECK_CONTAINS(err.message, "not a regular file");
    portalock_lock_free(lock);
  }

  /* "r" on a missing file creates it (read-only) */
  const char *created = tu_path("created-by-r");
  lock = new_lock(created, "r");
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK(tu_exists(created));
  portalock_lock_free(lock);
}

/* Two posix Lock handles on one file in one process: the second is refused, since opening
 * and closing its descriptor would silently drop the first one's lock. */
static void test_second_posix_lock(void) {
  const char *path = tu_path("posix-twice");
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.backend = PORTALOCK_BACKEND_POSIX;
  o.timeout = 0;
  portalock_error err;
  portalock_lock_t *first, *second;
  CHECK_OK(portalock_lock_new(&first, path, &o, &err), &err);
  CHECK_OK(portalock_lock_new(&second, path, &o, &err), &err);
  CHECK_OK(portalock_lock_acquire(first, &err), &err);
  CHECK_STATUS(portalock_lock_acquire(second, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, EDEADLK);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_POSIX), 1); /* the first still holds */
  CHECK_OK(portalock_lock_release(first, &err), &err);
  CHECK_OK(portalock_lock_acquire(second, &err), &err);
  CHECK_OK(portalock_lock_release(second, &err), &err);
  portalock_lock_free(first);
  portalock_lock_free(second);
}

static void test_descriptor_and_names(void) {
  portalock_error err;
  portalock_lock_t *lock = new_lock(tu_path("cloexec"), "a");
  /* the first acquire creates the file, the second opens it as an existing one */
  for (int round = 0; round < 2; round++) {
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    int fdflags = fcntl(portalock_lock_fd(lock), F_GETFD);
    CHECK(fdflags >= 0);
    CHECK(fdflags & FD_CLOEXEC);
    int status_flags = fcntl(portalock_lock_fd(lock), F_GETFL);
    CHECK(status_flags >= 0);
    CHECK_INT(status_flags & O_NONBLOCK, 0);
    CHECK_OK(portalock_lock_release(lock, &err), &err);
  }
  portalock_lock_free(lock);

  char old_cwd[PATH_MAX], cwd[PATH_MAX];
  CHECK(getcwd(old_cwd, sizeof old_cwd) != NULL);
  CHECK(chdir(tu_scratch()) == 0);
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  lock = new_lock("relative.lock", "a");
  CHECK(chdir(old_cwd) == 0); /* the path was joined at construction */
  char expected[PATH_MAX + 32];
  snprintf(expected, sizeof expected, "%s/relative.lock", cwd);
  CHECK_STR(portalock_lock_filename(lock), expected);
  CHECK_STR(portalock_lock_lock_filename(lock), expected);
  CHECK_INT(tu_exists(expected), 0); /* nothing touched before an attempt */
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK(tu_exists(expected));
  portalock_lock_free(lock);

  lock = new_lock(tu_path("absolute.lock"), "a");
  CHECK_STR(portalock_lock_filename(lock), tu_path("absolute.lock"));
  const portalock_lock_options *o = portalock_lock_options_of(lock);
  CHECK_STR(o->mode, "a");
  CHECK(o->timeout == 5.0);
  portalock_lock_free(lock);
}

/* A given perm is the created file's mode exactly, whatever the umask; without one (the
 * default PORTALOCK_PERM_UMASK) the file gets 0666 less the umask. */
static void test_perm(void) {
  portalock_error err;
  const struct {
    mode_t umask;
    int perm;
    int mode;
  } cases[] = {{022, 0666, 0666},
               {022, 0640, 0640},
               {077, 0666, 0666},
               {0, 0604, 0604},
               {027, 0777, 0777},
               {022, PORTALOCK_PERM_UMASK, 0644},
               {027, PORTALOCK_PERM_UMASK, 0640},
               {0, PORTALOCK_PERM_UMASK, 0666}};
  mode_t saved = umask(0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "perm-%zu", i);
    const char *path = tu_path(name);
    portalock_lock_options o;
    portalock_lock_options_init(&o);
    o.perm = cases[i].perm;
    portalock_lock_t *lock;
    CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);
    umask(cases[i].umask);
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    umask(0);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 07777, cases[i].mode);
    portalock_lock_free(lock);
  }
  /* permission bits only: no setuid, setgid or sticky bit on a lock file */
  {
    portalock_lock_options o;
    portalock_lock_options_init(&o);
    o.perm = 04644;
    portalock_lock_t *lock;
    CHECK_STATUS(portalock_lock_new(&lock, tu_path("perm-setuid"), &o, &err), PORTALOCK_INVALID,
                 &err);
    CHECK_CONTAINS(err.message, "'perm' (2468): must be an integer within 0..0o777 (511)");
  }
  /* an existing file keeps its permissions */
  const char *path = tu_path("perm-existing");
  tu_write_file(path, "");
  CHECK(chmod(path, 0604) == 0);
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.perm = 0600;
  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK_INT(st.st_mode & 07777, 0604);
  portalock_lock_free(lock);
  umask(saved);
}

/* check_interval 0 is accepted (as Python's portalocker does) and re-checks every
 * PORTALOCK_CHECK_INTERVAL_MIN: a 0.3 s wait against a holder costs little CPU. */
static void test_zero_check_interval(void) {
  for (int b = 0; b <= 2; b += 2) {
    const char *path = tu_path(b == 0 ? "zero-ci-flock" : "zero-ci-posix");
    tu_proc holder;
    tu_hold(&holder, path, (portalock_backend)b);
    portalock_lock_options o;
    portalock_lock_options_init(&o);
    o.check_interval = 0;
    o.backend = (portalock_backend)b;
    portalock_lock_t *lock;
    portalock_error err;
    CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);
    clock_t cpu = clock();
    double t0 = tu_now();
    CHECK_STATUS(portalock_lock_acquire_with(lock, 0.3, 0, 0, &err), PORTALOCK_ALREADY_LOCKED,
                 &err);
    double waited = tu_now() - t0, used = (double)(clock() - cpu) / CLOCKS_PER_SEC;
    CHECK_BETWEEN(waited, 0.25, 3.0);
    if (used > waited / 2)
      tu_fail(__FILE__, __LINE__, "backend %d: %.3f s of CPU in a %.3f s wait", b, used, waited);
    tu_hold_end(&holder);
    CHECK_OK(portalock_lock_acquire_with(lock, 1, 0, 0, &err), &err);
    portalock_lock_free(lock);
  }
}

int main(void) {
  tu_init("lock");
  tu_group("timeouts and fail_when_locked against a holder process");
  test_timeouts();
  tu_group("a SIGKILLed holder frees the lock (each backend)");
  test_killed_holder();
  tu_group("step API: try, wait, wait_step deadlines");
  test_step_api();
  tu_group("release of a lock that is not held");
  test_release_not_held();
  tu_group("mode w never truncates a held file; truncates once held");
  test_write_mode();
  tu_group("symlink (ELOOP), directory (EISDIR), FIFO (EINVAL), missing parent (ENOENT)");
  test_fs_errors();
  tu_group("a second posix Lock on a file this process holds is refused (EDEADLK)");
  test_second_posix_lock();
  tu_group("FD_CLOEXEC (created and existing files), absolute filename, options_of");
  test_descriptor_and_names();
  tu_group("perm and umask on created files");
  test_perm();
  tu_group("check_interval 0: accepted, re-checks every 1 ms without spinning");
  test_zero_check_interval();
  return tu_done();
}
