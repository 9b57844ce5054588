/*
 * Lock handles: portalock.core.new_lock(kind, filename, opts) for Lock, TemporaryFileLock
 * and PidFileLock. The handle's finalizer frees the C struct only: once acquired, the lock
 * lives in its io handle, whose own finalizer closes it (Lock objects never release on
 * collection).
 */
#include "l_private.h"

#include <stdio.h>
#include <sys/stat.h>

/* Leaves the mode string, when given, on the stack (see pl_opt_string): the caller's stack
   grows by at most one. */
void pl_checkoptions(lua_State *L, int idx, portalock_lock_options *opts) {
  luaL_checktype(L, idx, LUA_TTABLE);
  const char *mode = pl_opt_string(L, idx, "mode");
  if (mode != NULL) opts->mode = mode;
  opts->timeout = pl_opt_number(L, idx, "timeout", opts->timeout);
  opts->check_interval = pl_opt_number(L, idx, "check_interval", opts->check_interval);
  opts->flags = pl_opt_int(L, idx, "flags", opts->flags);
  opts->perm = pl_opt_int(L, idx, "perm", opts->perm);
  lua_getfield(L, idx, "fail_when_locked");
  if (!lua_isnil(L, -1)) opts->fail_when_locked = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, idx, "backend");
  if (!lua_isnil(L, -1)) opts->backend = pl_checkbackend(L, lua_gettop(L));
  lua_pop(L, 1);
}

portalock_lock_t *pl_checklock(lua_State *L, int idx) {
  l_lock *h = (l_lock *)luaL_testudata(L, idx, PL_LOCK_MT);
  if (h != NULL) {
    luaL_argcheck(L, h->lock != NULL, idx, "lock handle already freed");
    return h->lock;
  }
  l_rlock *r = (l_rlock *)luaL_checkudata(L, idx, PL_RLOCK_MT);
  luaL_argcheck(L, r->rlock != NULL, idx, "rlock handle already freed");
  return portalock_rlock_lock(r->rlock);
}

