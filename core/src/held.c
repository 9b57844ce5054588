/* The process-wide table of descriptors this process locked, and what happens to them at
 * fork(): a child must neither release its parent's locks nor keep them alive. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "platform/platform.h"

static pthread_mutex_t pl_held_mutex = PTHREAD_MUTEX_INITIALIZER;
/* Taken before pl_held_mutex, never after (pl_held_posix_enter). */
static pthread_mutex_t pl_posix_mutex = PTHREAD_MUTEX_INITIALIZER;
/* This process's ID, refreshed in a forked child: getpid(2) is a system call per check. */
static atomic_long pl_pid;
static pthread_once_t pl_held_once = PTHREAD_ONCE_INIT;
static pl_held *pl_held_table;
static size_t pl_held_len, pl_held_cap;
static uint64_t pl_held_next_serial = 1;

/* What lock() took through each small descriptor with the flock or ofd backend, as
 * (backend << 2) | type, or 0: all that a failed conversion asks about. A slot of its own,
 * without the table's mutex, which would cost an uncontended lock()/unlock() pair a tenth of
 * its time. Posix locks (whose entries need identities) and larger descriptors use the
 * table. A forked child keeps its copy, as it keeps lock()'s entries of the table. */
#define PL_SLOT_FDS 1024
static _Atomic unsigned char pl_slots[PL_SLOT_FDS];

static int pl_slotted(int fd, portalock_backend backend) {
  return fd >= 0 && fd < PL_SLOT_FDS && backend != PORTALOCK_BACKEND_POSIX;
}

static void pl_held_prepare(void) {
  pthread_mutex_lock(&pl_posix_mutex);
  pthread_mutex_lock(&pl_held_mutex);
}

static void pl_held_parent(void) {
  pthread_mutex_unlock(&pl_held_mutex);
  pthread_mutex_unlock(&pl_posix_mutex);
}

