/* The low level: flags, portalock.core.lock(file, flags, backend) and unlock(file, backend). */
#include "l_private.h"

#include <string.h>

portalock_backend pl_checkbackend(lua_State *L, int idx) {
  static const char *const names[] = {"flock", "ofd", "posix", NULL};
  static const portalock_backend values[] = {PORTALOCK_BACKEND_FLOCK, PORTALOCK_BACKEND_OFD,
                                             PORTALOCK_BACKEND_POSIX};
  return values[luaL_checkoption(L, idx, "flock", names)];
}

static int f_lock(lua_State *L) {
  int fd = pl_tofd(L, 1);
  int flags = (int)luaL_checkinteger(L, 2);
  portalock_backend backend = pl_checkbackend(L, 3);
  portalock_error err;
  if (portalock_lock(fd, flags, backend, &err) != PORTALOCK_OK) return pl_push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int f_unlock(lua_State *L) {
  int fd = pl_tofd(L, 1);
  portalock_backend backend = pl_checkbackend(L, 2);
  portalock_error err;
  if (portalock_unlock(fd, backend, &err) != PORTALOCK_OK) return pl_push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
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
  luaL_setfuncs(L, flag_functions, 0);
}
