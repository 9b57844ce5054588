/* Tests the counting semaphore: counting, per-handle accounting, release(n), timeouts, other
 * processes (waiting, waking, dying holders), names, permissions, files it must not trust
 * (another user's, writable by others, malformed) and misuse. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEM_MAX 2147483647L /* SEM_VALUE_MAX on Linux */

/* Every name a test used, unlinked at exit (on failure too). */
static char names[32][64];
static int n_names;

static void unlink_all(void) {
  for (int i = 0; i < n_names; i++)
    portalock_semaphore_unlink(names[i], NULL);
}

static const char *fresh_name(const char *tag) {
  CHECK(n_names < 32);
  char *name = names[n_names++];
  snprintf(name, sizeof names[0], "pltest.%ld.%s", (long)getpid(), tag);
  portalock_semaphore_unlink(name, NULL); /* a leftover of a crashed run */
  return name;
}

static portalock_semaphore_t *open_sem(const char *name, unsigned long value) {
  portalock_semaphore_options o;
  portalock_semaphore_options_init(&o);
  o.check_interval = 0.05;
  portalock_semaphore_t *sem = NULL;
  portalock_error err;
  CHECK_OK(portalock_semaphore_new(&sem, name, value, &o, &err), &err);
  CHECK(sem != NULL);
  return sem;
}

static long value_of(portalock_semaphore_t *sem) {
  long v = -1;
  portalock_error err;
  CHECK_OK(portalock_semaphore_value(sem, &v, &err), &err);
  return v;
}

static void test_defaults(void) {
  tu_group("defaults");
  portalock_semaphore_options o;
  portalock_semaphore_options_init(&o);
  CHECK(isinf(o.timeout) && o.timeout > 0);
  CHECK(o.check_interval == 0.25);
  CHECK_INT(o.perm, 0600);
}

