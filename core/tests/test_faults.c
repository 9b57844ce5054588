/* Tests what this machine cannot produce on demand, injected by fault_shim.c:
 * ENOLCK fails at once as a LockException, EINTR never ends a lock call or a wait with an
 * error, a TemporaryFileLock whose file (or a PidFileLock whose sidecar) is replaced between
 * open and lock starts over, and an
 * atomic write whose fsync fails publishes nothing (or, when only the directory's fsync fails,
 * says that it did publish), and a wait on a network file system never queues in the kernel
 * (whose client may answer a blocking lock call only when it next retries), and a command run
 * that watches a descriptor without a signalfd still ends the command when it becomes readable
 * and still forwards signals. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void inject_fsync(const char *fault) {
  if (fault == NULL)
    unsetenv("PORTALOCK_FAULT_FSYNC");
  else
    setenv("PORTALOCK_FAULT_FSYNC", fault, 1);
}

static void inject(const char *fault) {
  if (fault == NULL)
    unsetenv("PORTALOCK_FAULT_FLOCK");
  else
    setenv("PORTALOCK_FAULT_FLOCK", fault, 1);
}

/* Without the shim every check below would pass for the wrong reason: make sure it is there. */
static void test_shim_loaded(void) {
  int fd = tu_open(tu_path("shim.lock"), O_RDWR | O_CREAT);
  inject("ENOLCK");
  int r = flock(fd, LOCK_EX | LOCK_NB);
  int errnum = errno;
  inject(NULL);
  CHECK_INT(r, -1);
  CHECK_INT(errnum, ENOLCK);
  CHECK_INT(close(fd), 0);
}

static void test_enolck(void) {
  portalock_error err;
  int fd = tu_open(tu_path("enolck.lock"), O_RDWR | O_CREAT);
  inject("ENOLCK");
  CHECK_STATUS(portalock_lock(fd, PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_FLOCK, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOLCK);

  portalock_lock_options opts;
  portalock_lock_options_init(&opts);
  opts.timeout = 5;
  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(&lock, tu_path("enolck.lock"), &opts, &err), &err);
  int fds = tu_count_fds();
  double start = tu_now();
  CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_BETWEEN(tu_now() - start, 0.0, 1.0); /* at once, not after the 5 s timeout */
  CHECK_INT(err.errnum, ENOLCK);
  CHECK_CONTAINS(err.path, "enolck.lock");
  CHECK_INT(portalock_lock_locked(lock), 0);
  CHECK_INT(tu_count_fds(), fds); /* the failed attempt closed what it opened */
  inject(NULL);
  portalock_lock_free(lock);
  CHECK_INT(close(fd), 0);
}

static void test_eintr(void) {
  portalock_error err;
  int fd = tu_open(tu_path("eintr.lock"), O_RDWR | O_CREAT);
  inject("EINTR");
  CHECK_OK(portalock_lock(fd, PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_FLOCK, &err), &err);
  CHECK_OK(portalock_unlock(fd, PORTALOCK_BACKEND_FLOCK, &err), &err);
  CHECK_OK(portalock_lock(fd, PORTALOCK_LOCK_SH | PORTALOCK_LOCK_NB, PORTALOCK_BACKEND_FLOCK, &err),
           &err);
  CHECK_OK(portalock_unlock(fd, PORTALOCK_BACKEND_FLOCK, &err), &err);

  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(&lock, tu_path("eintr.lock"), NULL, &err), &err);
  for (int i = 0; i < 10; i++) {
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    CHECK_OK(portalock_lock_release(lock, &err), &err);
  }
  inject(NULL);
  portalock_lock_free(lock);
  CHECK_INT(close(fd), 0);
}

typedef portalock_status (*new_lock_fn)(portalock_lock_t **out, const char *filename,
                                        const portalock_lock_options *opts, portalock_error *err);

/* Without the inode re-check the lock would end up on the unlinked old file while another
 * process could lock the new one. */
static void test_replaced_lock_file(new_lock_fn new_lock, const char *filename) {
  portalock_error err;
  portalock_lock_t *lock;
  CHECK_OK(new_lock(&lock, tu_path(filename), NULL, &err), &err);
  const char *path = portalock_lock_lock_filename(lock);
  char replacement[PATH_MAX];
  snprintf(replacement, sizeof replacement, "%s.new", path);
  tu_write_file(path, "");
  tu_write_file(replacement, "");
  struct stat old_st;
  CHECK(stat(path, &old_st) == 0);
  setenv("PORTALOCK_FAULT_RENAME_FROM", replacement, 1);
  setenv("PORTALOCK_FAULT_RENAME_TO", path, 1);
  inject("RENAME");
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK(getenv("PORTALOCK_FAULT_FLOCK") == NULL); /* the replacement happened */
  struct stat by_fd, by_path;
  CHECK(fstat(portalock_lock_fd(lock), &by_fd) == 0);
  CHECK(stat(path, &by_path) == 0);
  CHECK(by_fd.st_ino == by_path.st_ino);
  CHECK(by_fd.st_ino != old_st.st_ino);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_exists(path), 0);
  portalock_lock_free(lock);
}