/* An entry without an identity cannot be checked: it counts as the same file. */
static int pl_held_same_file(const pl_held *h) {
  struct stat st;
  if (!h->identified) return 1;
  return fstat(h->fd, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino;
}

/* Lock objects' descriptors are re-pointed at /dev/null rather than closed: the number may
 * sit inside a stream (a Lua FILE*) that will close it later, and must not be reused. */
static void pl_held_child(void) {
  atomic_store(&pl_pid, (long)getpid());
  pthread_mutex_unlock(&pl_held_mutex);
  int null_fd = -1;
  size_t kept = 0;
  for (size_t i = 0; i < pl_held_len; i++) {
    const pl_held *h = &pl_held_table[i];
    if (!h->detach_at_fork) {
      pl_held_table[kept++] = *h;
      continue;
    }
    if (!pl_held_same_file(h)) continue;
    if (null_fd < 0) null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    /* Without /dev/null, closing is still better than keeping the parent's lock alive. */
    if (null_fd < 0 || pl_platform_dup_cloexec(null_fd, h->fd) < 0) close(h->fd);
  }
  pl_held_len = kept;
  if (null_fd >= 0) close(null_fd);
  pthread_mutex_unlock(&pl_posix_mutex);
}

static void pl_held_init(void) {
  atomic_store(&pl_pid, (long)getpid());
  pthread_atfork(pl_held_prepare, pl_held_parent, pl_held_child);
}

pid_t pl_self(void) {
  pthread_once(&pl_held_once, pl_held_init);
  return (pid_t)atomic_load_explicit(&pl_pid, memory_order_relaxed);
}

/* Posix locks are not inherited by a child, so the child's copies of such entries are stale. */
static int pl_held_live(const pl_held *h) {
  return pl_held_same_file(h) && (h->backend != PORTALOCK_BACKEND_POSIX || h->pid == pl_self());
}

static void pl_held_drop(size_t i) {
  pl_held_table[i] = pl_held_table[--pl_held_len];
}

static size_t pl_held_index(int fd) {
  for (size_t i = 0; i < pl_held_len; i++)
    if (pl_held_table[i].fd == fd) return i;
  return pl_held_len;
}

/* Where h's entry goes (the slot of an entry for its fd, else a new one at the end), or
 * pl_held_len with errno ENOMEM. Called with the mutex held. */
static size_t pl_held_slot(const pl_held *h) {
  size_t i = pl_held_index(h->fd);
  if (i < pl_held_len) return i;
  if (pl_held_len == pl_held_cap) {
    size_t cap = pl_held_cap ? 2 * pl_held_cap : 8;
    pl_held *table = realloc(pl_held_table, cap * sizeof *table);
    if (table == NULL) {
      errno = ENOMEM;
      return pl_held_len;
    }
    pl_held_table = table;
    pl_held_cap = cap;
  }
  return pl_held_len++;
}

/* Stores `h` at slot `i` with a fresh serial. Called with the mutex held. */
static uint64_t pl_held_store(size_t i, const pl_held *h) {
  pl_held_table[i] = *h;
  pl_held_table[i].serial = pl_held_next_serial++;
  return pl_held_table[i].serial;
}

uint64_t pl_held_add(const pl_held *h) {
  /* A slot left by a descriptor closed without unlock() (the number is reused here) would
   * otherwise answer for this entry. */
  if (h->fd >= 0 && h->fd < PL_SLOT_FDS)
    atomic_store_explicit(&pl_slots[h->fd], 0, memory_order_relaxed);
  pthread_once(&pl_held_once, pl_held_init);
  pthread_mutex_lock(&pl_held_mutex);
  size_t i = pl_held_slot(h);
  uint64_t serial = i < pl_held_len ? pl_held_store(i, h) : 0;
  pthread_mutex_unlock(&pl_held_mutex);
  return serial;
}

int pl_held_record(const pl_held *h) {
  if (pl_slotted(h->fd, h->backend)) {
    atomic_store_explicit(&pl_slots[h->fd], (unsigned char)(h->backend << 2 | h->type),
                          memory_order_relaxed);
    return 1;
  }
  pthread_once(&pl_held_once, pl_held_init);
  pthread_mutex_lock(&pl_held_mutex);
  size_t i = pl_held_index(h->fd);
  int ok = 1;
  if (i < pl_held_len && pl_held_table[i].backend == h->backend &&
      pl_held_live(&pl_held_table[i])) {
    pl_held_table[i].type = h->type;
  } else {
    i = pl_held_slot(h);
    ok = i < pl_held_len;
    if (ok) pl_held_store(i, h);
  }
  pthread_mutex_unlock(&pl_held_mutex);
  return ok;
}

int pl_held_find(int fd, pl_held *out) {
  int found = 0;
  pthread_mutex_lock(&pl_held_mutex);
  size_t i = pl_held_index(fd);
  if (i < pl_held_len) {
    if (pl_held_live(&pl_held_table[i])) {
      *out = pl_held_table[i];
      found = 1;
    } else {
      pl_held_drop(i);
    }
  }
  pthread_mutex_unlock(&pl_held_mutex);
  return found;
}

int pl_held_type(int fd, portalock_backend backend) {
  if (pl_slotted(fd, backend)) {
    unsigned slot = atomic_load_explicit(&pl_slots[fd], memory_order_relaxed);
    if (slot != 0) return (portalock_backend)(slot >> 2) == backend ? (int)(slot & 3) : 0;
  }
  pl_held h; /* a lock object's entry, or lock()'s in the table */
  return pl_held_find(fd, &h) && h.backend == backend ? h.type : 0;
}

void pl_held_forget(int fd, portalock_backend backend) {
  if (pl_slotted(fd, backend))
    atomic_store_explicit(&pl_slots[fd], 0, memory_order_relaxed);
  else
    pl_held_remove_fd(fd);
}

void pl_held_remove_fd(int fd) {
  pthread_mutex_lock(&pl_held_mutex);
  size_t i = pl_held_index(fd);
  if (i < pl_held_len) pl_held_drop(i);
  pthread_mutex_unlock(&pl_held_mutex);
}

void pl_held_remove_serial(uint64_t serial) {
  pthread_mutex_lock(&pl_held_mutex);
  for (size_t i = 0; i < pl_held_len; i++) {
    if (pl_held_table[i].serial == serial) {
      pl_held_drop(i);
      break;
    }
  }
  pthread_mutex_unlock(&pl_held_mutex);
}

void pl_held_posix_enter(void) {
  pthread_once(&pl_held_once, pl_held_init);
  pthread_mutex_lock(&pl_posix_mutex);
}

void pl_held_posix_leave(void) {
  pthread_mutex_unlock(&pl_posix_mutex);
}

int pl_held_posix_fd(dev_t dev, ino_t ino, int except_fd) {
  int fd = -1;
  pthread_mutex_lock(&pl_held_mutex);
  for (size_t i = 0; i < pl_held_len && fd < 0;) {
    const pl_held *h = &pl_held_table[i];
    if (h->backend != PORTALOCK_BACKEND_POSIX || h->dev != dev || h->ino != ino ||
        h->fd == except_fd) {
      i++;
    } else if (pl_held_live(h)) {
      fd = h->fd;
    } else {
      pl_held_drop(i);
    }
  }
  pthread_mutex_unlock(&pl_held_mutex);
  return fd;
}
