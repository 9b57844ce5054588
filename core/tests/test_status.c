/* Tests portalock_lock_holders: who holds or waits for the locks on a file (/proc/locks). */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#define MAX_HOLDERS 8

/* How a child locks: raw system calls, since the core detaches its own locks in a child. */
typedef enum raw_how { FLOCK_EX, FLOCK_SH, POSIX_WR, POSIX_RD, OFD_WR } raw_how;

static int raw_lock(int fd, raw_how how, int block) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_whence = SEEK_SET; /* the whole file */
  switch (how) {
  case FLOCK_EX:
    return flock(fd, LOCK_EX | (block ? 0 : LOCK_NB));
  case FLOCK_SH:
    return flock(fd, LOCK_SH | (block ? 0 : LOCK_NB));
  case POSIX_WR:
    fl.l_type = F_WRLCK;
    return fcntl(fd, block ? F_SETLKW : F_SETLK, &fl);
  case POSIX_RD:
    fl.l_type = F_RDLCK;
    return fcntl(fd, block ? F_SETLKW : F_SETLK, &fl);
  case OFD_WR:
    fl.l_type = F_WRLCK;
    return fcntl(fd, block ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  }
  errno = EINVAL;
  return -1;
}

/* Forks a child that opens `path`, locks it as `how` says and sends 'R' once it holds the
 * lock; it holds it until hold_end. With `block`, the child first sends 'W' and then waits
 * in the kernel for the lock. */
static void hold(tu_proc *p, const char *path, raw_how how, int block) {
  if (tu_fork(p) != 0) {
    if (!block && tu_recv(p) != 'R') tu_fail(__FILE__, __LINE__, "child did not lock %s", path);
    if (block && tu_recv(p) != 'W') tu_fail(__FILE__, __LINE__, "child did not start on %s", path);
    return;
  }
  int fd = tu_open(path, O_RDWR);
  if (block) tu_send(p, 'W');
  if (raw_lock(fd, how, block) != 0) tu_child_exit(10);
  tu_send(p, 'R');
  tu_recv(p); /* a byte or end of file: let go */
  close(fd);
  tu_child_exit(0);
}

static void hold_end(tu_proc *p) {
  tu_send(p, 'X'); /* not only end of file: a later child holds a copy of the pipe's write end */
  tu_close_to(p);
  CHECK_INT(tu_reap(p), 0);
}

/* The holders of `path` (at most MAX_HOLDERS), checking the call succeeds. */
static size_t holders(const char *path, portalock_holder *out) {
  portalock_error err;
  size_t count = 12345;
  memset(out, 0x5a, sizeof *out * MAX_HOLDERS);
  CHECK_OK(portalock_lock_holders(path, out, MAX_HOLDERS, &count, &err), &err);
  CHECK(count <= MAX_HOLDERS);
  return count;
}

static void check_holder(const portalock_holder *h, long pid, int exclusive, int waiting,
                         const char *type) {
  CHECK_INT(h->pid, pid);
  CHECK_INT(h->exclusive, exclusive);
  CHECK_INT(h->waiting, waiting);
  CHECK_STR(h->type, type);
}

static void test_free(void) {
  const char *path = tu_path("free");
  tu_write_file(path, "");
  portalock_holder out[MAX_HOLDERS];
  CHECK_INT(holders(path, out), 0);

  /* a lock on another file in the same directory is not ours */
  const char *other = tu_path("other");
  tu_write_file(other, "");
  tu_proc p;
  hold(&p, other, FLOCK_EX, 0);
  CHECK_INT(holders(path, out), 0);
  CHECK_INT(holders(other, out), 1);
  hold_end(&p);
  CHECK_INT(holders(other, out), 0);

  /* no room asked for: only the count */
  portalock_error err;
  size_t count = 99;
  CHECK_OK(portalock_lock_holders(path, NULL, 0, &count, &err), &err);
  CHECK_INT(count, 0);
}

