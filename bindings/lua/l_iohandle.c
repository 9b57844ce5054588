/*
 * Genuine io handles for held locks.
 *
 * The descriptor that holds the lock must be the one inside the io handle the user gets,
 * so that closing the handle releases the lock and no bare descriptor number outlives it.
 * Lua 5.2+ lets a C module build a handle (luaL_Stream around fdopen). Lua 5.1 and LuaJIT
 * only accept handles made by their own io library (LuaJIT checks an internal type tag),
 * so there the front end opens /dev/null with io.open and each attempt moves the lock
 * file's descriptor onto that handle's descriptor (dup3) before locking it
 * (portalock_step's target_fd). One 5.1-ABI build serves both runtimes.
 */
#include "l_private.h"

#include <errno.h>
#include <limits.h>
#include <lualib.h>
#include <string.h>

#if LUA_VERSION_NUM >= 502

int pl_makes_streams(void) {
  return 1;
}

FILE *pl_tofile(lua_State *L, int idx) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (p->closef == NULL) luaL_argerror(L, idx, "attempt to use a closed file");
  return p->f;
}

/* The FILE* of an io handle's userdata, or NULL once it is closed. */
static FILE *open_file_of(void *handle) {
  luaL_Stream *p = (luaL_Stream *)handle;
  return p->closef == NULL ? NULL : p->f;
}

/* Like liolib's io_fclose: the stream owns the descriptor, closing it releases the lock. */
static int close_stream(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int ok = fclose(p->f) == 0;
  return luaL_fileresult(L, ok, NULL);
}

int pl_push_lock_handle(lua_State *L, portalock_lock_t *lock, int given_handle_idx) {
  (void)given_handle_idx;
  int fd = portalock_lock_fd(lock);
  if (fd < 0) return luaL_error(L, "hand_over: the lock is not held");
  luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  p->closef = NULL; /* a "closed" handle until the stream exists: safe if anything fails */
  luaL_getmetatable(L, LUA_FILEHANDLE);
  if (lua_isnil(L, -1)) return luaL_error(L, "portalock needs the io library to be loaded");
  lua_setmetatable(L, -2);
  const char *mode = portalock_lock_options_of(lock)->mode;
  p->f = fdopen(fd, mode);
  if (p->f == NULL)
    return luaL_error(L, "fdopen(\"%s\") of a held lock failed: %s", mode, strerror(errno));
  portalock_error err;
  if (portalock_lock_hand_over(lock, &err) != PORTALOCK_OK) {
    /* cannot happen for a held lock; never let fclose close a descriptor we still own */
    return luaL_error(L, "%s", err.message);
  }
  p->closef = close_stream;
  return 1;
}

#else

int pl_makes_streams(void) {
  return 0;
}

/* PUC 5.1 keeps a FILE** and LuaJIT a struct whose first member is the FILE*: both read
   the same, and both set it to NULL once the file is closed. */
FILE *pl_tofile(lua_State *L, int idx) {
  FILE **pf = (FILE **)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (*pf == NULL) luaL_argerror(L, idx, "attempt to use a closed file");
  return *pf;
}

static FILE *open_file_of(void *handle) {
  return *(FILE **)handle;
}

/* The lock was taken on the given handle's descriptor (see pl_target_fd). */
int pl_push_lock_handle(lua_State *L, portalock_lock_t *lock, int given_handle_idx) {
  int fd = portalock_lock_fd(lock);
  if (fd < 0) return luaL_error(L, "hand_over: the lock is not held");
  luaL_argcheck(L, fileno(pl_tofile(L, given_handle_idx)) == fd, given_handle_idx,
                "not the handle the lock was taken on");
  portalock_error err;
  if (portalock_lock_hand_over(lock, &err) != PORTALOCK_OK) return pl_push_failure(L, &err);
  lua_pushvalue(L, given_handle_idx);
  return 1;
}

#endif

int pl_target_fd(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return -1;
  luaL_argcheck(L, !pl_makes_streams(), idx, "a target handle is for Lua 5.1 and LuaJIT only");
  return fileno(pl_tofile(L, idx));
}

int pl_int_arg(lua_State *L, int idx, int min, int *out) {
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  lua_Number n = lua_tonumber(L, idx);
  if (!(n >= min && n <= INT_MAX) || n != (lua_Number)(int)n) return 0;
  *out = (int)n;
  return 1;
}

int pl_fd_arg(lua_State *L, int idx, int mt, int *fd) {
  void *handle = lua_touserdata(L, idx);
  if (handle == NULL) return pl_int_arg(L, idx, 0, fd);
  if (mt == 0) {
    handle = luaL_testudata(L, idx, LUA_FILEHANDLE);
  } else if (lua_getmetatable(L, idx)) {
    if (!lua_rawequal(L, -1, mt)) handle = NULL;
    lua_pop(L, 1);
  } else {
    handle = NULL;
  }
  FILE *f = handle == NULL ? NULL : open_file_of(handle);
  if (f == NULL) return 0;
  *fd = fileno(f);
  return 1;
}

int pl_tofd(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer fd = luaL_checkinteger(L, idx);
    luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, idx, "descriptor out of range");
    return (int)fd;
  }
  return fileno(pl_tofile(L, idx));
}
