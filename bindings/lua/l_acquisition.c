/*
 * Acquisitions: the wait engine's step API (portalock_step, portalock_sleep) for the Lua loop
 * in portalock.wait. Each handle's begin(...) makes one; the acquisition keeps its handle
 * alive (anchored as its user value) for as long as it may step.
 *   acq:step([target]) -> "acquired" | "sleep", fd|nil, next_attempt | nil, errtab
 *   acq:held()         -> "sleep", nil, next_attempt | nil, errtab   (held by another owner
 *                         of this state: the policy without an attempt)
 *   acq:sleep(next_attempt) -> "ready" | "timeout" | "interrupted"
 *   acq:give_up()
 *   acq:polls()           (the caller sleeps on the clock in its own scheduler: the steps watch
 *                         nothing and keep nothing open; portalock_acquisition_polls)
 *   acq:waits()           (false when it gives up at its first contention: fail_when_locked,
 *                         timeout 0; portalock_acquisition_waits)
 *   acq:check_interval()  (the one in effect: 0 re-checks every PORTALOCK_CHECK_INTERVAL_MIN)
 */
#include "l_private.h"

#include <math.h>

#define PL_ACQUISITION_MT "portalock.core.acquisition"

typedef struct l_acquisition {
  portalock_acquisition acq;
} l_acquisition;

/* Anchors the value at `value_idx` to the userdata at `ud_idx` (both absolute). */
static void pl_anchor(lua_State *L, int ud_idx, int value_idx) {
#if LUA_VERSION_NUM == 501
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, value_idx);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, ud_idx);
#elif LUA_VERSION_NUM < 504
  lua_pushvalue(L, value_idx);
  lua_setuservalue(L, ud_idx);
#else
  lua_pushvalue(L, value_idx);
  lua_setiuservalue(L, ud_idx, 1);
#endif
}

/* Pushes what pl_anchor anchored to the userdata at `ud_idx`. */
static void pl_push_anchored(lua_State *L, int ud_idx) {
#if LUA_VERSION_NUM == 501
  lua_getfenv(L, ud_idx);
  lua_rawgeti(L, -1, 1);
  lua_remove(L, -2);
#elif LUA_VERSION_NUM < 504
  lua_getuservalue(L, ud_idx);
#else
  lua_getiuservalue(L, ud_idx, 1);
#endif
}

/* The acquisition at index 1, whose handle must still be alive: every handle is a box holding
 * its object's pointer, NULL once its finalizer has run (called by hand, or at a state's close). */
static portalock_acquisition *check_acquisition(lua_State *L) {
  l_acquisition *a = (l_acquisition *)luaL_checkudata(L, 1, PL_ACQUISITION_MT);
  pl_push_anchored(L, 1);
  void *const *box = (void *const *)lua_touserdata(L, -1);
  if (box == NULL || *box == NULL) luaL_error(L, "acquisition: its handle is already freed");
  lua_pop(L, 1);
  return &a->acq;
}

int pl_push_acquisition(lua_State *L, portalock_status status, const portalock_acquisition *acq,
                        const portalock_error *err) {
  if (status != PORTALOCK_OK) return pl_push_failure(L, err);
  l_acquisition *a = (l_acquisition *)lua_newuserdatauv(L, sizeof(l_acquisition), 1);
  a->acq = *acq;
  luaL_setmetatable(L, PL_ACQUISITION_MT);
  pl_anchor(L, lua_gettop(L), 1); /* the handle begin() was called on */
  return 1;
}

static int pl_push_outcome(lua_State *L, portalock_status status, const portalock_wait *wait,
                           const portalock_error *err) {
  if (status == PORTALOCK_OK) {
    lua_pushliteral(L, "acquired");
    return 1;
  }
  if (status != PORTALOCK_CONTENDED) return pl_push_failure(L, err);
  lua_pushliteral(L, "sleep");
  if (wait->fd >= 0)
    lua_pushinteger(L, wait->fd);
  else
    lua_pushnil(L);
  lua_pushnumber(L, wait->next_attempt);
  return 3;
}

static int a_step(lua_State *L) {
  portalock_acquisition *acq = check_acquisition(L);
  portalock_wait wait;
  portalock_error err;
  portalock_status st = portalock_step(acq, pl_target_fd(L, 2), &wait, &err);
  return pl_push_outcome(L, st, &wait, &err);
}

static int a_held(lua_State *L) {
  portalock_acquisition *acq = check_acquisition(L);
  portalock_wait wait;
  portalock_error err;
  portalock_status st = portalock_step_held(acq, &wait, &err);
  return pl_push_outcome(L, st, &wait, &err);
}

/* The sleep a C wait takes, as long: every sleep returns on a signal, which lets the
 * interpreter's hooks (Ctrl-C in lua) run before the next step. */
static int a_sleep(lua_State *L) {
  portalock_acquisition *acq = check_acquisition(L);
  portalock_wait wait; /* what to sleep on is the engine's choice: only the time is the step's */
  wait.fd = -1;
  wait.next_attempt = luaL_checknumber(L, 2);
  return pl_push_wait_result(L, portalock_sleep(acq, &wait, INFINITY));
}

static int a_give_up(lua_State *L) {
  portalock_give_up(check_acquisition(L));
  return 0;
}

static int a_polls(lua_State *L) {
  portalock_acquisition_polls(check_acquisition(L));
  return 0;
}

static int a_waits(lua_State *L) {
  lua_pushboolean(L, portalock_acquisition_waits(check_acquisition(L)));
  return 1;
}

static int a_check_interval(lua_State *L) {
  lua_pushnumber(L, check_acquisition(L)->check_interval);
  return 1;
}

static const luaL_Reg acquisition_methods[] = {{"step", a_step},
                                               {"held", a_held},
                                               {"sleep", a_sleep},
                                               {"give_up", a_give_up},
                                               {"polls", a_polls},
                                               {"waits", a_waits},
                                               {"check_interval", a_check_interval},
                                               {NULL, NULL}};

void pl_open_acquisition(lua_State *L) {
  luaL_newmetatable(L, PL_ACQUISITION_MT);
  lua_newtable(L);
  luaL_setfuncs(L, acquisition_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
