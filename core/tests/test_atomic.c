/* open_atomic: commit, abort, replace = 0, modes and owners, symlinks, targets that are no
 * regular file, poisoning, temporaries left behind, descriptors, forked children and writers
 * SIGKILLed mid-write. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* Entries of the scratch directory whose name contains ".portalock-". */
static int count_temporaries(void) {
  DIR *d = opendir(tu_scratch());
  CHECK(d != NULL);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".portalock-") != NULL) n++;
  closedir(d);
  return n;
}

static void remove_temporaries(void) {
  DIR *d = opendir(tu_scratch());
  CHECK(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".portalock-") != NULL) CHECK_INT(unlinkat(dirfd(d), e->d_name, 0), 0);
  closedir(d);
}

static mode_t file_mode(const char *path) {
  struct stat st;
  CHECK_INT(lstat(path, &st), 0);
  return st.st_mode & 07777;
}

static portalock_atomic_t *open_atomic(const char *path, int replace) {
  portalock_atomic_options opts;
  portalock_atomic_options_init(&opts);
  CHECK_INT(opts.replace, 1);
  opts.replace = replace;
  portalock_error err;
  portalock_atomic_t *a = NULL;
  CHECK_OK(portalock_atomic_open(&a, path, &opts, &err), &err);
  CHECK(a != NULL);
  return a;
}

static void write_str(portalock_atomic_t *a, const char *s) {
  portalock_error err;
  CHECK_OK(portalock_atomic_write(a, s, strlen(s), &err), &err);
}

static void read_is(const char *path, const char *expected) {
  char buf[256];
  CHECK(tu_read_file(path, buf, sizeof buf) >= 0);
  CHECK_STR(buf, expected);
}