static void test_counting(void) {
  tu_group("counting and per-handle accounting");
  const char *name = fresh_name("count");
  portalock_semaphore_t *sem = open_sem(name, 2);
  portalock_error err;
  portalock_wait wait;
  CHECK_STR(portalock_semaphore_name(sem), name);
  CHECK_INT(portalock_semaphore_held(sem), 0);
  CHECK_INT(value_of(sem), 2);
  CHECK_OK(portalock_semaphore_try(sem, &wait, &err), &err);
  CHECK_OK(portalock_semaphore_acquire(sem, &err), &err);
  CHECK_INT(portalock_semaphore_held(sem), 2);
  CHECK_INT(value_of(sem), 0);

  double before = tu_now();
  wait.fd = -42;
  CHECK_STATUS(portalock_semaphore_try(sem, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK_INT(wait.fd, -1);
  CHECK(wait.next_attempt > before && wait.next_attempt < tu_now() + 0.06);
  CHECK_CONTAINS(err.message, name);

  double t0 = tu_now();
  CHECK_STATUS(portalock_semaphore_acquire_with(sem, 0, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.2);
  t0 = tu_now();
  CHECK_STATUS(portalock_semaphore_acquire_with(sem, 0.3, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.28, 3.0);
  CHECK_CONTAINS(err.message, "timeout");
  CHECK_INT(portalock_semaphore_held(sem), 2);

  CHECK_OK(portalock_semaphore_release(sem, 1, &err), &err);
  CHECK_INT(portalock_semaphore_held(sem), 1);
  CHECK_INT(value_of(sem), 1);
  CHECK_OK(portalock_semaphore_release_held(sem, &err), &err);
  CHECK_INT(portalock_semaphore_held(sem), 0);
  CHECK_INT(value_of(sem), 2);
  CHECK_OK(portalock_semaphore_release_held(sem, &err), &err); /* nothing held: no-op */
  CHECK_INT(value_of(sem), 2);

  /* release(n) without acquiring, as multiprocessing allows */
  CHECK_OK(portalock_semaphore_release(sem, 3, &err), &err);
  CHECK_INT(value_of(sem), 5);
  CHECK_INT(portalock_semaphore_held(sem), 0);

  /* value initialises only a new semaphore; two handles account separately */
  portalock_semaphore_t *other = open_sem(name, 9);
  CHECK_INT(value_of(other), 5);
  CHECK_OK(portalock_semaphore_acquire(other, &err), &err);
  CHECK_OK(portalock_semaphore_acquire(sem, &err), &err);
  CHECK_INT(portalock_semaphore_held(other), 1);
  CHECK_INT(portalock_semaphore_held(sem), 1);
  CHECK_INT(value_of(sem), 3);
  CHECK_OK(portalock_semaphore_release_held(other, &err), &err);
  CHECK_INT(value_of(sem), 4);
  CHECK_INT(portalock_semaphore_held(sem), 1);
  /* free does not release */
  portalock_semaphore_free(sem);
  CHECK_INT(value_of(other), 4);
  portalock_semaphore_free(other);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
}

static void test_overflow(void) {
  tu_group("release beyond SEM_VALUE_MAX");
  const char *name = fresh_name("overflow");
  portalock_semaphore_t *sem = open_sem(name, (unsigned long)SEM_MAX - 1);
  portalock_error err;
  CHECK_INT(value_of(sem), SEM_MAX - 1);
  CHECK_STATUS(portalock_semaphore_release(sem, 2, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, EOVERFLOW);
  CHECK_CONTAINS(err.message, "SEM_VALUE_MAX");
  CHECK_INT(value_of(sem), SEM_MAX - 1);
  CHECK_OK(portalock_semaphore_release(sem, 1, &err), &err);
  CHECK_INT(value_of(sem), SEM_MAX);
  CHECK_STATUS(portalock_semaphore_release(sem, 1, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  portalock_semaphore_free(sem);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
}

/* A child that opens `name`, acquires within `timeout` and reports 'A' or 'T'. With `keep`,
 * it exits holding the count (it dies without releasing). */
static void waiter(tu_proc *p, const char *name, double timeout, int keep) {
  if (tu_fork(p) != 0) return;
  portalock_semaphore_t *sem = open_sem(name, 0);
  portalock_error err;
  tu_send(p, 'R');
  portalock_status st = portalock_semaphore_acquire_with(sem, timeout, &err);
  if (st != PORTALOCK_OK && st != PORTALOCK_ALREADY_LOCKED) tu_child_exit(2);
  tu_send(p, st == PORTALOCK_OK ? 'A' : 'T');
  if (st == PORTALOCK_OK && !keep) portalock_semaphore_release_held(sem, &err);
  tu_child_exit(0);
}

static void test_processes(void) {
  tu_group("other processes: waiting, release(n) waking n, dying holders");
  const char *name = fresh_name("procs");
  portalock_semaphore_t *sem = open_sem(name, 0);
  portalock_error err;
  CHECK_INT(value_of(sem), 0);

  /* a waiter without a timeout wakes promptly on a release */
  tu_proc p;
  waiter(&p, name, INFINITY, 1);
  CHECK_INT(tu_recv(&p), 'R');
  tu_sleep(0.3);
  double t0 = tu_now();
  CHECK_OK(portalock_semaphore_release(sem, 1, &err), &err);
  CHECK_INT(tu_recv(&p), 'A');
  CHECK_BETWEEN(tu_now() - t0, 0.0, 2.0);
  CHECK_INT(tu_reap(&p), 0);
  /* it exited holding its count: the count is not given back */
  CHECK_INT(value_of(sem), 0);

  /* release(2) lets exactly two of three waiters through */
  tu_proc w[3];
  for (int i = 0; i < 3; i++) {
    waiter(&w[i], name, 2.5, 1);
    CHECK_INT(tu_recv(&w[i]), 'R');
  }
  tu_sleep(0.3);
  CHECK_OK(portalock_semaphore_release(sem, 2, &err), &err);
  int acquired = 0, timed_out = 0;
  for (int i = 0; i < 3; i++) {
    int c = tu_recv(&w[i]);
    acquired += c == 'A';
    timed_out += c == 'T';
    CHECK_INT(tu_reap(&w[i]), 0);
  }
  CHECK_INT(acquired, 2);
  CHECK_INT(timed_out, 1);
  CHECK_INT(value_of(sem), 0);

  /* a child's handle inherited through fork() holds none of the parent's counts */
  CHECK_OK(portalock_semaphore_release(sem, 1, &err), &err);
  CHECK_OK(portalock_semaphore_acquire_with(sem, 0, &err), &err);
  CHECK_INT(portalock_semaphore_held(sem), 1);
  if (tu_fork(&p) == 0) {
    int ok = portalock_semaphore_held(sem) == 0 &&
             portalock_semaphore_release_held(sem, &err) == PORTALOCK_OK;
    tu_child_exit(ok ? 0 : 1);
  }
  CHECK_INT(tu_reap(&p), 0);
  CHECK_INT(value_of(sem), 0);
  CHECK_INT(portalock_semaphore_held(sem), 1);
  CHECK_OK(portalock_semaphore_release_held(sem, &err), &err);
  CHECK_INT(value_of(sem), 1);

  portalock_semaphore_free(sem);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
}

static void test_names_and_unlink(void) {
  tu_group("names, permissions, unlink");
  portalock_error err;
  /* a generated name */
  portalock_semaphore_t *sem = NULL;
  CHECK_OK(portalock_semaphore_new(&sem, NULL, 1, NULL, &err), &err);
  const char *gen = portalock_semaphore_name(sem);
  CHECK_INT(strlen(gen), strlen("semaphore.") + 16);
  CHECK(strncmp(gen, "semaphore.", 10) == 0);
  CHECK(strspn(gen + 10, "0123456789abcdef") == 16);
  CHECK(!tu_exists("/dev/shm/sem.portalock.semaphore.0")); /* nothing opened yet */
  portalock_semaphore_free(sem);

  /* permissions of a created semaphore (glibc keeps it in /dev/shm) */
  umask(022);
  const char *name = fresh_name("perm");
  sem = open_sem(name, 1);
  char path[256];
  snprintf(path, sizeof path, "/dev/shm/sem.portalock.%s", name);
  CHECK(!tu_exists(path)); /* the constructor touches nothing */
  CHECK_INT(value_of(sem), 1);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK_INT(st.st_mode & 0777, 0600);
  portalock_semaphore_free(sem);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
  CHECK(!tu_exists(path));

  portalock_semaphore_options o;
  portalock_semaphore_options_init(&o);
  o.perm = 0640;
  CHECK_OK(portalock_semaphore_new(&sem, name, 1, &o, &err), &err);
  CHECK_INT(value_of(sem), 1);
  CHECK(stat(path, &st) == 0);
  CHECK_INT(st.st_mode & 0777, 0640);

  /* after unlink the old handle keeps its semaphore; a new one starts afresh */
  CHECK_OK(portalock_semaphore_acquire_with(sem, 0, &err), &err);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
  CHECK_STATUS(portalock_semaphore_unlink(name, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);
  portalock_semaphore_t *fresh = open_sem(name, 3);
  CHECK_INT(value_of(fresh), 3);
  CHECK_INT(value_of(sem), 0);
  portalock_semaphore_free(fresh);
  portalock_semaphore_free(sem);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
}

static const char *shm_path(const char *name) {
  static char path[2][256];
  static int next;
  char *p = path[next++ % 2];
  snprintf(p, sizeof path[0], "/dev/shm/sem.portalock.%s", name);
  return p;
}

/* A semaphore file as sem_open(O_CREAT) makes it, with `mode` exactly and `value` posted. */
static void make_semaphore(const char *name, mode_t mode, unsigned value) {
  char sem_name[128];
  snprintf(sem_name, sizeof sem_name, "/portalock.%s", name);
  mode_t old = umask(0);
  sem_t *s = sem_open(sem_name, O_CREAT | O_EXCL, mode, value);
  umask(old);
  CHECK(s != SEM_FAILED);
  sem_close(s);
}

static void make_empty_file(const char *name, mode_t mode) {
  int fd = tu_open(shm_path(name), O_WRONLY | O_CREAT | O_EXCL);
  CHECK_INT(fchmod(fd, mode), 0);
  close(fd);
}

/* A semaphore object on `name` made with option `perm` (nothing is opened yet). */
static portalock_semaphore_t *new_with_perm(const char *name, int perm) {
  portalock_semaphore_options o;
  portalock_semaphore_options_init(&o);
  o.perm = perm;
  portalock_semaphore_t *sem = NULL;
  portalock_error err;
  CHECK_OK(portalock_semaphore_new(&sem, name, 1, &o, &err), &err);
  return sem;
}

/* Every use of semaphore `name` with option `perm` is refused, nothing mapped: a
 * LOCK_EXCEPTION with `errnum` whose message names the path, the owner, the mode and `why`. */
static void expect_refused(const char *name, int perm, int errnum, const char *owner,
                           const char *mode, const char *why) {
  portalock_semaphore_t *sem = new_with_perm(name, perm);
  portalock_error err;
  for (int i = 0; i < 5; i++) /* the five non-blocking acquires */
    CHECK_STATUS(portalock_semaphore_try(sem, NULL, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_STATUS(portalock_semaphore_acquire_with(sem, 1, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_STATUS(portalock_semaphore_release(sem, 1, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  long v;
  CHECK_STATUS(portalock_semaphore_value(sem, &v, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, errnum);
  CHECK_STR(err.path, shm_path(name));
  CHECK_CONTAINS(err.message, shm_path(name));
  CHECK_CONTAINS(err.message, owner);
  CHECK_CONTAINS(err.message, mode);
  CHECK_CONTAINS(err.message, why);
  CHECK_INT(portalock_semaphore_held(sem), 0);
  portalock_semaphore_free(sem);
}

static const char *planted_empty, *planted_open, *roots_private, *roots_open;

static void plant_as_other(void) {
  make_empty_file(planted_empty, 0644);
  make_semaphore(planted_open, 0666, 100);
}

/* Another user's semaphore `name`, opened with `perm`, is shared: its counts are used. */
static void expect_shared(const char *name, int perm, long value) {
  portalock_semaphore_t *sem = new_with_perm(name, perm);
  portalock_error err;
  CHECK_INT(value_of(sem), value);
  CHECK_OK(portalock_semaphore_try(sem, NULL, &err), &err);
  CHECK_INT(value_of(sem), value - 1);
  CHECK_OK(portalock_semaphore_release(sem, 1, &err), &err);
  portalock_semaphore_free(sem);
}

static void meet_roots_files(void) {
  expect_refused(roots_private, 0600, EACCES, "owned by root (uid 0)", "mode 0600",
                 "Permission denied");
  /* created 0666 by root: shared with a user whose perm shares it too, and only then */
  expect_shared(roots_open, 0666, 100);
  expect_refused(roots_open, 0600, EACCES, "owned by root (uid 0)", "mode 0666",
                 "another user owns it (this process runs as ");
  expect_refused(roots_open, 0660, EACCES, "owned by root (uid 0)", "mode 0666",
                 "option 'perm' 0660 grants less than its mode");
}

static void test_untrusted_files(void) {
  tu_group("refuses a semaphore file it cannot trust, before mapping it");
  /* this user's own files: one others may write, a malformed one, a symlink */
  const char *name = fresh_name("open");
  make_semaphore(name, 0622, 100);
  expect_refused(name, 0600, EACCES, "uid ", "mode 0622",
                 "group or others may write it, which option 'perm' (0600) does not grant");
  portalock_semaphore_options o;
  portalock_semaphore_options_init(&o);
  o.perm = 0666; /* asked for by this user: accepted */
  portalock_semaphore_t *sem = NULL;
  portalock_error err;
  CHECK_OK(portalock_semaphore_new(&sem, name, 1, &o, &err), &err);
  CHECK_INT(value_of(sem), 100);
  portalock_semaphore_free(sem);

  name = fresh_name("empty"); /* mapping it would end the process with SIGBUS */
  make_empty_file(name, 0600);
  expect_refused(name, 0600, EINVAL, "uid ", "mode 0600", "a semaphore file must hold exactly");
  name = fresh_name("dir");
  CHECK_INT(mkdir(shm_path(name), 0700), 0);
  expect_refused(name, 0600, EISDIR, "uid ", "mode 0700", "Is a directory");
  CHECK_INT(rmdir(shm_path(name)), 0);
  name = fresh_name("fifo"); /* opened without blocking, then refused */
  CHECK_INT(mkfifo(shm_path(name), 0600), 0);
  expect_refused(name, 0600, EINVAL, "uid ", "mode 0600", "not a regular file");
  const char *target = fresh_name("target");
  make_semaphore(target, 0600, 3);
  name = fresh_name("link");
  CHECK_INT(symlink(shm_path(target), shm_path(name)), 0);
  expect_refused(name, 0600, ELOOP, "a symbolic link, owned by ", "mode 0777",
                 "Too many levels of symbolic links");

  /* another user's files (as root: planted by nobody, and root's met by nobody) */
  uid_t nobody_uid;
  gid_t nobody_gid;
  if (!tu_other_user("another user's files", &nobody_uid, &nobody_gid)) return;
  char who[64];
  snprintf(who, sizeof who, "owned by nobody (uid %ld)", (long)nobody_uid);
  planted_empty = fresh_name("planted.empty");
  planted_open = fresh_name("planted.open");
  tu_as_user(nobody_uid, nobody_gid, plant_as_other);
  /* whose it is comes before its size: another user's empty file is theirs */
  expect_refused(planted_empty, 0600, EACCES, who, "mode 0644",
                 "another user owns it (this process runs as root (uid 0); option 'perm' 0600 does "
                 "not share it)");
  expect_refused(planted_open, 0600, EACCES, who, "mode 0666",
                 "another user owns it (this process runs as root (uid 0); option 'perm' 0600 does "
                 "not share it)");
  /* a perm that shares, but less than the file's mode grants */
  expect_refused(planted_open, 0660, EACCES, who, "mode 0666",
                 "option 'perm' 0660 grants less than its mode");
  /* a perm that shares as widely as the file: shared on purpose */
  expect_shared(planted_open, 0666, 100);

  roots_private = fresh_name("root.private");
  sem = open_sem(roots_private, 2);
  CHECK_INT(value_of(sem), 2);
  portalock_semaphore_free(sem);
  roots_open = fresh_name("root.open");
  make_semaphore(roots_open, 0666, 100);
  tu_as_user(nobody_uid, nobody_gid, meet_roots_files);
}

static void expect_invalid_new(const char *name, unsigned long value,
                               const portalock_semaphore_options *o, const char *fragment) {
  portalock_semaphore_t *sem = (portalock_semaphore_t *)&sem;
  portalock_error err;
  CHECK_STATUS(portalock_semaphore_new(&sem, name, value, o, &err), PORTALOCK_INVALID, &err);
  CHECK(sem == NULL);
  CHECK_CONTAINS(err.message, fragment);
}

static void test_misuse(void) {
  tu_group("misuse");
  char long_name[300];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  long_name[242] = '\0';
  expect_invalid_new("", 1, NULL, "'name'");
  expect_invalid_new("a/b", 1, NULL, "'/'");
  expect_invalid_new(".", 1, NULL, "\".\"");
  expect_invalid_new("..", 1, NULL, "\"..\"");
  expect_invalid_new(long_name, 1, NULL, "too long");
  long_name[241] = '\0';
  portalock_semaphore_t *ok = NULL;
  portalock_error err;
  snprintf(long_name, 32, "pltest.%ld.", (long)getpid());
  long_name[strlen(long_name)] = 'x'; /* still 241 bytes: the longest name sem_open takes */
  CHECK_OK(portalock_semaphore_new(&ok, long_name, 1, NULL, &err), &err);
  long v = -1;
  CHECK_OK(portalock_semaphore_value(ok, &v, &err), &err);
  CHECK_INT(v, 1);
  portalock_semaphore_free(ok);
  CHECK_OK(portalock_semaphore_unlink(long_name, &err), &err);
  expect_invalid_new("v", (unsigned long)SEM_MAX + 1, NULL, "'value'");

  portalock_semaphore_options o;
  portalock_semaphore_options_init(&o);
  o.timeout = -1;
  expect_invalid_new("t", 1, &o, "'timeout' (-1)");
  o.timeout = NAN;
  expect_invalid_new("t", 1, &o, "'timeout'");
  portalock_semaphore_options_init(&o);
  o.check_interval = -1;
  expect_invalid_new("t", 1, &o, "'check_interval' (-1)");
  portalock_semaphore_options_init(&o);
  o.perm = 01777;
  expect_invalid_new("t", 1, &o, "'perm'");

  CHECK_STATUS(portalock_semaphore_new(NULL, "x", 1, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_semaphore_unlink("a/b", &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_semaphore_unlink(NULL, &err), PORTALOCK_INVALID, &err);

  const char *name = fresh_name("misuse");
  portalock_semaphore_t *sem = open_sem(name, 0);
  CHECK_STATUS(portalock_semaphore_release(sem, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'n' (0)");
  CHECK_STATUS(portalock_semaphore_release(sem, (unsigned long)SEM_MAX + 1, &err),
               PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_semaphore_acquire_with(sem, -1, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'timeout'");
  CHECK_STATUS(portalock_semaphore_acquire_with(sem, NAN, &err), PORTALOCK_INVALID, &err);
  CHECK_INT(value_of(sem), 0);
  portalock_semaphore_free(sem);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
}

int main(void) {
  tu_init("semaphore");
  atexit(unlink_all);
  test_defaults();
  test_counting();
  test_overflow();
  test_processes();
  test_names_and_unlink();
  test_untrusted_files();
  test_misuse();
  return tu_done();
}
