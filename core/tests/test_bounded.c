/* Tests bounded semaphores: slot names, bad inputs, the sweep and its timeout, the random
 * order, a killed holder, the default directory, slot files that vanish during a wait, slot
 * files that cannot be used, a waiter short of descriptors, fork. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static portalock_bounded_semaphore_t *new_sem(long maximum, const char *name, const char *dir) {
  portalock_bounded_semaphore_options o;
  portalock_bounded_semaphore_options_init(&o);
  o.name = name;
  o.directory = dir;
  o.check_interval = 0.02;
  portalock_bounded_semaphore_t *sem = NULL;
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_new(&sem, maximum, &o, &err), &err);
  CHECK(sem != NULL);
  return sem;
}

static void expect_invalid(long maximum, const char *name, const char *pattern, const char *dir,
                           const char *needle) {
  portalock_bounded_semaphore_options o;
  portalock_bounded_semaphore_options_init(&o);
  o.name = name;
  o.filename_pattern = pattern;
  o.directory = dir;
  portalock_bounded_semaphore_t *sem = (portalock_bounded_semaphore_t *)1;
  portalock_error err;
  CHECK_STATUS(portalock_bounded_semaphore_new(&sem, maximum, &o, &err), PORTALOCK_INVALID, &err);
  CHECK(sem == NULL);
  CHECK_CONTAINS(err.message, needle);
}

static void test_names(void) {
  tu_group("names");
  const char *dir = tu_scratch();
  portalock_bounded_semaphore_t *sem = new_sem(3, "jobs", dir);
  char want[PORTALOCK_PATH_MAX + 64];
  snprintf(want, sizeof want, "%s/jobs.02.lock", dir);
  CHECK_STR(portalock_bounded_semaphore_filename(sem, 2), want);
  CHECK(portalock_bounded_semaphore_filename(sem, 3) == NULL);
  CHECK(portalock_bounded_semaphore_filename(sem, -1) == NULL);
  CHECK_STR(portalock_bounded_semaphore_directory(sem), dir);
  CHECK_STR(portalock_bounded_semaphore_filename_pattern(sem), "{name}.{number:02d}.lock");
  CHECK_INT(portalock_bounded_semaphore_maximum(sem), 3);
  portalock_bounded_semaphore_free(sem);

  /* pattern fields, braces, pathlib-style tidying of the directory */
  portalock_bounded_semaphore_options o;
  portalock_bounded_semaphore_options_init(&o);
  o.name = "n";
  o.filename_pattern = "{{{name}}}-{number}-{number:04d}";
  o.directory = "/tmp//./";
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_new(&sem, 12, &o, &err), &err);
  CHECK_STR(portalock_bounded_semaphore_filename(sem, 11), "/tmp/{n}-11-0011");
  portalock_bounded_semaphore_free(sem);
  o.directory = "/";
  CHECK_OK(portalock_bounded_semaphore_new(&sem, 1, &o, &err), &err);
  CHECK_STR(portalock_bounded_semaphore_filename(sem, 0), "/{n}-0-0000");
  portalock_bounded_semaphore_free(sem);

  /* a relative directory is joined to the working directory */
  char cwd[PORTALOCK_PATH_MAX];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  o.directory = "rel/./x/";
  CHECK_OK(portalock_bounded_semaphore_new(&sem, 1, &o, &err), &err);
  snprintf(want, sizeof want, "%s/rel/x", cwd);
  CHECK_STR(portalock_bounded_semaphore_directory(sem), want);
  portalock_bounded_semaphore_free(sem);

  /* generated names: bounded_semaphore.<16 hex>, different each time */
  portalock_bounded_semaphore_t *a = new_sem(2, NULL, dir), *b = new_sem(2, NULL, dir);
  const char *na = portalock_bounded_semaphore_name(a);
  CHECK_INT(strlen(na), strlen("bounded_semaphore.") + 16);
  CHECK(strncmp(na, "bounded_semaphore.", 18) == 0);
  CHECK(strspn(na + 18, "0123456789abcdef") == 16);
  CHECK(strcmp(na, portalock_bounded_semaphore_name(b)) != 0);
  portalock_bounded_semaphore_free(a);
  portalock_bounded_semaphore_free(b);
}

