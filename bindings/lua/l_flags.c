/* The low level: flags, and portalock.lock(file, flags[, backend]) / unlock(file[, backend])
 * themselves. The whole call of those is the cost of an uncontended lock from Lua, so they
 * are C closures made for the front end (core.flag_functions), not C functions under a Lua
 * wrapper: they check their arguments without raising and leave the two slow cases to Lua
 * functions the front end gives, one that raises the message for a bad argument (naming it
 * and its value, worded by check.lua) and one that makes the error object of a failure. */
#include "l_private.h"

#include <limits.h>
#include <lualib.h>
#include <string.h>

/* The closures' upvalues. */
#define UP_REFUSE lua_upvalueindex(1)  /* refuse(func, file, flags, backend): raises */
#define UP_FAILED lua_upvalueindex(2)  /* failed(errtab) -> nil, err */
#define UP_FILE_MT lua_upvalueindex(3) /* the io handles' metatable (see pl_fd_arg) */

static const char *const backend_names[] = {"flock", "ofd", "posix", NULL};
static const portalock_backend backend_values[] = {PORTALOCK_BACKEND_FLOCK, PORTALOCK_BACKEND_OFD,
                                                   PORTALOCK_BACKEND_POSIX};

portalock_backend pl_checkbackend(lua_State *L, int idx) {
  return backend_values[luaL_checkoption(L, idx, "flock", backend_names)];
}

/* nil (the default, flock) or a backend's name: 1 with *out set, else 0. */
static int backend_arg(lua_State *L, int idx, portalock_backend *out) {
  if (lua_gettop(L) < idx || lua_isnil(L, idx)) { /* the common call gives none: no lookup */
    *out = PORTALOCK_BACKEND_FLOCK;
    return 1;
  }
  const char *name = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "";
  for (int i = 0; backend_names[i] != NULL; i++) {
    if (strcmp(name, backend_names[i]) == 0) {
      *out = backend_values[i];
      return 1;
    }
  }
  return 0;
}

/* Calls refuse(func, args at 1..3) from the upvalue: it raises, naming the bad argument. */
static int refuse(lua_State *L, const char *func) {
  lua_settop(L, 3);
  lua_pushvalue(L, UP_REFUSE);
  lua_pushstring(L, func);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_call(L, 4, 0);
  return luaL_error(L, "%s: refuse() returned", func);
}

/* After a call that did not succeed: failed(errtab) for a failure, refuse() for a bad
   argument. */
static int not_ok(lua_State *L, const char *func, portalock_status status,
                  const portalock_error *err) {
  if (status == PORTALOCK_INVALID) return refuse(L, func);
  lua_pushvalue(L, UP_FAILED);
  pl_push_failure(L, err);
  lua_remove(L, -2); /* the nil before errtab */
  lua_call(L, 1, 2);
  return 2;
}

/* lock(file, flags[, backend]) -> file | nil, err */
static int f_lock(lua_State *L) {
  int fd, flags;
  portalock_backend backend;
  if (!pl_fd_arg(L, 1, UP_FILE_MT, &fd) || !pl_int_arg(L, 2, INT_MIN, &flags) ||
      !backend_arg(L, 3, &backend))
    return refuse(L, "lock");
  portalock_error err;
  portalock_status status = portalock_lock(fd, flags, backend, &err);
  if (status != PORTALOCK_OK) return not_ok(L, "lock", status, &err);
  lua_settop(L, 1);
  return 1;
}

/* unlock(file[, backend]) -> true | nil, err */
static int f_unlock(lua_State *L) {
  int fd;
  portalock_backend backend;
  if (!pl_fd_arg(L, 1, UP_FILE_MT, &fd) || !backend_arg(L, 2, &backend)) {
    lua_settop(L, 2);
    lua_pushnil(L);
    lua_insert(L, 2); /* refuse's arguments: file, flags (none), backend */
    return refuse(L, "unlock");
  }
  portalock_error err;
  portalock_status status = portalock_unlock(fd, backend, &err);
  if (status != PORTALOCK_OK) return not_ok(L, "unlock", status, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* flag_functions(refuse, failed) -> lock, unlock: the public functions (see the top). */
static int f_flag_functions(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  luaL_getmetatable(L, LUA_FILEHANDLE);
  if (lua_isnil(L, -1)) return luaL_error(L, "portalock needs the io library to be loaded");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_pushcclosure(L, f_lock, 3);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_pushcclosure(L, f_unlock, 3);
  return 2;
}

static const luaL_Reg flag_functions[] = {{"flag_functions", f_flag_functions}, {NULL, NULL}};

void pl_open_flags(lua_State *L) {
  static const struct {
    const char *name;
    int value;
  } flags[] = {{"LOCK_SH", PORTALOCK_LOCK_SH},
               {"LOCK_EX", PORTALOCK_LOCK_EX},
               {"LOCK_NB", PORTALOCK_LOCK_NB},
               {"LOCK_UN", PORTALOCK_LOCK_UN}};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    lua_pushinteger(L, flags[i].value);
    lua_setfield(L, -2, flags[i].name);
  }
  lua_pushinteger(L, INT_MAX); /* the largest descriptor number lock() takes */
  lua_setfield(L, -2, "FD_MAX");
  luaL_setfuncs(L, flag_functions, 0);
}
