/* Files and semaphores that root creates for processes of another user, as an nginx master
 * creates them (init_by_lua) for its workers: a given perm is applied exactly despite the
 * umask, so the other user can use them; without one, the other user's attempt fails with a
 * message naming the file, its owner and mode, the user, and what to change. Runs as root
 * (CI does) with 'nobody' as the other user; otherwise only the modes are checked. */
#include "testutil.h"

#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static uid_t other_uid;
static gid_t other_gid;
static int as_root; /* root, and 'nobody' exists */
static char path[PORTALOCK_PATH_MAX];
static char sem_name[64];
static char sem_file[128];
static char nobody_runs[64];

static int mode_of(const char *file) {
  struct stat st;
  CHECK_INT(stat(file, &st), 0);
  return (int)(st.st_mode & 07777);
}

/* The parts of the message for a file of root's, mode `mode`, that nobody may not open. */
static void check_denied(const portalock_error *err, const char *file, const char *mode,
                         const char *remedy) {
  CHECK_INT(err->status, PORTALOCK_LOCK_EXCEPTION);
  CHECK_INT(err->errnum, EACCES);
  CHECK_STR(err->path, file);
  CHECK_CONTAINS(err->message, file);
  CHECK_CONTAINS(err->message, "Permission denied");
  CHECK_CONTAINS(err->message, "owned by root (uid 0)");
  CHECK_CONTAINS(err->message, mode);
  CHECK_CONTAINS(err->message, nobody_runs);
  CHECK_CONTAINS(err->message, remedy);
  CHECK_CONTAINS(err->message,
                 "an existing file keeps its mode: chown it to nobody or chmod it 0666");
}

/* ---------------------------------------------------------------- Lock */

/* Creates `path` by acquiring a Lock with `perm` under umask 022, as root. */
static void create_lock(int perm) {
  mode_t old = umask(022);
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.perm = perm;
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, path, &o, &err), &err);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  portalock_lock_free(lock);
  umask(old);
}

static void lock_as_other(portalock_error *err, portalock_status expected) {
  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(&lock, path, NULL, err), err);
  CHECK_STATUS(portalock_lock_acquire_with(lock, 0, 0.25, 0, err), expected, err);
  portalock_lock_free(lock);
}

static void other_locks(void) {
  portalock_error err;
  lock_as_other(&err, PORTALOCK_OK);
}

static void other_is_denied_the_lock(void) {
  portalock_error err;
  lock_as_other(&err, PORTALOCK_LOCK_EXCEPTION);
  check_denied(&err, path, "mode 0644",
               "remove it so that it is created again with option perm 0666 (438 in decimal)");
}

/* The directory of a file nobody may not create: named, with its owner and mode. */
static void other_cannot_create(void) {
  portalock_error err;
  lock_as_other(&err, PORTALOCK_LOCK_EXCEPTION);
  CHECK_INT(err.errnum, EACCES);
  CHECK_CONTAINS(err.message, "it cannot be created in '");
  CHECK_CONTAINS(err.message, "(owned by root (uid 0), mode 0755)");
  CHECK_CONTAINS(err.message, nobody_runs);
  CHECK_CONTAINS(err.message, "let nobody write that directory");
}

static void test_lock(const char *dir) {
  tu_group("Lock: a given perm is exact; another user's EACCES says what to change");
  snprintf(path, sizeof path, "%s/shared.lock", dir);
  create_lock(0666);
  CHECK_INT(mode_of(path), 0666);
  if (as_root) tu_as_user(other_uid, other_gid, other_locks);

  snprintf(path, sizeof path, "%s/private.lock", dir);
  create_lock(PORTALOCK_PERM_UMASK);
  CHECK_INT(mode_of(path), 0644);
  if (as_root) tu_as_user(other_uid, other_gid, other_is_denied_the_lock);

  if (!as_root) return;
  char closed[PORTALOCK_PATH_MAX / 2];
  snprintf(closed, sizeof closed, "%s/closed", dir);
  CHECK_INT(mkdir(closed, 0755), 0);
  CHECK_INT(chmod(closed, 0755), 0);
  snprintf(path, sizeof path, "%s/missing.lock", closed);
  tu_as_user(other_uid, other_gid, other_cannot_create);
}

/* ---------------------------------------------------------------- bounded semaphore */

static portalock_bounded_semaphore_t *new_bounded(long maximum, int perm) {
  portalock_bounded_semaphore_options o;
  portalock_bounded_semaphore_options_init(&o);
  o.name = "perm";
  o.directory = path; /* the shared directory */
  o.timeout = 0;
  o.perm = perm;
  portalock_bounded_semaphore_t *sem;
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_new(&sem, maximum, &o, &err), &err);
  return sem;
}

static void other_takes_a_slot(void) {
  portalock_bounded_semaphore_t *sem = new_bounded(2, PORTALOCK_PERM_UMASK);
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_acquire(sem, &err), &err);
  portalock_bounded_semaphore_free(sem);
}

