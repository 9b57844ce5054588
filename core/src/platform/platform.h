/* The one seam for system-specific code: everything declared here differs between Linux,
 * macOS and the BSDs. The build picks the files that implement it (core/CMakeLists.txt):
 *   dup.c, ofd.c, random.c  every system (each tests for the feature it uses);
 *   linux.c                 Linux;
 *   bsd.c                   macOS, FreeBSD, OpenBSD, NetBSD and DragonFly;
 *   generic.c               any other system: what it can do with POSIX alone;
 *   posix.c                 every system but Linux: the answers for what only Linux has.
 * Files outside this folder test no system: they call these functions, or test a feature
 * macro defined below. */
#ifndef PORTALOCK_PLATFORM_H
#define PORTALOCK_PLATFORM_H

#include <limits.h> /* the C library's version macros (__GLIBC__) */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>

#include "portalock.h"

struct stat;
struct timespec;

/* ---------------------------------------------------------------- feature macros */

/* dup3: Linux, FreeBSD, NetBSD and OpenBSD (not macOS, not DragonFly). */
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
#define PL_HAVE_DUP3 1
#else
#define PL_HAVE_DUP3 0
#endif

/* posix_spawn_file_actions_adddup2(fd, fd) clears FD_CLOEXEC in the child (POSIX.1-2024;
 * glibc since 2.29). */
#ifndef PL_SPAWN_CLEARS_CLOEXEC
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define PL_SPAWN_CLEARS_CLOEXEC 1
#else
#define PL_SPAWN_CLEARS_CLOEXEC 0
#endif
#endif

/* sem_clockwait: a semaphore wait against CLOCK_MONOTONIC (glibc since 2.30), through
 * pl_platform_sem_clockwait (linux.c). Without it a wait polls. */
#if defined(__linux__) && defined(__GLIBC__) &&                                                    \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define PL_HAVE_SEM_CLOCKWAIT 1
#else
#define PL_HAVE_SEM_CLOCKWAIT 0
#endif

/* ---------------------------------------------------------------- functions */

/* An open-file-description record lock on the whole file: F_RDLCK, F_WRLCK or F_UNLCK.
 * Returns 0, or -1 with errno; ENOTSUP where the system has no OFD locks. */
int pl_platform_ofd_lock(int fd, short type, int block);

/* dup3(oldfd, newfd, O_CLOEXEC), or dup2 followed by FD_CLOEXEC where dup3 is missing. */
int pl_platform_dup_cloexec(int oldfd, int newfd);

/* 1 when `fd`'s file lives on a network file system, where a blocking lock call may be
 * served by the client retrying on its own schedule (NFS: backing off up to 30 s); 0 when
 * it is local (or the system cannot tell); -1 with errno when the question failed. */
int pl_platform_network_file(int fd);

/* Where a POSIX named semaphore is a file that the C library maps (glibc and musl on Linux:
 * /dev/shm/sem.<name without its '/'>), the path of the file of `name` ("/portalock.x"),
 * and 0: such a file can be opened, checked and mapped by the caller, its content a
 * process-shared sem_t. -1 with errno: ENOTSUP where named semaphores are no such files
 * (macOS, the BSDs), ENAMETOOLONG when it does not fit `cap`. */
int pl_platform_sem_path(const char *name, char *path, size_t cap);

#if PL_HAVE_SEM_CLOCKWAIT
/* sem_clockwait(sem, CLOCK_MONOTONIC, abs): 0, or -1 with errno (ETIMEDOUT, EINTR, ...). */
int pl_platform_sem_clockwait(sem_t *sem, const struct timespec *abs);
#endif

/* A descriptor that one thread makes readable for another, which may wait for it in poll(2):
 * writing 8 bytes to *write_fd makes *read_fd readable. Linux: an eventfd (*read_fd ==
 * *write_fd); elsewhere a pipe. Close-on-exec and non-blocking: 0, or -1 with errno. */
int pl_platform_event_open(int *read_fd, int *write_fd);

/* A descriptor readable (POLLIN) while one of `signals`, which the calling thread blocks, is
 * pending for it; the signal is still taken with sigtimedwait. Linux: a signalfd.
 * Close-on-exec and non-blocking: a descriptor, or -1 with errno (ENOSYS elsewhere: the caller
 * alternates short sigtimedwait calls with its other checks). */
int pl_platform_signal_open(const sigset_t *signals);

/* A watch on files (Linux: an inotify instance) that becomes readable when one of them is
 * closed, or changes its name, attributes or existence. The instance, non-blocking and
 * close-on-exec: a descriptor, or -1 with errno (ENOSYS where the system has none). */
int pl_platform_watch_open(void);
/* Adds `path` (not followed if a symbolic link) to the instance: a watch number, or -1 with
 * errno. */
int pl_platform_watch_add(int watch_fd, const char *path);
/* Removes a watch from the instance; returns at once. */
void pl_platform_watch_remove(int watch_fd, int watch);

/* Renames `from` to `to`, both in the directory `dirfd`, unless `to` exists (EEXIST then):
 * 0, or -1 with errno; ENOSYS where the system has no such call (Linux: renameat2 with
 * RENAME_NOREPLACE; the file system may still refuse it with EINVAL). */
int pl_platform_rename_noreplace(int dirfd, const char *from, const char *to);

/* The holders of locks on the file `st` describes (`path` names it in messages): up to
 * `cap` of them into `out`, how many there are in *count. Where the system does not tell
 * (all but Linux, whose /proc/locks status.c parses) LOCK_EXCEPTION with ENOSYS. */
portalock_status pl_platform_lock_holders(const char *path, const struct stat *st,
                                          portalock_holder *out, size_t cap, size_t *count,
                                          portalock_error *err);

/* `len` bytes from the OS random source (random.c): 0, or -1 with errno. */
int pl_platform_random_bytes(void *buf, size_t len);

/* One call of the system's random call (Linux: getrandom(2)) for up to `len` bytes: how many
 * it gave, or -1 with errno; ENOSYS where there is no such call. */
long pl_platform_getrandom(void *buf, size_t len);

#endif /* PORTALOCK_PLATFORM_H */
