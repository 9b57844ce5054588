/*
 * portalock_testhelper: process primitives the specs need and plain Lua lacks (fork,
 * waitpid, kill, counting open descriptors and inotify instances). Built only with the tests,
 * never installed.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"

static int t_fork(lua_State *L) {
  fflush(NULL); /* keep buffered output from being written twice */
  pid_t pid = fork();
  if (pid < 0) return luaL_error(L, "fork failed");
  lua_pushinteger(L, pid);
  return 1;
}

/* The child's exit status, or 128 + N when signal N killed it (as shells report it). */
static int t_waitpid(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return luaL_error(L, "waitpid(%d) failed", (int)pid);
  }
  lua_pushinteger(L, WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
  return 1;
}

static int t_exit(lua_State *L) {
  fflush(NULL);
  _exit((int)luaL_optinteger(L, 1, 0));
}

static int t_kill(lua_State *L) {
  lua_pushboolean(L, kill((pid_t)luaL_checkinteger(L, 1), (int)luaL_checkinteger(L, 2)) == 0);
  return 1;
}

static int t_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int t_fd_count(lua_State *L) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return luaL_error(L, "cannot open /proc/self/fd");
  int count = 0;
  while (readdir(dir) != NULL)
    count++;
  closedir(dir);
  lua_pushinteger(L, count - 3); /* ".", ".." and the directory's own descriptor */
  return 1;
}

/* This process's inotify instances: its descriptors that link to anon_inode:inotify. */
static int t_inotify_count(lua_State *L) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return luaL_error(L, "cannot open /proc/self/fd");
  int count = 0;
  char target[PATH_MAX];
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    ssize_t len = readlinkat(dirfd(dir), e->d_name, target, sizeof target - 1);
    if (len < 0) continue;
    target[len] = '\0';
    count += strcmp(target, "anon_inode:inotify") == 0;
  }
  closedir(dir);
  lua_pushinteger(L, count);
  return 1;
}

static int t_sleep(lua_State *L) {
  double seconds = luaL_checknumber(L, 1);
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
  return 0;
}

static const luaL_Reg functions[] = {{"fork", t_fork},
                                     {"waitpid", t_waitpid},
                                     {"_exit", t_exit},
                                     {"kill", t_kill},
                                     {"getpid", t_getpid},
                                     {"fd_count", t_fd_count},
                                     {"inotify_count", t_inotify_count},
                                     {"sleep", t_sleep},
                                     {NULL, NULL}};

#if defined(__GNUC__) || defined(__clang__)
__attribute__((visibility("default")))
#endif
int luaopen_portalock_testhelper(lua_State *L);

int luaopen_portalock_testhelper(lua_State *L) {
  luaL_newlib(L, functions);
  return 1;
}
