/* Tests mutual exclusion under load: 4 processes x 2000 locked increments of a shared counter. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#define WORKERS 4
#define CYCLES 2000

/* Reads the number in the counter file and writes it back plus one (not atomic on purpose). */
static void increment(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  CHECK(n >= 0);
  buf[n] = '\0';
  long v = n > 0 ? strtol(buf, NULL, 10) : 0;
  int len = snprintf(buf, sizeof buf, "%ld\n", v + 1);
  CHECK(pwrite(fd, buf, (size_t)len, 0) == len);
}

static portalock_lock_options options(portalock_backend backend) {
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.backend = backend;
  o.timeout = INFINITY;
  o.check_interval = 0.001;
  return o;
}

static void worker(const char *lock_path, const char *counter, portalock_backend backend,
                   int rlock) {
  int fd = tu_open(counter, O_RDWR);
  portalock_lock_options o = options(backend);
  portalock_error err;
  if (rlock) {
    portalock_rlock_t *r;
    CHECK_OK(portalock_rlock_new(&r, lock_path, &o, &err), &err);
    uintptr_t me = (uintptr_t)getpid();
    for (int i = 0; i < CYCLES; i++) {
      CHECK_OK(portalock_rlock_acquire(r, me, &err), &err);
      CHECK_OK(portalock_rlock_acquire(r, me, &err), &err);
      CHECK_INT(portalock_rlock_count(r), 2);
      increment(fd);
      CHECK_OK(portalock_rlock_release(r, me, &err), &err);
      CHECK_OK(portalock_rlock_release(r, me, &err), &err);
    }
    portalock_rlock_free(r);
  } else {
    portalock_lock_t *l;
    CHECK_OK(portalock_lock_new(&l, lock_path, &o, &err), &err);
    for (int i = 0; i < CYCLES; i++) {
      CHECK_OK(portalock_lock_acquire(l, &err), &err);
      increment(fd);
      CHECK_OK(portalock_lock_release(l, &err), &err);
    }
    portalock_lock_free(l);
  }
  close(fd);
}

static void run(const char *label, portalock_backend backend, int rlock) {
  char name[64];
  snprintf(name, sizeof name, "counter-%s.lock", label);
  char *lock_path = strdup(tu_path(name));
  snprintf(name, sizeof name, "counter-%s.txt", label);
  char *counter = strdup(tu_path(name));
  tu_write_file(counter, "0\n");

  double t0 = tu_now();
  tu_proc procs[WORKERS];
  for (int w = 0; w < WORKERS; w++) {
    if (tu_fork(&procs[w]) == 0) {
      CHECK_INT(tu_recv(&procs[w]), 'g'); /* start together */
      worker(lock_path, counter, backend, rlock);
      tu_child_exit(0);
    }
  }
  for (int w = 0; w < WORKERS; w++)
    tu_send(&procs[w], 'g');
  for (int w = 0; w < WORKERS; w++)
    CHECK_INT(tu_reap(&procs[w]), 0);
  char buf[32];
  CHECK(tu_read_file(counter, buf, sizeof buf) > 0);
  CHECK_INT(strtol(buf, NULL, 10), WORKERS * CYCLES);
  printf("counter: %s: %d increments in %.2f s\n", label, WORKERS * CYCLES, tu_now() - t0);
  free(lock_path);
  free(counter);
}

int main(void) {
  tu_init("counter");
  tu_group("Lock, flock backend");
  run("flock", PORTALOCK_BACKEND_FLOCK, 0);
  tu_group("Lock, ofd backend");
  run("ofd", PORTALOCK_BACKEND_OFD, 0);
  tu_group("Lock, posix backend");
  run("posix", PORTALOCK_BACKEND_POSIX, 0);
  tu_group("RLock (two nested acquires per cycle), flock backend");
  run("rlock", PORTALOCK_BACKEND_FLOCK, 1);
  return tu_done();
}
