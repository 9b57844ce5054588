/* An LD_PRELOAD shim for bench/run's instrumented split of a handoff: records when each call
 * a waiter may block in, or take a lock with, enters and returns (CLOCK_MONOTONIC), and at
 * exit writes the records to $PORTALOCK_SPLIT_DIR/PID, one line per call:
 *   NAME TID ENTER_NS RETURN_NS RESULT ARG
 * ARG is flock's operation, fcntl's command and lock type (CMD*16+TYPE, for the locking
 * commands) and 0 otherwise. The library is not changed: the calls it makes into the C
 * library pass through here. A record costs two reads of the vDSO clock. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#define SPLIT_RECORDS 65536 /* per process; later calls are not recorded */

typedef struct split_record {
  const char *name;
  pid_t tid;
  int64_t enter, leave;
  long result, arg;
} split_record;

static split_record records[SPLIT_RECORDS];
static atomic_uint used;
static _Thread_local pid_t my_tid; /* gettid() is a system call: asked once per thread */

static void forget_tid(void) {
  my_tid = 0; /* in a fork's child, whose one thread has a new id */
}

__attribute__((constructor)) static void split_init(void) {
  pthread_atfork(NULL, NULL, forget_tid);
}

static int64_t split_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void split_record_call(const char *name, int64_t enter, long result, long arg) {
  int64_t leave = split_now();
  if (my_tid == 0) my_tid = gettid();
  unsigned i = atomic_fetch_add(&used, 1);
  if (i < SPLIT_RECORDS) records[i] = (split_record){name, my_tid, enter, leave, result, arg};
}

__attribute__((destructor)) static void split_write(void) {
  const char *dir = getenv("PORTALOCK_SPLIT_DIR");
  if (dir == NULL) return;
  char path[4096];
  snprintf(path, sizeof path, "%s/%d", dir, (int)getpid());
  FILE *f = fopen(path, "we");
  if (f == NULL) return;
  unsigned n = atomic_load(&used);
  for (unsigned i = 0; i < n && i < SPLIT_RECORDS; i++)
    fprintf(f, "%s %d %lld %lld %ld %ld\n", records[i].name, (int)records[i].tid,
            (long long)records[i].enter, (long long)records[i].leave, records[i].result,
            records[i].arg);
  fclose(f);
}

/* `real`: the next definition of `name` (the C library's), looked up once per wrapper. */
#define REAL(name)                                                                                 \
  static __typeof__(&name) real;                                                                   \
  if (real == NULL) real = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

/* Wraps a call: times it and records it under `name` with `arg`. */
#define TIMED(name, arg, call)                                                                     \
  int64_t enter = split_now();                                                                     \
  long result = (long)(call);                                                                      \
  split_record_call(name, enter, result, arg);                                                     \
  return result

int poll(struct pollfd *fds, nfds_t n, int timeout) {
  REAL(poll);
  TIMED("poll", 0, real(fds, n, timeout));
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask) {
  REAL(ppoll);
  TIMED("ppoll", 0, real(fds, n, t, mask));
}

int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t) {
  REAL(select);
  TIMED("select", 0, real(n, r, w, e, t));
}

int flock(int fd, int operation) {
  REAL(flock);
  TIMED("flock", operation, real(fd, operation));
}

/* fcntl's record argument: CMD*16+TYPE for the locking commands, else 0. */
static long fcntl_arg(int cmd, void *p) {
  switch (cmd) {
  case F_SETLK:
  case F_SETLKW:
  case F_OFD_SETLK:
  case F_OFD_SETLKW:
    return (long)cmd * 16 + ((struct flock *)p)->l_type;
  default:
    return 0;
  }
}

/* fcntl's third argument, when there is one, is an int or a pointer: passed on as a pointer. */
#define FCNTL_WRAPPER(fname)                                                                       \
  int fname(int fd, int cmd, ...) {                                                                \
    va_list ap;                                                                                    \
    va_start(ap, cmd);                                                                             \
    void *p = va_arg(ap, void *);                                                                  \
    va_end(ap);                                                                                    \
    REAL(fname);                                                                                   \
    TIMED("fcntl", fcntl_arg(cmd, p), real(fd, cmd, p));                                           \
  }
FCNTL_WRAPPER(fcntl)
FCNTL_WRAPPER(fcntl64)

ssize_t read(int fd, void *buf, size_t n) {
  REAL(read);
  TIMED("read", 0, real(fd, buf, n));
}

int close(int fd) {
  REAL(close);
  TIMED("close", 0, real(fd));
}

int pthread_join(pthread_t t, void **ret) {
  REAL(pthread_join);
  TIMED("pthread_join", 0, real(t, ret));
}

int sem_clockwait(sem_t *s, clockid_t c, const struct timespec *at) {
  REAL(sem_clockwait);
  TIMED("sem_clockwait", 0, real(s, c, at));
}

int nanosleep(const struct timespec *t, struct timespec *rem) {
  REAL(nanosleep);
  TIMED("nanosleep", 0, real(t, rem));
}

int clock_nanosleep(clockid_t c, int flags, const struct timespec *t, struct timespec *rem) {
  REAL(clock_nanosleep);
  TIMED("clock_nanosleep", 0, real(c, flags, t, rem));
}