static void test_bad_inputs(void) {
  tu_group("bad inputs");
  expect_invalid(0, "x", NULL, NULL, "'maximum' (0)");
  expect_invalid(-1, "x", NULL, NULL, "'maximum' (-1)");
  expect_invalid(10001, "x", NULL, NULL, "'maximum' (10001)");
  expect_invalid(2, "a/b", NULL, NULL, "'name'");
  expect_invalid(2, ".", NULL, NULL, "'name'");
  expect_invalid(2, "..", NULL, NULL, "'name'");
  expect_invalid(1, ".", "{name}", NULL, "'name'");
  expect_invalid(1, "x", "{number}/..", NULL, "contains '/'");
  expect_invalid(1, "", "{name}", NULL, "is empty");
  expect_invalid(2, "x", "{name}.lock", NULL, "must contain {number}");
  expect_invalid(2, "x", "{name}.{number:2d}", NULL, "unsupported field");
  expect_invalid(2, "x", "{name!r}.{number}", NULL, "unsupported field");
  expect_invalid(2, "x", "{name}.{number", NULL, "without its '}'");
  expect_invalid(2, "x", "{name}}.{number}", NULL, "single '}'");
  char longname[300];
  memset(longname, 'x', 250);
  longname[250] = '\0';
  expect_invalid(2, longname, NULL, NULL, "255");
  longname[256] = '\0';
  memset(longname, 'y', 256);
  expect_invalid(2, longname, NULL, NULL, "255");
  expect_invalid(100, "x", "{name}{number:0300d}", NULL, "width");
  portalock_bounded_semaphore_options o;
  portalock_bounded_semaphore_options_init(&o);
  o.timeout = -1;
  portalock_bounded_semaphore_t *sem;
  portalock_error err;
  CHECK_STATUS(portalock_bounded_semaphore_new(&sem, 1, &o, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'timeout'");
  o.timeout = 1;
  o.check_interval = NAN;
  CHECK_STATUS(portalock_bounded_semaphore_new(&sem, 1, &o, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'check_interval'");
  CHECK_STATUS(portalock_bounded_semaphore_new(NULL, 1, NULL, &err), PORTALOCK_INVALID, &err);
  /* ".." (not "."): "x.." is a fine name, "..x" too */
  portalock_bounded_semaphore_free(new_sem(2, "x..", NULL));
}

static void test_sweep(void) {
  tu_group("sweep and timeout");
  const char *dir = tu_scratch();
  portalock_bounded_semaphore_t *s[4];
  for (int i = 0; i < 4; i++)
    s[i] = new_sem(3, "sweep", dir);
  portalock_error err;
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) {
    CHECK_OK(portalock_bounded_semaphore_acquire_with(s[i], 0, 0.02, &err), &err);
    long slot = portalock_bounded_semaphore_slot(s[i]);
    CHECK(slot >= 0 && slot < 3);
    CHECK_INT(seen[slot], 0);
    seen[slot] = 1;
    CHECK(portalock_bounded_semaphore_fd(s[i]) >= 0);
    CHECK(portalock_bounded_semaphore_lock(s[i]) != NULL);
    CHECK_STR(portalock_lock_filename(portalock_bounded_semaphore_lock(s[i])),
              portalock_bounded_semaphore_filename(s[i], slot));
    /* slot files are read-only descriptors */
    CHECK_INT(fcntl(portalock_bounded_semaphore_fd(s[i]), F_GETFL) & O_ACCMODE, O_RDONLY);
    CHECK(fcntl(portalock_bounded_semaphore_fd(s[i]), F_GETFD) & FD_CLOEXEC);
  }
  /* another process sees every slot held */
  for (int i = 0; i < 3; i++)
    CHECK_INT(
        tu_probe_locked(portalock_bounded_semaphore_filename(s[3], i), PORTALOCK_BACKEND_FLOCK), 1);

  /* a second acquire on a holding handle is misuse, and keeps the slot */
  long kept = portalock_bounded_semaphore_slot(s[0]);
  CHECK_STATUS(portalock_bounded_semaphore_acquire(s[0], &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "already holds slot");
  CHECK_INT(portalock_bounded_semaphore_slot(s[0]), kept);

  /* all held: timeout 0 is one sweep, a timeout is waited out */
  double t0 = tu_now();
  CHECK_STATUS(portalock_bounded_semaphore_acquire_with(s[3], 0, 0.02, &err),
               PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.2);
  CHECK_CONTAINS(err.message, "all 3 slots");
  t0 = tu_now();
  CHECK_STATUS(portalock_bounded_semaphore_acquire_with(s[3], 0.3, 0.05, &err),
               PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.29, 2.0);
  portalock_wait wait;
  CHECK_STATUS(portalock_bounded_semaphore_try(s[3], &wait, &err), PORTALOCK_CONTENDED, &err);
#ifdef __linux__
  CHECK(wait.fd >= 0); /* one inotify instance watching the three slot files */
#endif
  CHECK(wait.next_attempt > portalock_monotonic());

  /* a release frees exactly that slot */
  long freed = portalock_bounded_semaphore_slot(s[1]);
  CHECK_OK(portalock_bounded_semaphore_release(s[1], &err), &err);
  CHECK_INT(portalock_bounded_semaphore_locked(s[1]), 0);
  CHECK_INT(portalock_bounded_semaphore_slot(s[1]), -1);
  CHECK_OK(portalock_bounded_semaphore_release(s[1], &err), &err); /* no-op */
  CHECK_OK(portalock_bounded_semaphore_try(s[3], &wait, &err), &err);
  CHECK_INT(portalock_bounded_semaphore_slot(s[3]), freed);

  /* a waiter gets the slot once released */
  tu_proc child;
  if (tu_fork(&child) == 0) {
    portalock_bounded_semaphore_t *w = new_sem(3, "sweep", dir);
    portalock_error e;
    tu_send(&child, 'W');
    if (portalock_bounded_semaphore_acquire_with(w, 10, 0.02, &e) != PORTALOCK_OK) tu_child_exit(2);
    tu_send_long(&child, portalock_bounded_semaphore_slot(w));
    portalock_bounded_semaphore_free(w);
    tu_child_exit(0);
  }
  CHECK_INT(tu_recv(&child), 'W');
  tu_sleep(0.1);
  long released = portalock_bounded_semaphore_slot(s[2]);
  portalock_bounded_semaphore_free(s[2]); /* free releases */
  CHECK_INT(tu_recv_long(&child), released);
  CHECK_INT(tu_reap(&child), 0);
  portalock_bounded_semaphore_free(s[0]);
  portalock_bounded_semaphore_free(s[1]);
  portalock_bounded_semaphore_free(s[3]);
}

static void test_random_order(void) {
  tu_group("random order");
  portalock_bounded_semaphore_t *sem = new_sem(50, "order", tu_scratch());
  long order[50];
  int first_counts[50] = {0};
  portalock_error err;
  int differs = 0;
  long prev0 = -1;
  for (int round = 0; round < 200; round++) {
    CHECK_OK(portalock_bounded_semaphore_random_order(sem, order, &err), &err);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) {
      CHECK(order[i] >= 0 && order[i] < 50);
      CHECK_INT(seen[order[i]], 0);
      seen[order[i]] = 1;
    }
    first_counts[order[0]]++;
    if (round > 0 && order[0] != prev0) differs = 1;
    prev0 = order[0];
  }
  CHECK(differs);
  int distinct_first = 0;
  for (int i = 0; i < 50; i++)
    distinct_first += first_counts[i] > 0;
  CHECK(distinct_first > 25); /* 200 draws over 50 values: ~49 expected */

  /* sweeps start at different slots: with every slot free, the slot taken varies */
  int taken[50] = {0};
  for (int i = 0; i < 100; i++) {
    CHECK_OK(portalock_bounded_semaphore_acquire(sem, &err), &err);
    taken[portalock_bounded_semaphore_slot(sem)]++;
    CHECK_OK(portalock_bounded_semaphore_release(sem, &err), &err);
  }
  int distinct = 0;
  for (int i = 0; i < 50; i++)
    distinct += taken[i] > 0;
  CHECK(distinct > 20);
  portalock_bounded_semaphore_free(sem);
}

static void test_killed_holder(void) {
  tu_group("a killed holder frees its slot");
  const char *dir = tu_scratch();
  tu_proc child;
  if (tu_fork(&child) == 0) {
    portalock_bounded_semaphore_t *h = new_sem(1, "killed", dir);
    portalock_error e;
    if (portalock_bounded_semaphore_acquire(h, &e) != PORTALOCK_OK) tu_child_exit(2);
    tu_send(&child, 'R');
    for (;;)
      pause();
  }
  CHECK_INT(tu_recv(&child), 'R');
  portalock_bounded_semaphore_t *sem = new_sem(1, "killed", dir);
  portalock_error err;
  CHECK_STATUS(portalock_bounded_semaphore_acquire_with(sem, 0, 0.02, &err),
               PORTALOCK_ALREADY_LOCKED, &err);
  tu_kill(&child);
  CHECK_OK(portalock_bounded_semaphore_acquire_with(sem, 2, 0.02, &err), &err);
  portalock_bounded_semaphore_free(sem);
}

static void test_missing_directory(void) {
  tu_group("a missing directory is reported at acquire");
  char dir[PORTALOCK_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/later", tu_scratch());
  portalock_bounded_semaphore_t *sem = new_sem(2, "m", dir); /* no file-system access */
  CHECK_INT(tu_exists(dir), 0);
  portalock_error err;
  CHECK_STATUS(portalock_bounded_semaphore_acquire_with(sem, 0, 0.02, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);
  CHECK_CONTAINS(err.path, dir);
  /* the same handle works once the directory exists (Python's #bricking bug: not here) */
  CHECK_INT(mkdir(dir, 0700), 0);
  CHECK_OK(portalock_bounded_semaphore_acquire_with(sem, 0, 0.02, &err), &err);
  portalock_bounded_semaphore_free(sem);
}

/* A wait on a contended slot, then `change` done to the slot file: the next try fails with
 * `errnum`, naming the file, and the wait leaves no descriptor behind. */
static void expect_wait_ends(const char *sub, void (*change)(const char *dir, const char *slot),
                             int errnum) {
  char dir[PORTALOCK_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/%s", tu_scratch(), sub);
  CHECK_INT(mkdir(dir, 0700), 0);
  portalock_bounded_semaphore_t *holder = new_sem(1, "v", dir);
  portalock_bounded_semaphore_t *waiter = new_sem(1, "v", dir);
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_acquire(holder, &err), &err);
  int fds = tu_count_fds();
  portalock_wait wait;
  CHECK_STATUS(portalock_bounded_semaphore_try(waiter, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK(tu_count_fds() > fds); /* the wait keeps the slot file open */
  char slot[PORTALOCK_PATH_MAX];
  snprintf(slot, sizeof slot, "%s", portalock_bounded_semaphore_filename(waiter, 0));
  change(dir, slot);
  CHECK_STATUS(portalock_bounded_semaphore_try(waiter, &wait, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, errnum);
  CHECK_CONTAINS(err.message, slot);
  CHECK_INT(tu_count_fds(), fds);
  /* the handle stays usable: the next try meets the same state again */
  CHECK_STATUS(portalock_bounded_semaphore_acquire_with(waiter, 0.1, 0.02, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(tu_count_fds(), fds);
  portalock_bounded_semaphore_free(waiter);
  CHECK_OK(portalock_bounded_semaphore_release(holder, &err), &err);
  portalock_bounded_semaphore_free(holder);
}

static void remove_directory(const char *dir, const char *slot) {
  CHECK_INT(unlink(slot), 0);
  CHECK_INT(rmdir(dir), 0);
}

/* What another user can do in a sticky /tmp to a slot file it created. */
static void rename_symlink_over(const char *dir, const char *slot) {
  char link[PORTALOCK_PATH_MAX + 8];
  snprintf(link, sizeof link, "%s/link", dir);
  CHECK_INT(symlink("/dev/null", link), 0);
  CHECK_INT(rename(link, slot), 0);
}

static void test_slot_vanishes(void) {
  tu_group("a slot file that stops being openable ends the wait with an error");
  expect_wait_ends("removed", remove_directory, ENOENT);
  expect_wait_ends("symlinked", rename_symlink_over, ELOOP);
}

static void plant_symlink(const char *slot) {
  CHECK_INT(symlink("/dev/null", slot), 0);
}

static void plant_fifo(const char *slot) {
  CHECK_INT(mkfifo(slot, 0600), 0);
}

/* A bad file at slot 0 of 2 (`plant`): every acquire gets slot 1, a wait for slot 1 while it
 * is held still waits (it is not ended by slot 0), and it gets slot 1 once that is free. */
static void expect_slot_skipped(const char *sub, void (*plant)(const char *slot)) {
  char dir[PORTALOCK_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/%s", tu_scratch(), sub);
  CHECK_INT(mkdir(dir, 0700), 0);
  portalock_bounded_semaphore_t *sem = new_sem(2, "s", dir);
  plant(portalock_bounded_semaphore_filename(sem, 0));
  portalock_error err;
  int fds = tu_count_fds();
  for (int i = 0; i < 20; i++) {
    CHECK_OK(portalock_bounded_semaphore_acquire_with(sem, 0, 0.02, &err), &err);
    CHECK_INT(portalock_bounded_semaphore_slot(sem), 1);
    CHECK_OK(portalock_bounded_semaphore_release(sem, &err), &err);
  }
  CHECK_INT(tu_count_fds(), fds);
  portalock_bounded_semaphore_t *holder = new_sem(2, "s", dir);
  CHECK_OK(portalock_bounded_semaphore_acquire_with(holder, 0, 0.02, &err), &err);
  portalock_wait wait;
  CHECK_STATUS(portalock_bounded_semaphore_try(sem, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK_CONTAINS(err.message, "1 slot files cannot be used");
  CHECK(wait.fd >= 0); /* the usable slot is watched */
  CHECK_OK(portalock_bounded_semaphore_release(holder, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_acquire_with(sem, 2, 0.02, &err), &err);
  CHECK_INT(portalock_bounded_semaphore_slot(sem), 1);
  portalock_bounded_semaphore_free(holder);
  portalock_bounded_semaphore_free(sem);
  CHECK_INT(tu_count_fds(), fds);
}

static void test_bad_slot_skipped(void) {
  tu_group("a slot file that cannot be used is skipped; all of them: an error naming one");
  expect_slot_skipped("symlink-slot", plant_symlink);
  expect_slot_skipped("fifo-slot", plant_fifo);

  char dir[PORTALOCK_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/all-bad", tu_scratch());
  CHECK_INT(mkdir(dir, 0700), 0);
  portalock_bounded_semaphore_t *sem = new_sem(2, "s", dir);
  char slot0[PORTALOCK_PATH_MAX], slot1[PORTALOCK_PATH_MAX];
  snprintf(slot0, sizeof slot0, "%s", portalock_bounded_semaphore_filename(sem, 0));
  snprintf(slot1, sizeof slot1, "%s", portalock_bounded_semaphore_filename(sem, 1));
  plant_symlink(slot0);
  plant_symlink(slot1);
  int fds = tu_count_fds();
  portalock_error err;
  /* at once, not after the timeout: waiting cannot cure it */
  double start = portalock_monotonic();
  CHECK_STATUS(portalock_bounded_semaphore_acquire_with(sem, 5, 0.02, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK(portalock_monotonic() - start < 1);
  CHECK_INT(err.errnum, ELOOP);
  CHECK(strcmp(err.path, slot0) == 0 || strcmp(err.path, slot1) == 0);
  CHECK_CONTAINS(err.message, err.path);
  CHECK_CONTAINS(err.message, "none of its 2 slot files can be used");
  CHECK_INT(tu_count_fds(), fds);
  portalock_bounded_semaphore_free(sem);
}

/* Lets this process open `more` descriptors beyond those it has open now. */
static void limit_descriptors(int more) {
  int lowest = tu_open("/dev/null", O_RDONLY);
  close(lowest);
  struct rlimit rl = {.rlim_cur = (rlim_t)(lowest + more), .rlim_max = (rlim_t)(lowest + more)};
  CHECK_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void test_descriptors_run_out(void) {
  tu_group("a wait short of descriptors polls");
  enum { SLOTS = 20 };
  const char *dir = tu_scratch();
  portalock_bounded_semaphore_t *held[SLOTS];
  portalock_error err;
  for (int i = 0; i < SLOTS; i++) {
    held[i] = new_sem(SLOTS, "fds", dir);
    CHECK_OK(portalock_bounded_semaphore_acquire_with(held[i], 0, 0.02, &err), &err);
  }
  tu_proc child;
  if (tu_fork(&child) == 0) {
    portalock_bounded_semaphore_t *w = new_sem(SLOTS, "fds", dir);
    limit_descriptors(SLOTS / 2); /* a wait would keep SLOTS slot files open */
    portalock_wait_counters before, after;
    portalock_wait_counters_get(&before);
    portalock_wait wait;
    portalock_error e;
    if (portalock_bounded_semaphore_try(w, &wait, &e) != PORTALOCK_CONTENDED) {
      fprintf(stderr, "try: %s\n", e.message);
      tu_child_exit(2);
    }
    portalock_wait_counters_get(&after);
    if (wait.fd != -1 || after.unwatched != before.unwatched + 1) tu_child_exit(3);
    tu_send(&child, 'W');
    if (portalock_bounded_semaphore_acquire_with(w, 10, 0.02, &e) != PORTALOCK_OK) {
      fprintf(stderr, "acquire: %s\n", e.message);
      tu_child_exit(4);
    }
    tu_send_long(&child, portalock_bounded_semaphore_slot(w));
    portalock_bounded_semaphore_free(w);
    tu_child_exit(0);
  }
  CHECK_INT(tu_recv(&child), 'W');
  tu_sleep(0.1);
  long released = portalock_bounded_semaphore_slot(held[7]);
  CHECK_OK(portalock_bounded_semaphore_release(held[7], &err), &err);
  CHECK_INT(tu_recv_long(&child), released);
  CHECK_INT(tu_reap(&child), 0);
  for (int i = 0; i < SLOTS; i++)
    portalock_bounded_semaphore_free(held[i]);
}

static void test_default_directory(void) {
  tu_group("the default directory");
  char *saved = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
  char sub[PORTALOCK_PATH_MAX];
  snprintf(sub, sizeof sub, "%s/deftmp", tu_scratch());
  CHECK_INT(mkdir(sub, 0700), 0);
  char with_dots[PORTALOCK_PATH_MAX + 16];
  snprintf(with_dots, sizeof with_dots, "%s/../deftmp/", sub);
  setenv("TMPDIR", with_dots, 1);
  portalock_bounded_semaphore_t *sem = new_sem(1, "d", NULL);
  CHECK_STR(portalock_bounded_semaphore_directory(sem), sub); /* normpath'd, as Python */
  portalock_bounded_semaphore_free(sem);
  /* the rule every named object shares (Lockable asks it through the binding) */
  char dir[PORTALOCK_PATH_MAX];
  portalock_error err;
  CHECK_OK(portalock_default_temp_directory(dir, sizeof dir, &err), &err);
  CHECK_STR(dir, sub);
  CHECK_INT(portalock_default_temp_directory(dir, 4, &err), PORTALOCK_INVALID);
  CHECK(strstr(err.message, "'cap'") != NULL);
  /* an unusable $TMPDIR is skipped */
  setenv("TMPDIR", "/nonexistent/portalock", 1);
  unsetenv("TEMP");
  unsetenv("TMP");
  sem = new_sem(1, "d", NULL);
  CHECK_STR(portalock_bounded_semaphore_directory(sem), "/tmp");
  portalock_bounded_semaphore_free(sem);
  CHECK_OK(portalock_default_temp_directory(dir, sizeof dir, &err), &err);
  CHECK_STR(dir, "/tmp");
  if (saved) {
    setenv("TMPDIR", saved, 1);
    free(saved);
  } else {
    unsetenv("TMPDIR");
  }
}

static void test_fork(void) {
  tu_group("fork: the child holds nothing");
  portalock_bounded_semaphore_t *sem = new_sem(1, "fork", tu_scratch());
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_acquire(sem, &err), &err);
  tu_proc child;
  if (tu_fork(&child) == 0) {
    portalock_error e;
    int code = 0;
    if (portalock_bounded_semaphore_locked(sem)) code = 2;
    if (portalock_bounded_semaphore_release(sem, &e) != PORTALOCK_OK) code = 3;
    /* the parent still holds the only slot */
    if (portalock_bounded_semaphore_acquire_with(sem, 0, 0.02, &e) != PORTALOCK_ALREADY_LOCKED)
      code = 4;
    portalock_bounded_semaphore_free(sem);
    tu_child_exit(code);
  }
  CHECK_INT(tu_reap(&child), 0);
  CHECK_INT(portalock_bounded_semaphore_locked(sem), 1);
  CHECK_INT(tu_probe_locked(portalock_bounded_semaphore_filename(sem, 0), PORTALOCK_BACKEND_FLOCK),
            1);
  int fds = tu_count_fds();
  CHECK_OK(portalock_bounded_semaphore_release(sem, &err), &err);
  CHECK_INT(tu_count_fds(), fds - 1);
  portalock_bounded_semaphore_free(sem);
}

int main(void) {
  tu_init("bounded");
  test_names();
  test_bad_inputs();
  test_sweep();
  test_random_order();
  test_killed_holder();
  test_missing_directory();
  test_slot_vanishes();
  test_bad_slot_skipped();
  test_descriptors_run_out();
  test_default_directory();
  test_fork();
  return tu_done();
}
