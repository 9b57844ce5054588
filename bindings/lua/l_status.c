/* portalock.core.lock_holders(path) -> {{pid=, exclusive=, waiting=, type=}, ...} | nil, errtab */
#include "l_private.h"

#include <stdint.h>

#define PL_HOLDERS_ON_STACK 16
#define PL_HOLDERS_ROUNDS 8 /* locks come and go between calls: give up growing after this */

static void push_holder(lua_State *L, const portalock_holder *h) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)h->pid);
  lua_setfield(L, -2, "pid");
  lua_pushboolean(L, h->exclusive);
  lua_setfield(L, -2, "exclusive");
  lua_pushboolean(L, h->waiting);
  lua_setfield(L, -2, "waiting");
  lua_pushstring(L, h->type);
  lua_setfield(L, -2, "type");
}

static int s_lock_holders(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  portalock_holder on_stack[PL_HOLDERS_ON_STACK];
  portalock_holder *out = on_stack;
  size_t cap = PL_HOLDERS_ON_STACK, count = 0;
  portalock_error err;
  for (int round = 0;; round++) {
    portalock_status s = portalock_lock_holders(path, out, cap, &count, &err);
    if (s != PORTALOCK_OK) return pl_push_failure(L, &err);
    if (count <= cap || round + 1 >= PL_HOLDERS_ROUNDS) break;
    /* More than fit: room for them and a few more, in a userdata the collector frees. */
    if (count > (SIZE_MAX / sizeof *out) - 16) return luaL_error(L, "lock_holders: too many locks");
    cap = count + 16;
    out = (portalock_holder *)lua_newuserdatauv(L, cap * sizeof *out, 0);
    /* left on the stack (at most PL_HOLDERS_ROUNDS of them) so that it stays alive */
  }
  if (count > cap) count = cap;
  lua_createtable(L, (int)count, 0);
  for (size_t i = 0; i < count; i++) {
    push_holder(L, &out[i]);
    lua_rawseti(L, -2, (int)(i + 1));
  }
  return 1;
}

static const luaL_Reg status_functions[] = {{"lock_holders", s_lock_holders}, {NULL, NULL}};

void pl_open_status(lua_State *L) {
  luaL_setfuncs(L, status_functions, 0);
}