static int l_new_lock(lua_State *L) {
  static const char *const kinds[] = {"lock", "temporary", "pidfile", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  const char *filename = luaL_optstring(L, 2, NULL);
  portalock_lock_options opts;
  portalock_lock_options_init(&opts);
  opts.fail_when_locked = kind != 0;
  pl_checkoptions(L, 3, &opts);
  l_lock *h = (l_lock *)lua_newuserdatauv(L, sizeof(l_lock), 0);
  h->lock = NULL;
  luaL_setmetatable(L, PL_LOCK_MT);
  portalock_error err;
  portalock_status st;
  if (kind == 0)
    st = portalock_lock_new(&h->lock, filename, &opts, &err);
  else if (kind == 1)
    st = portalock_temporary_file_lock_new(&h->lock, filename, &opts, &err);
  else
    st = portalock_pid_file_lock_new(&h->lock, filename, &opts, &err);
  if (st != PORTALOCK_OK) return pl_push_failure(L, &err);
  return 1;
}

static int l_release(lua_State *L) {
  portalock_error err;
  if (portalock_lock_release(pl_checklock(L, 1), &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_hand_over(lua_State *L) {
  return pl_push_lock_handle(L, pl_checklock(L, 1), 2);
}

/* h:begin(timeout, check_interval, fail_when_locked) -> an acquisition (l_acquisition.c) */
static int l_begin(lua_State *L) {
  l_lock *h = (l_lock *)luaL_checkudata(L, 1, PL_LOCK_MT);
  luaL_argcheck(L, h->lock != NULL, 1, "lock handle already freed");
  portalock_lock_t *lock = h->lock;
  portalock_acquisition acq;
  portalock_error err;
  portalock_status st = portalock_lock_begin(&acq, lock, luaL_checknumber(L, 2),
                                             luaL_checknumber(L, 3), lua_toboolean(L, 4), &err);
  return pl_push_acquisition(L, st, &acq, &err);
}

static int l_wait_done(lua_State *L) {
  portalock_lock_wait_done(pl_checklock(L, 1));
  return 0;
}

static int l_forget(lua_State *L) {
  portalock_lock_forget(pl_checklock(L, 1));
  return 0;
}

static int l_locked(lua_State *L) {
  lua_pushboolean(L, portalock_lock_locked(pl_checklock(L, 1)));
  return 1;
}

/* h:holds(fh): whether the lock is still held, through the io handle fh, which the user may
   have closed (in a forked child the handle holds nothing). One call where the front end
   would make two on every release. */
static int l_holds(lua_State *L) {
  portalock_lock_t *lock = pl_checklock(L, 1);
  int fd;
  lua_pushboolean(L, lua_type(L, 2) == LUA_TUSERDATA && pl_fd_arg(L, 2, 0, &fd) &&
                         portalock_lock_locked(lock));
  return 1;
}

static int l_filename(lua_State *L) {
  lua_pushstring(L, portalock_lock_filename(pl_checklock(L, 1)));
  return 1;
}

static int l_lock_filename(lua_State *L) {
  lua_pushstring(L, portalock_lock_lock_filename(pl_checklock(L, 1)));
  return 1;
}

/* "<device>:<inode>": tells files apart where paths cannot (aliases, symlinked directories). */
static void push_identity(lua_State *L, const struct stat *st) {
  char buf[64];
  snprintf(buf, sizeof buf, "%llu:%llu", (unsigned long long)st->st_dev,
           (unsigned long long)st->st_ino);
  lua_pushstring(L, buf);
}

/* The identity of the file that carries the held lock, or nil when not held. */
static int l_identity(lua_State *L) {
  int fd = portalock_lock_fd(pl_checklock(L, 1));
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return 0;
  push_identity(L, &st);
  return 1;
}

/* The identity of the file at `path` (not following a final symlink), or nil. */
static int l_file_identity(lua_State *L) {
  struct stat st;
  if (lstat(luaL_checkstring(L, 1), &st) != 0) return 0;
  push_identity(L, &st);
  return 1;
}

int pl_lock_tostring(lua_State *L) {
  portalock_lock_t *lock = pl_checklock(L, 1);
  lua_pushfstring(L, "portalock.core handle '%s' (%s)", portalock_lock_filename(lock),
                  portalock_lock_locked(lock) ? "held" : "not held");
  return 1;
}

static int l_gc(lua_State *L) {
  l_lock *h = (l_lock *)luaL_checkudata(L, 1, PL_LOCK_MT);
  if (h->lock != NULL) {
    portalock_lock_free(h->lock);
    h->lock = NULL;
  }
  return 0;
}

const luaL_Reg pl_lock_common_methods[] = {
    {"hand_over", l_hand_over}, {"forget", l_forget},       {"locked", l_locked},
    {"holds", l_holds},         {"filename", l_filename},   {"lock_filename", l_lock_filename},
    {"identity", l_identity},   {"wait_done", l_wait_done}, {NULL, NULL}};

static const luaL_Reg lock_methods[] = {{"begin", l_begin}, {"release", l_release}, {NULL, NULL}};

static const luaL_Reg lock_metamethods[] = {
    {"__gc", l_gc}, {"__tostring", pl_lock_tostring}, {NULL, NULL}};

static const luaL_Reg lock_functions[] = {
    {"new_lock", l_new_lock}, {"file_identity", l_file_identity}, {NULL, NULL}};

void pl_open_lock(lua_State *L) {
  luaL_newmetatable(L, PL_LOCK_MT);
  luaL_setfuncs(L, lock_metamethods, 0);
  lua_newtable(L);
  luaL_setfuncs(L, pl_lock_common_methods, 0);
  luaL_setfuncs(L, lock_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, lock_functions, 0);
  lua_pushinteger(L, PORTALOCK_PERM_MAX);
  lua_setfield(L, -2, "PERM_MAX");
}