static void test_flock_exclusive(void) {
  const char *path = tu_path("flock-ex");
  tu_write_file(path, "");
  tu_proc p;
  hold(&p, path, FLOCK_EX, 0);
  portalock_holder out[MAX_HOLDERS];
  CHECK_INT(holders(path, out), 1);
  check_holder(&out[0], (long)p.pid, 1, 0, "FLOCK");

  /* through a symlink: stat follows it, as opening would */
  const char *link = tu_path("flock-ex.link");
  CHECK_INT(symlink(path, link), 0);
  CHECK_INT(holders(link, out), 1);
  CHECK_INT(out[0].pid, (long)p.pid);

  /* cap 0 counts without writing */
  portalock_error err;
  size_t count = 0;
  CHECK_OK(portalock_lock_holders(path, NULL, 0, &count, &err), &err);
  CHECK_INT(count, 1);

  hold_end(&p);
  CHECK_INT(holders(path, out), 0);

  /* this process's own lock, taken through the core, names this process */
  int fd = tu_open(path, O_RDWR);
  CHECK_OK(portalock_lock(fd, PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB, PORTALOCK_BACKEND_FLOCK, &err),
           &err);
  CHECK_INT(holders(path, out), 1);
  check_holder(&out[0], (long)getpid(), 1, 0, "FLOCK");
  close(fd);
  CHECK_INT(holders(path, out), 0);
}

static void test_flock_shared(void) {
  const char *path = tu_path("flock-sh");
  tu_write_file(path, "");
  tu_proc a, b;
  hold(&a, path, FLOCK_SH, 0);
  hold(&b, path, FLOCK_SH, 0);
  portalock_holder out[MAX_HOLDERS];
  CHECK_INT(holders(path, out), 2);
  int seen_a = 0, seen_b = 0;
  for (int i = 0; i < 2; i++) {
    CHECK_INT(out[i].exclusive, 0);
    CHECK_INT(out[i].waiting, 0);
    CHECK_STR(out[i].type, "FLOCK");
    seen_a += out[i].pid == (long)a.pid;
    seen_b += out[i].pid == (long)b.pid;
  }
  CHECK_INT(seen_a, 1);
  CHECK_INT(seen_b, 1);

  /* more holders than room: the count says so, nothing is written past `cap` */
  portalock_holder small[2];
  memset(small, 0x5a, sizeof small);
  portalock_error err;
  size_t count = 0;
  CHECK_OK(portalock_lock_holders(path, small, 1, &count, &err), &err);
  CHECK_INT(count, 2);
  CHECK(small[0].pid == (long)a.pid || small[0].pid == (long)b.pid);
  CHECK_INT(((unsigned char *)&small[1])[0], 0x5a);

  hold_end(&a);
  CHECK_INT(holders(path, out), 1);
  CHECK_INT(out[0].pid, (long)b.pid);
  hold_end(&b);
  CHECK_INT(holders(path, out), 0);
}

static void test_record_locks(void) {
  const char *path = tu_path("records");
  tu_write_file(path, "");
  portalock_holder out[MAX_HOLDERS];
  tu_proc p;

  hold(&p, path, POSIX_WR, 0);
  CHECK_INT(holders(path, out), 1);
  check_holder(&out[0], (long)p.pid, 1, 0, "POSIX");
  hold_end(&p);

  hold(&p, path, POSIX_RD, 0);
  CHECK_INT(holders(path, out), 1);
  check_holder(&out[0], (long)p.pid, 0, 0, "POSIX");
  hold_end(&p);

  hold(&p, path, OFD_WR, 0);
  CHECK_INT(holders(path, out), 1);
  check_holder(&out[0], -1, 1, 0, "OFDLCK"); /* an OFD lock has no owning process */
  hold_end(&p);

  CHECK_INT(holders(path, out), 0);
}