static void atomic_write(portalock_atomic_t **out, const char *path, const char *text) {
  portalock_error err;
  CHECK_OK(portalock_atomic_open(out, path, NULL, &err), &err);
  CHECK_OK(portalock_atomic_write(*out, text, strlen(text), &err), &err);
}

static int count_entries(const char *dir) {
  char command[PATH_MAX + 32];
  snprintf(command, sizeof command, "ls -A '%s' | wc -l", dir);
  FILE *p = popen(command, "r");
  CHECK(p != NULL);
  int n = -1;
  CHECK(fscanf(p, "%d", &n) == 1);
  pclose(p);
  return n;
}

static void test_atomic_fsync(void) {
  const char *dir = tu_path("atomic");
  CHECK(mkdir(dir, 0700) == 0);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/config", dir);
  tu_write_file(path, "old");
  char buf[16];
  portalock_error err;
  portalock_atomic_t *a;
  int published = -1;

  /* a full disk at the file's fsync: nothing published, no temporary left */
  atomic_write(&a, path, "new");
  inject_fsync("ENOSPC");
  CHECK_STATUS(portalock_atomic_commit(a, &published, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  inject_fsync(NULL);
  CHECK_INT(err.errnum, ENOSPC);
  CHECK_INT(published, 0);
  portalock_atomic_free(a);
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 3);
  CHECK_STR(buf, "old");
  CHECK_INT(count_entries(dir), 1);

  /* only the directory's fsync fails: published, and the error says so */
  published = -1;
  atomic_write(&a, path, "new");
  inject_fsync("DIR");
  CHECK_STATUS(portalock_atomic_commit(a, &published, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  inject_fsync(NULL);
  CHECK_INT(err.errnum, EIO);
  CHECK_INT(published, 1);
  CHECK_CONTAINS(err.message, "was published");
  portalock_atomic_free(a);
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 3);
  CHECK_STR(buf, "new");
  CHECK_INT(count_entries(dir), 1);
}

#ifdef __linux__
/* Whether `pid` has the file `st` open, as /proc/PID/fd says; where that cannot be read,
 * whether a second has passed since `since`. */
static int has_open(pid_t pid, const struct stat *st, double since) {
  char dir[64], link[64 + sizeof(struct dirent)];
  snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
  DIR *d = opendir(dir);
  if (d == NULL) return tu_now() - since > 1.0;
  int found = 0;
  struct stat other;
  for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
    snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
    found = stat(link, &other) == 0 && other.st_dev == st->st_dev && other.st_ino == st->st_ino;
  }
  closedir(d);
  return found;
}

/* Waits with no timeout for `path` while another process holds it until this one has tried
 * (it then keeps the file open) and had time to start waiting;
 * returns how many of this process's waits the kernel's queue ended meanwhile, and in
 * *watched how many a watch or the clock did. */
static unsigned long long wait_for_brief_holder(const char *path, unsigned long long *watched) {
  tu_proc brief;
  if (tu_fork(&brief) == 0) {
    int fd = tu_open(path, O_RDWR | O_CREAT);
    CHECK(flock(fd, LOCK_EX | LOCK_NB) == 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    tu_send(&brief, 'R');
    double since = tu_now();
    while (!has_open(getppid(), &st, since) && tu_now() - since < 20)
      tu_sleep(0.01);
    tu_sleep(0.05);
    tu_child_exit(0); /* the kernel closes fd, ending the hold */
  }
  CHECK_INT(tu_recv(&brief), 'R');
  portalock_lock_options opts;
  portalock_lock_options_init(&opts);
  opts.timeout = INFINITY;
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&lock, path, &opts, &err), &err);
  portalock_wait_counters before, after;
  portalock_wait_counters_get(&before);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  portalock_wait_counters_get(&after);
  CHECK_INT(tu_reap(&brief), 0);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  portalock_lock_free(lock);
  *watched = (after.event - before.event) + (after.timer - before.timer);
  return after.kernel - before.kernel;
}

static void test_network_file_system(void) {
  unsigned long long watched;
  /* On a local file system this wait queues in the kernel... */
  CHECK(wait_for_brief_holder(tu_path("local.lock"), &watched) >= 1);
  CHECK_INT(watched, 0);
  /* ...on NFS it watches the file and polls every check_interval instead. */
  setenv("PORTALOCK_FAULT_FSTATFS", "NFS", 1);
  unsigned long long kernel = wait_for_brief_holder(tu_path("nfs.lock"), &watched);
  unsetenv("PORTALOCK_FAULT_FSTATFS");
  CHECK_INT(kernel, 0);
  CHECK(watched >= 1);
}

/* Where sem_open keeps its semaphores elsewhere than the file checked (glibc before 2.34
 * without a tmpfs at /dev/shm), a counting semaphore says so at once: it used to re-create
 * the semaphore PL_ROUNDS times and report that it "kept disappearing". */
