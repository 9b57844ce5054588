/* Turns a portalock_error into the `nil, errtab` pair the Lua front end wraps. */
#include "l_private.h"

#include <errno.h>

static void set_string(lua_State *L, const char *key, const char *value) {
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, lua_Integer value) {
  lua_pushinteger(L, value);
  lua_setfield(L, -2, key);
}

int pl_push_failure(lua_State *L, const portalock_error *err) {
  /* Raised without a position: the caller of this C function is portalock's own Lua, whose
   * line means nothing to the user (the message names the argument and the value). */
  if (err->status == PORTALOCK_INVALID) {
    lua_pushstring(L, err->message);
    return lua_error(L);
  }
  lua_pushnil(L);
  lua_createtable(L, 0, 6);
  set_string(L, "kind", portalock_status_name(err->status));
  set_string(L, "message", err->message);
  if (err->errnum != 0) set_integer(L, "errno", err->errnum);
  if (err->path[0] != '\0') set_string(L, "path", err->path);
  if (err->lost) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "lost");
  }
  if (err->holder_pid > 0) set_integer(L, "holder_pid", err->holder_pid);
  return 2;
}

int pl_push_step(lua_State *L, portalock_status status, const portalock_wait *wait,
                 const portalock_error *err) {
  switch (status) {
  case PORTALOCK_OK:
    lua_pushboolean(L, 1);
    return 1;
  case PORTALOCK_CONTENDED:
    lua_pushboolean(L, 0);
    if (wait->fd >= 0)
      lua_pushinteger(L, wait->fd);
    else
      lua_pushnil(L);
    lua_pushnumber(L, wait->next_attempt);
    if (err->holder_pid > 0)
      lua_pushinteger(L, (lua_Integer)err->holder_pid);
    else
      lua_pushnil(L);
    return 4;
  default:
    return pl_push_failure(L, err);
  }
}

/* ERRNO: the errno values front ends tell apart (`err.errno == core.ERRNO.ENOENT`), by name,
   since their numbers differ between systems. */
void pl_open_errno(lua_State *L) {
  static const struct {
    const char *name;
    int value;
  } names[] = {{"EACCES", EACCES}, {"EAGAIN", EAGAIN}, {"ECHILD", ECHILD}, {"EDEADLK", EDEADLK},
               {"EEXIST", EEXIST}, {"EIO", EIO},       {"EMFILE", EMFILE}, {"ENFILE", ENFILE},
               {"ENOENT", ENOENT}, {"ENOLCK", ENOLCK}, {"ENOMEM", ENOMEM}, {"ENOTDIR", ENOTDIR},
               {"EROFS", EROFS}};
  lua_createtable(L, 0, (int)(sizeof names / sizeof names[0]));
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    set_integer(L, names[i].name, names[i].value);
  lua_setfield(L, -2, "ERRNO");
}
