/* The low level: flags, portalock.core.lock(file, flags, backend) and unlock(file, backend).
 * Both run on every call of portalock.lock()/unlock(), so they check their arguments
 * themselves and, instead of raising, return false for a bad one: the front end (check.lua)
 * words the message, naming the argument and its value, off the fast path. */
#include "l_private.h"

#include <limits.h>
#include <string.h>

static const char *const backend_names[] = {"flock", "ofd", "posix", NULL};
static const portalock_backend backend_values[] = {PORTALOCK_BACKEND_FLOCK, PORTALOCK_BACKEND_OFD,
                                                   PORTALOCK_BACKEND_POSIX};

portalock_backend pl_checkbackend(lua_State *L, int idx) {
  return backend_values[luaL_checkoption(L, idx, "flock", backend_names)];
}

/* nil (the default, flock) or a backend's name: 1 with *out set, else 0. */
static int backend_arg(lua_State *L, int idx, portalock_backend *out) {
  if (lua_isnoneornil(L, idx)) {
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

/* true | nil, errtab | false (a bad argument) */
static int push_result(lua_State *L, portalock_status status, const portalock_error *err) {
  if (status == PORTALOCK_OK || status == PORTALOCK_INVALID) {
    lua_pushboolean(L, status == PORTALOCK_OK);
    return 1;
  }
  return pl_push_failure(L, err);
}

/* lock(file, flags[, backend]) -> true | nil, errtab | false (a bad argument) */
static int f_lock(lua_State *L) {
  int fd, flags;
  portalock_backend backend;
  if (!pl_fd_arg(L, 1, &fd) || !pl_int_arg(L, 2, INT_MIN, &flags) || !backend_arg(L, 3, &backend)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  portalock_error err;
  return push_result(L, portalock_lock(fd, flags, backend, &err), &err);
}

/* unlock(file[, backend]) -> true | nil, errtab | false (a bad argument) */
static int f_unlock(lua_State *L) {
  int fd;
  portalock_backend backend;
  if (!pl_fd_arg(L, 1, &fd) || !backend_arg(L, 2, &backend)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  portalock_error err;
  return push_result(L, portalock_unlock(fd, backend, &err), &err);
}

static const luaL_Reg flag_functions[] = {{"lock", f_lock}, {"unlock", f_unlock}, {NULL, NULL}};

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