#define MOVED_PATTERN "/dev/shm/elsewhere.portalock-new.*"
static void test_semaphore_elsewhere(void) {
  char name[64];
  snprintf(name, sizeof name, "faults.%ld.elsewhere", (long)getpid());
  portalock_semaphore_t *sem = NULL;
  portalock_error err;
  CHECK_OK(portalock_semaphore_new(&sem, name, 1, NULL, &err), &err);
  glob_t before;
  CHECK(glob(MOVED_PATTERN, 0, NULL, &before) != GLOB_ABORTED);
  setenv("PORTALOCK_FAULT_SEM_OPEN", "ELSEWHERE", 1);
  long value = -1;
  CHECK_STATUS(portalock_semaphore_value(sem, &value, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  unsetenv("PORTALOCK_FAULT_SEM_OPEN");
  CHECK_INT(err.errnum, ENOTSUP);
  CHECK_CONTAINS(err.message, "keeps named semaphores elsewhere");
  CHECK_CONTAINS(err.message, "/dev/shm/sem.portalock.");
  /* the semaphore the shim moved away, made under a temporary name (semfile.c): the one
   * file of that kind that was not there before */
  glob_t after;
  CHECK_INT(glob(MOVED_PATTERN, 0, NULL, &after), 0);
  size_t found = 0;
  for (size_t i = 0; i < after.gl_pathc; i++) {
    int old = 0;
    for (size_t k = 0; k < before.gl_pathc && !old; k++)
      old = strcmp(after.gl_pathv[i], before.gl_pathv[k]) == 0;
    if (!old && unlink(after.gl_pathv[i]) == 0) found++;
  }
  CHECK_INT(found, 1);
  globfree(&after);
  globfree(&before);
  portalock_semaphore_free(sem);
}

/* Without a signalfd (as on systems that have none) a watching run looks at its descriptor
 * between short waits for signals: the command still ends soon after the descriptor becomes
 * readable, and a signal sent to the caller still reaches it. */
static void test_watch_without_signalfd(void) {
  setenv("PORTALOCK_FAULT_SIGNALFD", "EMFILE", 1);
  sigset_t none;
  sigemptyset(&none);
  CHECK_INT(pthread_sigmask(SIG_SETMASK, &none, NULL), 0);
  int fds[2];
  CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
  tu_proc p;
  if (tu_fork(&p) == 0) { /* a runner whose SIGTERM the command traps */
    signal(SIGTERM, SIG_DFL);
    CHECK(dup2(p.from, STDOUT_FILENO) == STDOUT_FILENO);
    const char *argv[] = {"sh", "-c", "trap 'exit 7' TERM; printf R; while :; do sleep 0.05; done",
                          NULL};
    int code = -99, fired = -99;
    portalock_error err;
    CHECK_OK(portalock_command_run_watching(argv, NULL, 0, fds[0], 5.0, &code, &fired, &err), &err);
    tu_child_exit(fired == 0 ? code : 50);
  }
  char c;
  CHECK_INT(read(p.from, &c, 1), 1);
  CHECK_INT(c, 'R');
  tu_sleep(0.2);
  CHECK_INT(kill(p.pid, SIGTERM), 0);
  CHECK_INT(tu_reap(&p), 7);

  const char *argv[] = {"sleep", "30", NULL};
  int code = -99, fired = -99;
  portalock_error err;
  pid_t writer = fork();
  CHECK(writer >= 0);
  if (writer == 0) {
    tu_sleep(0.3);
    _exit(write(fds[1], "L", 1) == 1 ? 0 : 1);
  }
  int before = tu_count_fds();
  double t0 = tu_now();
  CHECK_OK(portalock_command_run_watching(argv, NULL, 0, fds[0], 5.0, &code, &fired, &err), &err);
  CHECK_BETWEEN(tu_now() - t0, 0.25, 3.0);
  CHECK_INT(code, 128 + SIGTERM);
  CHECK_INT(fired, 1);
  CHECK_INT(tu_count_fds(), before);
  unsetenv("PORTALOCK_FAULT_SIGNALFD");
  int status;
  CHECK_INT(waitpid(writer, &status, 0), writer);
  CHECK_INT(close(fds[0]), 0);
  CHECK_INT(close(fds[1]), 0);
}
#endif

int main(void) {
  tu_init("faults");
  tu_group("the fault shim is preloaded");
  test_shim_loaded();
  tu_group("ENOLCK: LockException at once, nothing left open");
  test_enolck();
  tu_group("EINTR: lock, unlock and acquire carry on");
  test_eintr();
  tu_group("TemporaryFileLock: a file replaced between open and lock");
  test_replaced_lock_file(portalock_temporary_file_lock_new, "temporary.lock");
  tu_group("PidFileLock: a sidecar replaced between open and lock");
  test_replaced_lock_file(portalock_pid_file_lock_new, "daemon.pid");
  tu_group("open_atomic: fsync fails (ENOSPC: nothing published; directory only: published)");
  test_atomic_fsync();
#ifdef __linux__ /* where the shim can inject the fault */
  tu_group("a network file system: waits watch and poll, never queue in the kernel");
  test_network_file_system();
  tu_group("a counting semaphore that sem_open keeps elsewhere: a clear error");
  test_semaphore_elsewhere();
  tu_group("a watching command run without a signalfd: still ends, still forwards");
  test_watch_without_signalfd();
#endif
  return tu_done();
}
