/*
 * run_limited(bytes, fn) -> exceeded, ok, result | err, used
 *
 * Calls fn() in protected mode while every allocation of this Lua state goes through a
 * counting allocator wrapped around the state's own: an allocation that would take the
 * state's heap more than `bytes` above where it stood at the call is refused, so Lua raises
 * its memory error inside the call that asked (string.format, a concatenation, a table
 * growing), not at the next instruction. A growing block counts with its old copy, which
 * lives until the copy is made: at no moment does the heap stand more than `bytes` above
 * the start. `exceeded` tells whether any allocation was refused. Works with every runtime
 * this module loads into (5.1, LuaJIT, 5.3, 5.4): lua_setallocf is part of each API.
 * `used` is the heap's growth over the call (negative when it shrank): a caller that splits
 * one budget over several calls gives the next one what is left.
 */
#include "l_private.h"

typedef struct pl_budget {
  lua_Alloc alloc; /* the state's own allocator, which does the work */
  void *ud;
  long long used; /* bytes allocated less bytes freed since the call (may go negative) */
  long long limit;
  int exceeded;
} pl_budget;

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  pl_budget *b = (pl_budget *)ud;
  long long old = ptr != NULL ? (long long)osize : 0; /* 5.4 passes a type tag for new blocks */
  if ((long long)nsize > old && b->used + (long long)nsize > b->limit) {
    b->exceeded = 1;
    return NULL;
  }
  void *p = b->alloc(b->ud, ptr, osize, nsize);
  if (p != NULL || nsize == 0) b->used += (long long)nsize - old;
  return p;
}

static int b_run_limited(lua_State *L) {
  lua_Number bytes = luaL_checknumber(L, 1);
  luaL_argcheck(L, bytes >= 1 && bytes <= 9.0e15, 1, "must be a number of bytes >= 1");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  pl_budget budget = {NULL, NULL, 0, (long long)bytes, 0};
  budget.alloc = lua_getallocf(L, &budget.ud);
  lua_setallocf(L, budget_alloc, &budget);
  int status = lua_pcall(L, 0, 1, 0);
  lua_setallocf(L, budget.alloc, budget.ud);
  lua_pushboolean(L, budget.exceeded);
  lua_pushboolean(L, status == 0);
  lua_pushvalue(L, -3);
  lua_pushnumber(L, (lua_Number)budget.used);
  return 4;
}

static const luaL_Reg budget_functions[] = {{"run_limited", b_run_limited}, {NULL, NULL}};

void pl_open_budget(lua_State *L) {
  luaL_setfuncs(L, budget_functions, 0);
}
