/*
 * RLock handles: portalock.core.new_rlock(filename, opts). Holds are counted per owner
 * token; the Lua front end maps coroutines (or opts.owner keys) to tokens.
 */
#include "l_private.h"

static l_rlock *check_rlock(lua_State *L) {
  l_rlock *r = (l_rlock *)luaL_checkudata(L, 1, PL_RLOCK_MT);
  luaL_argcheck(L, r->rlock != NULL, 1, "rlock handle already freed");
  return r;
}

static uintptr_t check_owner(lua_State *L, int idx) {
  lua_Integer owner = luaL_checkinteger(L, idx);
  luaL_argcheck(L, owner > 0, idx, "owner token must be a positive integer");
  return (uintptr_t)owner;
}

static int r_new_rlock(lua_State *L) {
  const char *filename = luaL_checkstring(L, 1);
  portalock_lock_options opts;
  portalock_lock_options_init(&opts);
  pl_checkoptions(L, 2, &opts);
  l_rlock *r = (l_rlock *)lua_newuserdatauv(L, sizeof(l_rlock), 0);
  r->rlock = NULL;
  luaL_setmetatable(L, PL_RLOCK_MT);
  portalock_error err;
  if (portalock_rlock_new(&r->rlock, filename, &opts, &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  return 1;
}

static int r_try(lua_State *L) {
  l_rlock *r = check_rlock(L);
  portalock_wait wait;
  portalock_error err;
  portalock_status st =
      portalock_rlock_try_onto(r->rlock, check_owner(L, 2), pl_target_fd(L, 3), &wait, &err);
  return pl_push_step(L, st, &wait, &err);
}

/* h:begin(owner, timeout, check_interval, fail_when_locked) -> an acquisition */
static int r_begin(lua_State *L) {
  l_rlock *r = check_rlock(L);
  portalock_acquisition acq;
  portalock_error err;
  portalock_status st =
      portalock_rlock_begin(&acq, r->rlock, check_owner(L, 2), luaL_checknumber(L, 3),
                            luaL_checknumber(L, 4), lua_toboolean(L, 5), &err);
  return pl_push_acquisition(L, st, &acq, &err);
}

static int r_release(lua_State *L) {
  l_rlock *r = check_rlock(L);
  portalock_error err;
  if (portalock_rlock_release(r->rlock, check_owner(L, 2), &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int r_release_all(lua_State *L) {
  l_rlock *r = check_rlock(L);
  portalock_error err;
  if (portalock_rlock_release_all(r->rlock, check_owner(L, 2), &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int r_owner(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)portalock_rlock_owner(check_rlock(L)->rlock));
  return 1;
}

static int r_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)portalock_rlock_count(check_rlock(L)->rlock));
  return 1;
}

static int r_gc(lua_State *L) {
  l_rlock *r = (l_rlock *)luaL_checkudata(L, 1, PL_RLOCK_MT);
  if (r->rlock != NULL) {
    portalock_rlock_free(r->rlock);
    r->rlock = NULL;
  }
  return 0;
}

static const luaL_Reg rlock_methods[] = {{"try", r_try},
                                         {"begin", r_begin},
                                         {"release", r_release},
                                         {"release_all", r_release_all},
                                         {"owner", r_owner},
                                         {"count", r_count},
                                         {NULL, NULL}};

static const luaL_Reg rlock_metamethods[] = {
    {"__gc", r_gc}, {"__tostring", pl_lock_tostring}, {NULL, NULL}};

static const luaL_Reg rlock_functions[] = {{"new_rlock", r_new_rlock}, {NULL, NULL}};

void pl_open_rlock(lua_State *L) {
  luaL_newmetatable(L, PL_RLOCK_MT);
  luaL_setfuncs(L, rlock_metamethods, 0);
  lua_newtable(L);
  luaL_setfuncs(L, pl_lock_common_methods, 0);
  luaL_setfuncs(L, rlock_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, rlock_functions, 0);
}