/* Polls until `path` has `want` entries (the waiter may not be queued yet). */
static size_t holders_until(const char *path, portalock_holder *out, size_t want) {
  double until = tu_now() + 10;
  size_t n;
  while ((n = holders(path, out)) != want && tu_now() < until)
    tu_sleep(0.01);
  return n;
}

static void test_waiter(raw_how how, const char *type) {
  const char *path = tu_path(type);
  tu_write_file(path, "");
  tu_proc holder, waiter;
  hold(&holder, path, how, 0);
  hold(&waiter, path, how, 1);
  portalock_holder out[MAX_HOLDERS];
  CHECK_INT(holders_until(path, out, 2), 2);
  int h = out[0].waiting ? 1 : 0, w = 1 - h;
  check_holder(&out[h], (long)holder.pid, 1, 0, type);
  check_holder(&out[w], (long)waiter.pid, 1, 1, type);

  /* the holder lets go: the waiter takes over */
  hold_end(&holder);
  CHECK_INT(tu_recv(&waiter), 'R');
  CHECK_INT(holders(path, out), 1);
  check_holder(&out[0], (long)waiter.pid, 1, 0, type);
  hold_end(&waiter);
  CHECK_INT(holders(path, out), 0);
}

static void test_errors(void) {
  portalock_error err;
  portalock_holder out[MAX_HOLDERS];
  size_t count = 7;

  const char *missing = tu_path("missing");
  CHECK_STATUS(portalock_lock_holders(missing, out, MAX_HOLDERS, &count, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);
  CHECK_STR(err.path, missing);
  CHECK_CONTAINS(err.message, missing);
  CHECK_INT(count, 0);

  /* a dangling symlink is missing too */
  const char *dangling = tu_path("dangling");
  CHECK_INT(symlink(missing, dangling), 0);
  CHECK_STATUS(portalock_lock_holders(dangling, out, MAX_HOLDERS, &count, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOENT);

  const char *path = tu_path("args");
  tu_write_file(path, "");
  CHECK_STATUS(portalock_lock_holders(NULL, out, MAX_HOLDERS, &count, &err), PORTALOCK_INVALID,
               &err);
  CHECK_CONTAINS(err.message, "`path`");
  CHECK_STATUS(portalock_lock_holders(path, out, MAX_HOLDERS, NULL, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "`count`");
  CHECK_STATUS(portalock_lock_holders(path, NULL, 1, &count, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "`out`");
  /* a NULL err is allowed */
  CHECK_INT(portalock_lock_holders(NULL, NULL, 0, &count, NULL), PORTALOCK_INVALID);
  CHECK_INT(portalock_lock_holders(missing, NULL, 0, &count, NULL), PORTALOCK_LOCK_EXCEPTION);
  CHECK_INT(portalock_lock_holders(path, NULL, 0, &count, NULL), PORTALOCK_OK);
}

int main(void) {
  tu_init("status");
#ifdef __linux__
  tu_group("a free file has no holders; other files' locks do not count");
  test_free();
  tu_group("flock LOCK_EX: one exclusive FLOCK holder with its PID");
  test_flock_exclusive();
  tu_group("flock LOCK_SH by two processes: two READ holders");
  test_flock_shared();
  tu_group("posix and OFD record locks");
  test_record_locks();
  tu_group("blocked waiters show waiting = 1");
  test_waiter(FLOCK_EX, "FLOCK");
  test_waiter(POSIX_WR, "POSIX");
  tu_group("errors: missing path, bad arguments");
  test_errors();
#else
  tu_group("without /proc/locks: LOCK_EXCEPTION, ENOSYS");
  const char *path = tu_path("any");
  tu_write_file(path, "");
  portalock_error err;
  size_t count;
  CHECK_STATUS(portalock_lock_holders(path, NULL, 0, &count, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOSYS);
  CHECK_CONTAINS(err.message, "Linux");
#endif
  return tu_done();
}