static void other_is_denied_the_slot(void) {
  portalock_bounded_semaphore_t *sem = new_bounded(1, PORTALOCK_PERM_UMASK);
  portalock_error err;
  CHECK_STATUS(portalock_bounded_semaphore_acquire(sem, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  char slot[PORTALOCK_PATH_MAX + 16];
  snprintf(slot, sizeof slot, "%s/perm.00.lock", path);
  check_denied(&err, slot, "mode 0600",
               "remove it so that it is created again with option perm 0666 (438 in decimal)");
  portalock_bounded_semaphore_free(sem);
}

static void test_bounded(const char *dir) {
  /* Slot files are opened read-only, so 0644 would let nobody in: umask 077 keeps it out. */
  tu_group("bounded semaphore: slot files of a given perm, exactly");
  snprintf(path, sizeof path, "%s/open", dir);
  CHECK_INT(mkdir(path, 01777), 0);
  CHECK_INT(chmod(path, 01777), 0);
  /* root takes both slots, creating both files (0666 despite umask 077), then lets go */
  mode_t old = umask(077);
  portalock_bounded_semaphore_t *a = new_bounded(2, 0666), *b = new_bounded(2, 0666);
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_acquire(a, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_acquire(b, &err), &err);
  umask(old);
  CHECK_INT(mode_of(portalock_bounded_semaphore_filename(a, 0)), 0666);
  CHECK_INT(mode_of(portalock_bounded_semaphore_filename(a, 1)), 0666);
  portalock_bounded_semaphore_free(a);
  portalock_bounded_semaphore_free(b);
  if (as_root) tu_as_user(other_uid, other_gid, other_takes_a_slot);

  snprintf(path, sizeof path, "%s/private", dir);
  CHECK_INT(mkdir(path, 01777), 0);
  CHECK_INT(chmod(path, 01777), 0);
  old = umask(077);
  a = new_bounded(1, PORTALOCK_PERM_UMASK);
  CHECK_OK(portalock_bounded_semaphore_acquire(a, &err), &err);
  umask(old);
  CHECK_INT(mode_of(portalock_bounded_semaphore_filename(a, 0)), 0600);
  portalock_bounded_semaphore_free(a);
  if (as_root) tu_as_user(other_uid, other_gid, other_is_denied_the_slot);
}

/* ---------------------------------------------------------------- counting semaphore */

static portalock_semaphore_t *new_semaphore(int perm) {
  portalock_semaphore_options o;
  portalock_semaphore_options_init(&o);
  o.perm = perm;
  portalock_semaphore_t *sem;
  portalock_error err;
  CHECK_OK(portalock_semaphore_new(&sem, sem_name, 1, &o, &err), &err);
  return sem;
}

/* Creates the semaphore with `perm` under umask 022, as root. */
static void create_semaphore(int perm) {
  portalock_semaphore_unlink(sem_name, NULL);
  mode_t old = umask(022);
  portalock_semaphore_t *sem = new_semaphore(perm);
  long value;
  portalock_error err;
  CHECK_OK(portalock_semaphore_value(sem, &value, &err), &err);
  CHECK_INT(value, 1);
  portalock_semaphore_free(sem);
  umask(old);
}

static void other_takes_a_count(void) {
  portalock_semaphore_t *sem = new_semaphore(0666);
  portalock_error err;
  CHECK_OK(portalock_semaphore_try(sem, NULL, &err), &err);
  CHECK_OK(portalock_semaphore_release(sem, 1, &err), &err);
  portalock_semaphore_free(sem);
}

/* With its own default perm (0600) nobody does not trust root's 0666 semaphore: the message
 * says which perm shares it. */
static void other_needs_a_sharing_perm(void) {
  portalock_semaphore_t *sem = new_semaphore(0600);
  portalock_error err;
  CHECK_STATUS(portalock_semaphore_try(sem, NULL, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, EACCES);
  CHECK_CONTAINS(err.message, "owned by root (uid 0), mode 0666");
  CHECK_CONTAINS(err.message, nobody_runs);
  CHECK_CONTAINS(err.message, "give this object option perm 0666 (438 in decimal) to share it");
  portalock_semaphore_free(sem);
}

static void other_is_denied_the_semaphore(void) {
  portalock_semaphore_t *sem = new_semaphore(0666);
  portalock_error err;
  CHECK_STATUS(portalock_semaphore_try(sem, NULL, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  check_denied(&err, sem_file, "mode 0600",
               "remove it so that it is created again with option perm 0666 (438 in decimal), "
               "and the same perm here");
  portalock_semaphore_free(sem);
}

static void test_semaphore(void) {
  tu_group("Semaphore: a perm exact despite the umask, made whole before its name appears");
  snprintf(sem_name, sizeof sem_name, "pltest.%ld.perm", (long)getpid());
  snprintf(sem_file, sizeof sem_file, "/dev/shm/sem.portalock.%s", sem_name);
  create_semaphore(0666);
  CHECK_INT(mode_of(sem_file), 0666);
  if (as_root) {
    tu_as_user(other_uid, other_gid, other_takes_a_count);
    tu_as_user(other_uid, other_gid, other_needs_a_sharing_perm);
  }
  create_semaphore(0640);
  CHECK_INT(mode_of(sem_file), 0640);
  create_semaphore(0600); /* the default */
  CHECK_INT(mode_of(sem_file), 0600);
  if (as_root) tu_as_user(other_uid, other_gid, other_is_denied_the_semaphore);
  portalock_error err;
  CHECK_OK(portalock_semaphore_unlink(sem_name, &err), &err);
}

/* A failed check ends the test before its own unlink: the semaphore must not outlive it. */
static void unlink_semaphore(void) {
  if (sem_name[0] != '\0') portalock_semaphore_unlink(sem_name, NULL);
}

int main(void) {
  tu_init("perm");
  atexit(unlink_semaphore);
  as_root = tu_other_user("another user's attempts", &other_uid, &other_gid);
  if (as_root)
    snprintf(nobody_runs, sizeof nobody_runs, "runs as nobody (uid %ld)", (long)other_uid);
  const char *dir = tu_shared_dir();
  test_lock(dir);
  test_bounded(dir);
  test_semaphore();
  return tu_done();
}