static void test_commit_and_abort(void) {
  tu_group("commit publishes, abort and free leave the target untouched");
  const char *path = tu_path("commit.txt");
  int fds = tu_count_fds();
  tu_write_file(path, "old");

  portalock_atomic_t *a = open_atomic(path, 1);
  CHECK(portalock_atomic_is_open(a));
  CHECK_STR(portalock_atomic_filename(a), path);
  const char *temp = portalock_atomic_temp_path(a);
  CHECK(temp != NULL);
  /* ".<basename>.portalock-<16 hex>.tmp" in the same directory, mode 0600 */
  char prefix[256];
  snprintf(prefix, sizeof prefix, "%s/.commit.txt.portalock-", tu_scratch());
  CHECK(strncmp(temp, prefix, strlen(prefix)) == 0);
  const char *hex = temp + strlen(prefix);
  CHECK_INT(strlen(hex), 16 + 4);
  CHECK_INT(strspn(hex, "0123456789abcdef"), 16);
  CHECK_STR(hex + 16, ".tmp");
  CHECK_INT(file_mode(temp), 0600);
  CHECK_INT(count_temporaries(), 1);
  CHECK_INT(tu_count_fds(), fds + 2); /* the temporary and the directory */

  write_str(a, "new ");
  write_str(a, "content");
  read_is(path, "old"); /* nothing published yet */
  portalock_error err;
  int published = -1;
  CHECK_OK(portalock_atomic_commit(a, &published, &err), &err);
  CHECK_INT(published, 1);
  read_is(path, "new content");
  CHECK(!portalock_atomic_is_open(a));
  CHECK(portalock_atomic_temp_path(a) == NULL);
  CHECK_INT(portalock_atomic_fd(a), -1);
  CHECK_INT(count_temporaries(), 0);
  CHECK_INT(tu_count_fds(), fds);
  /* a second commit, a write after commit: misuse; abort: a no-op */
  CHECK_STATUS(portalock_atomic_commit(a, &published, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "already committed or aborted");
  CHECK_INT(published, 0);
  CHECK_STATUS(portalock_atomic_write(a, "x", 1, &err), PORTALOCK_INVALID, &err);
  CHECK_OK(portalock_atomic_abort(a, &err), &err);
  portalock_atomic_free(a);
  read_is(path, "new content");

  a = open_atomic(path, 1);
  write_str(a, "discarded");
  CHECK_OK(portalock_atomic_abort(a, &err), &err);
  CHECK_INT(count_temporaries(), 0);
  CHECK_INT(tu_count_fds(), fds);
  CHECK_STATUS(portalock_atomic_commit(a, NULL, &err), PORTALOCK_INVALID, &err);
  portalock_atomic_free(a);
  read_is(path, "new content");

  a = open_atomic(path, 1);
  write_str(a, "discarded");
  portalock_atomic_free(a); /* free of an uncommitted handle aborts */
  CHECK_INT(count_temporaries(), 0);
  CHECK_INT(tu_count_fds(), fds);
  read_is(path, "new content");

  /* an empty commit makes an empty file; a relative name works after chdir */
  a = open_atomic(path, 1);
  CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
  portalock_atomic_free(a);
  read_is(path, "");
  CHECK_INT(tu_count_fds(), fds);
}

static void test_modes(void) {
  tu_group("modes: a new file gets 0666 & ~umask, an existing one keeps its mode");
  const char *path = tu_path("mode.txt");
  portalock_error err;
  mode_t old = umask(027);
  portalock_atomic_t *a = open_atomic(path, 1);
  CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
  portalock_atomic_free(a);
  CHECK_INT(file_mode(path), 0640);
  umask(old);

  CHECK_INT(chmod(path, 0604), 0);
  a = open_atomic(path, 1);
  write_str(a, "x");
  CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
  portalock_atomic_free(a);
  CHECK_INT(file_mode(path), 0604);

  CHECK_INT(chmod(path, 02751), 0); /* set-gid survives (fchown happens before fchmod) */
  a = open_atomic(path, 1);
  CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
  portalock_atomic_free(a);
  CHECK_INT(file_mode(path) & 0777, 0751);

  /* owner and group are copied where permitted (root: any; others: EPERM is ignored) */
  struct stat st;
  CHECK_INT(lstat(path, &st), 0);
  if (geteuid() == 0) {
    CHECK_INT(chown(path, 12345, 23456), 0);
    CHECK_INT(chmod(path, 02751), 0); /* chown cleared the set-gid bit */
    a = open_atomic(path, 1);
    CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
    portalock_atomic_free(a);
    CHECK_INT(lstat(path, &st), 0);
    CHECK_INT(st.st_uid, 12345);
    CHECK_INT(st.st_gid, 23456);
    CHECK_INT(st.st_mode & 07777, 02751);
  }
}

static void test_symlink(void) {
  tu_group("a symlink at the target is replaced, not written through");
  const char *path = tu_path("link.txt");
  const char *real = tu_path("real.txt");
  tu_write_file(real, "real");
  CHECK_INT(symlink(real, path), 0);
  portalock_error err;
  portalock_atomic_t *a = open_atomic(path, 1);
  write_str(a, "replaced");
  CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
  portalock_atomic_free(a);
  struct stat st;
  CHECK_INT(lstat(path, &st), 0);
  CHECK(S_ISREG(st.st_mode));
  read_is(path, "replaced");
  read_is(real, "real");

  /* replace = 0: a dangling symlink counts as existing */
  const char *dangling = tu_path("dangling.txt");
  CHECK_INT(symlink(tu_path("nowhere"), dangling), 0);
  a = open_atomic(dangling, 0);
  write_str(a, "payload");
  int published = -1;
  CHECK_STATUS(portalock_atomic_commit(a, &published, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(published, 0);
  CHECK_INT(err.errnum, EEXIST);
  CHECK(!tu_exists(tu_path("nowhere")));
  const char *kept = portalock_atomic_temp_path(a);
  CHECK(kept != NULL);
  CHECK_CONTAINS(err.message, kept);
  read_is(kept, "payload");
  CHECK_INT(unlink(kept), 0);
  portalock_atomic_free(a);
  CHECK_INT(count_temporaries(), 0);
}

static mode_t file_type(const char *path) {
  struct stat st;
  CHECK_INT(lstat(path, &st), 0);
  return st.st_mode & S_IFMT;
}

/* open_atomic of `path`, which is `type` (as the message says), is refused with `errnum`. */
static void check_refused_at_open(const char *path, int replace, int errnum, const char *type) {
  portalock_atomic_options opts;
  portalock_atomic_options_init(&opts);
  opts.replace = replace;
  portalock_error err;
  portalock_atomic_t *a = NULL;
  mode_t before = file_type(path);
  CHECK_STATUS(portalock_atomic_open(&a, path, &opts, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK(a == NULL);
  CHECK_INT(err.errnum, errnum);
  CHECK_CONTAINS(err.message, path);
  CHECK_CONTAINS(err.message, type);
  CHECK_INT(file_type(path), before);
  CHECK_INT(count_temporaries(), 0);
}

static void test_not_regular(void) {
  tu_group("a device, FIFO, socket or directory at the target is refused, the payload kept");
  int fds = tu_count_fds();
  const char *fifo = tu_path("fifo");
  CHECK_INT(mkfifo(fifo, 0644), 0);
  check_refused_at_open(fifo, 1, EINVAL, "is a FIFO");
  check_refused_at_open(fifo, 0, EINVAL, "is a FIFO");
  const char *sock = tu_path("socket");
  CHECK_INT(mknod(sock, S_IFSOCK | 0644, 0), 0);
  check_refused_at_open(sock, 1, EINVAL, "is a socket");
  const char *dir = tu_path("directory");
  CHECK_INT(mkdir(dir, 0755), 0);
  check_refused_at_open(dir, 1, EISDIR, "is a directory");
  if (geteuid() == 0) {
    const char *null = tu_path("null");
    CHECK_INT(mknod(null, S_IFCHR | 0666, makedev(1, 3)), 0);
    check_refused_at_open(null, 1, EINVAL, "is a character device");
    CHECK_INT(file_type(null), S_IFCHR);
  } else {
    printf("  skipped the device node: mknod needs root\n");
  }

  /* a FIFO that appears between open and commit: refused at commit, the payload kept */
  const char *late = tu_path("late-fifo");
  portalock_atomic_t *a = open_atomic(late, 1);
  write_str(a, "payload");
  CHECK_INT(mkfifo(late, 0600), 0);
  portalock_error err;
  int published = -1;
  CHECK_STATUS(portalock_atomic_commit(a, &published, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(published, 0);
  CHECK_INT(err.errnum, EINVAL);
  CHECK_CONTAINS(err.message, late);
  CHECK_CONTAINS(err.message, "is a FIFO");
  CHECK_INT(file_type(late), S_IFIFO);
  const char *kept = portalock_atomic_temp_path(a);
  CHECK(kept != NULL);
  CHECK_CONTAINS(err.message, kept);
  read_is(kept, "payload");
  CHECK_INT(unlink(kept), 0);
  portalock_atomic_free(a);
  CHECK_INT(count_temporaries(), 0);
  CHECK_INT(tu_count_fds(), fds);
}

static void test_no_replace(void) {
  tu_group("replace = 0 never replaces, not even a file that appears while writing");
  const char *path = tu_path("noreplace.txt");
  portalock_error err;
  int fds = tu_count_fds();

  portalock_atomic_t *a = open_atomic(path, 0);
  write_str(a, "first");
  int published = 0;
  CHECK_OK(portalock_atomic_commit(a, &published, &err), &err);
  CHECK_INT(published, 1);
  portalock_atomic_free(a);
  read_is(path, "first");
  CHECK_INT(count_temporaries(), 0);

  a = open_atomic(path, 0); /* exists already */
  write_str(a, "second");
  CHECK_STATUS(portalock_atomic_commit(a, &published, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(published, 0);
  CHECK_INT(err.errnum, EEXIST);
  CHECK_CONTAINS(err.message, "payload was kept at");
  read_is(path, "first");
  char kept[PORTALOCK_PATH_MAX];
  snprintf(kept, sizeof kept, "%s", portalock_atomic_temp_path(a));
  read_is(kept, "second");
  portalock_atomic_free(a); /* free never removes a kept payload */
  read_is(kept, "second");
  CHECK_INT(unlink(kept), 0);

  const char *late = tu_path("late.txt");
  a = open_atomic(late, 0);
  write_str(a, "mine");
  tu_write_file(late, "theirs"); /* appears while writing */
  CHECK_STATUS(portalock_atomic_commit(a, NULL, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, EEXIST);
  read_is(late, "theirs");
  CHECK_INT(unlink(portalock_atomic_temp_path(a)), 0);
  portalock_atomic_free(a);
  CHECK_INT(count_temporaries(), 0);
  CHECK_INT(tu_count_fds(), fds);
}

static void test_poisoned(void) {
  tu_group("a failed write poisons the handle: commit aborts");
  const char *path = tu_path("poison.txt");
  tu_write_file(path, "old");
  tu_proc p;
  if (tu_fork(&p) == 0) {
    /* EFBIG past a 1 KiB file size limit (SIGXFSZ ignored in this child only) */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1024, 1024};
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &rl), 0);
    portalock_atomic_t *a = open_atomic(path, 1);
    char big[4096];
    memset(big, 'x', sizeof big);
    portalock_error err;
    CHECK_STATUS(portalock_atomic_write(a, big, sizeof big, &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_INT(err.errnum, EFBIG);
    CHECK(portalock_atomic_is_poisoned(a));
    CHECK_STATUS(portalock_atomic_write(a, "y", 1, &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_CONTAINS(err.message, "earlier write failed");
    int published = -1;
    CHECK_STATUS(portalock_atomic_commit(a, &published, &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_INT(published, 0);
    CHECK_INT(err.errnum, EFBIG);
    CHECK_CONTAINS(err.message, "nothing was published");
    CHECK(portalock_atomic_temp_path(a) == NULL);
    portalock_atomic_free(a);
    tu_child_exit(0);
  }
  CHECK_INT(tu_reap(&p), 0);
  read_is(path, "old");
  CHECK_INT(count_temporaries(), 0);
}

static void test_bad_input(void) {
  tu_group("bad input");
  portalock_error err;
  portalock_atomic_t *a = (portalock_atomic_t *)&err; /* must be reset to NULL */
  CHECK_STATUS(portalock_atomic_open(&a, "", NULL, &err), PORTALOCK_INVALID, &err);
  CHECK(a == NULL);
  CHECK_CONTAINS(err.message, "'filename'");
  CHECK_STATUS(portalock_atomic_open(&a, NULL, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_atomic_open(NULL, "x", NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_atomic_open(&a, tu_path("dir/"), NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "not a directory");
  CHECK_STATUS(portalock_atomic_open(&a, tu_path(".."), NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_atomic_open(&a, ".", NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_atomic_open(&a, tu_path("missing/x"), NULL, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);
  CHECK_CONTAINS(err.message, "missing");
  tu_write_file(tu_path("plain"), "");
  CHECK_STATUS(portalock_atomic_open(&a, tu_path("plain/x"), NULL, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, ENOTDIR);
  CHECK(a == NULL);
  CHECK_STATUS(portalock_atomic_commit(NULL, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_atomic_abort(NULL, &err), PORTALOCK_INVALID, &err);
  portalock_atomic_free(NULL);
  CHECK_INT(portalock_atomic_fd(NULL), -1);

  /* a 255-byte basename: the temporary's name is shortened to fit */
  char name[256];
  memset(name, 'n', 255);
  name[255] = '\0';
  const char *path = tu_path(name);
  a = open_atomic(path, 1);
  const char *slash = strrchr(portalock_atomic_temp_path(a), '/');
  CHECK_INT(strlen(slash + 1), 255);
  write_str(a, "long");
  CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
  portalock_atomic_free(a);
  read_is(path, "long");
  CHECK_INT(count_temporaries(), 0);
}

static void test_fork(void) {
  tu_group("a forked child's copy is inert: it never removes or publishes the parent's file");
  const char *path = tu_path("forked.txt");
  portalock_atomic_t *a = open_atomic(path, 1);
  write_str(a, "parent");
  tu_proc p;
  if (tu_fork(&p) == 0) {
    portalock_error err;
    CHECK(!portalock_atomic_is_open(a));
    CHECK_STATUS(portalock_atomic_commit(a, NULL, &err), PORTALOCK_INVALID, &err);
    CHECK_CONTAINS(err.message, "forked child");
    CHECK_STATUS(portalock_atomic_write(a, "x", 1, &err), PORTALOCK_INVALID, &err);
    CHECK_OK(portalock_atomic_abort(a, &err), &err);
    portalock_atomic_free(a);
    tu_child_exit(0);
  }
  CHECK_INT(tu_reap(&p), 0);
  CHECK_INT(count_temporaries(), 1);
  portalock_error err;
  CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
  portalock_atomic_free(a);
  read_is(path, "parent");
  CHECK_INT(count_temporaries(), 0);
}

/* A writer replacing a 64 KiB file of one repeated letter, SIGKILLed at random moments while
 * a reader child checks every read sees one letter throughout. */
static void test_sigkill(void) {
  tu_group("writers SIGKILLed mid-write: readers see all old or all new");
  const char *path = tu_path("killed.txt");
  enum { SIZE = 65536 };
  static char block[SIZE + 1];
  memset(block, 'a', SIZE);
  block[SIZE] = '\0';
  tu_write_file(path, block);

  tu_proc reader;
  if (tu_fork(&reader) == 0) {
    static char buf[SIZE + 2];
    long reads = 0;
    int fl = fcntl(reader.to, F_GETFL);
    CHECK(fl >= 0 && fcntl(reader.to, F_SETFL, fl | O_NONBLOCK) == 0);
    for (;;) {
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      CHECK(fd >= 0);
      ssize_t n = 0, r;
      while ((r = read(fd, buf + n, sizeof buf - (size_t)n)) > 0)
        n += r;
      close(fd);
      if (n != SIZE) tu_fail(__FILE__, __LINE__, "read %ld bytes, expected %d", (long)n, SIZE);
      for (ssize_t i = 1; i < n; i++)
        if (buf[i] != buf[0]) tu_fail(__FILE__, __LINE__, "mixed content at byte %ld", (long)i);
      reads++;
      /* stop once the parent says so (non-blocking peek at the pipe) */
      char c;
      ssize_t got = read(reader.to, &c, 1);
      if (got >= 0 || (errno != EAGAIN && errno != EINTR)) break;
    }
    tu_send_long(&reader, reads);
    tu_child_exit(0);
  }

  srand((unsigned)getpid());
  int committed = 0;
  for (int round = 0; round < 60; round++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      char letter = (char)('b' + round % 24);
      static char data[SIZE];
      memset(data, letter, SIZE);
      for (;;) {
        portalock_atomic_t *a = open_atomic(path, 1);
        portalock_error err;
        for (int k = 0; k < SIZE; k += 4096)
          CHECK_OK(portalock_atomic_write(a, data + k, 4096, &err), &err);
        CHECK_OK(portalock_atomic_commit(a, NULL, &err), &err);
        portalock_atomic_free(a);
      }
    }
    tu_sleep((rand() % 3000) / 1e6);
    CHECK_INT(kill(pid, SIGKILL), 0);
    int status;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    committed++;
    CHECK(count_temporaries() <= 1); /* a killed writer leaves at most its one temporary */
    remove_temporaries();
  }
  tu_send(&reader, 'q');
  long reads = tu_recv_long(&reader);
  CHECK_INT(tu_reap(&reader), 0);
  CHECK(reads > 0);
  CHECK_INT(committed, 60);
  char buf[16];
  CHECK(tu_read_file(path, buf, sizeof buf) > 0);
}

int main(void) {
  tu_init("core.atomic");
  test_commit_and_abort();
  test_modes();
  test_symlink();
  test_not_regular();
  test_no_replace();
  test_poisoned();
  test_bad_input();
  test_fork();
  test_sigkill();
  return tu_done();
}
