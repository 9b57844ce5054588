/*
 * Fuzz target: option tables through the Lua binding. An embedded Lua 5.4 loads
 * portalock.core (the sources of bindings/lua, compiled into this target) and calls its
 * constructors -- new_lock, new_rlock, new_bounded, new_semaphore -- and the functions that
 * only read (read_pid, lock_holders, file_identity) with arguments decoded from the input:
 * values of every type, option tables with the real option names and stray keys, numbers
 * and numeric strings where the other is expected, NaN, huge and negative numbers, NUL
 * bytes, nested tables, and tables whose missing keys run a full garbage collection
 * (__index) and may answer with a fresh string, so that a string the binding uses after the
 * value that owned it was popped is freed before it is read. The handles it gets back have
 * their reading methods called. The input may also cap Lua's memory, so that allocations
 * fail part-way (a raised error must not leak what C allocated).
 *
 * Every call runs under lua_pcall: an error is an answer; a crash, a sanitizer report or a
 * leak is a defect. Nothing here acquires a lock or creates a file or a semaphore.
 */
#include <lauxlib.h>
#include <lua.h>

#include "fuzz_input.h"

int luaopen_portalock_core(lua_State *L);

/* ---------------------------------------------------------------- a capped allocator */

typedef struct budget {
  size_t used, limit; /* limit 0: none */
} budget;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  budget *b = ud;
  size_t old = ptr != NULL ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    b->used -= old;
    return NULL;
  }
  if (b->limit != 0 && nsize > old && b->used + (nsize - old) > b->limit) return NULL;
  void *p = realloc(ptr, nsize);
  if (p != NULL) b->used = b->used - old + nsize;
  return p;
}

/* ---------------------------------------------------------------- values from the input */

static const char *const option_names[] = {
    "mode",    "timeout", "check_interval",   "flags",     "perm",  "fail_when_locked",
    "backend", "name",    "filename_pattern", "directory", "value", "owner"};
#define N_OPTION_NAMES (sizeof option_names / sizeof option_names[0])

static const char *const words[] = {"a",
                                    "r",
                                    "r+",
                                    "w",
                                    "w+",
                                    "ab+",
                                    "x",
                                    "",
                                    "flock",
                                    "ofd",
                                    "posix",
                                    "lockf",
                                    "lock",
                                    "temporary",
                                    "pidfile",
                                    "fuzz",
                                    "{name}.{number:02d}.lock",
                                    "{number}",
                                    "{name}",
                                    "{",
                                    "}}",
                                    "{number:0300d}",
                                    "/tmp",
                                    "/nonexistent/dir",
                                    ".",
                                    "..",
                                    "a/b",
                                    "123",
                                    "0x10",
                                    "1e3",
                                    " 5 ",
                                    "-1",
                                    "nan",
                                    "inf",
                                    "/proc/self/fd/0",
                                    "/dev/null"};
#define N_WORDS (sizeof words / sizeof words[0])

static const lua_Integer integers[] = {0,
                                       -1,
                                       1,
                                       2,
                                       3,
                                       4,
                                       5,
                                       6,
                                       8,
                                       12,
                                       16,
                                       0666,
                                       0777,
                                       4096,
                                       10000,
                                       10001,
                                       12345,
                                       2147483647,
                                       -2147483647 - 1,
                                       (lua_Integer)1 << 31,
                                       (lua_Integer)1 << 53,
                                       LUA_MAXINTEGER,
                                       LUA_MININTEGER};
#define N_INTEGERS (sizeof integers / sizeof integers[0])

static void push_value(lua_State *L, fz_input *in, int depth);

/* A missing key: a full collection (unless the collector is stopped, see below), then nil, a
 * fresh copy of the key or a number (the upvalue says which). */
static int gc_index(lua_State *L) {
  if (lua_gc(L, LUA_GCISRUNNING)) lua_gc(L, LUA_GCCOLLECT, 0);
  lua_Integer answer = lua_tointeger(L, lua_upvalueindex(1));
  if (answer == 1 && lua_type(L, 2) == LUA_TSTRING)
    lua_pushfstring(L, "%s", lua_tostring(L, 2));
  else if (answer == 2)
    lua_pushinteger(L, 12345);
  else
    lua_pushnil(L);
  return 1;
}

static int returns_nothing(lua_State *L) {
  (void)L;
  return 0;
}

static void push_table(lua_State *L, fz_input *in, int depth, int with_gc) {
  int entries = (int)(fz_byte(in) % 8);
  lua_createtable(L, 0, entries);
  for (int i = 0; i < entries && in->size > 0; i++) {
    unsigned k = fz_byte(in);
    if (k < 192)
      lua_pushstring(L, option_names[k % N_OPTION_NAMES]);
    else
      push_value(L, in, depth + 1);
    if (lua_isnil(L, -1) ||
        (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))) {
      lua_pop(L, 1); /* not a key */
      continue;
    }
    push_value(L, in, depth + 1);
    lua_rawset(L, -3);
  }
  if (with_gc) {
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, (lua_Integer)(fz_byte(in) % 3));
    lua_pushcclosure(L, gc_index, 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
  }
}

static void push_value(lua_State *L, fz_input *in, int depth) {
  unsigned kind = fz_byte(in) % 12;
  if (depth > 3 && kind >= 9) kind = 0;
  switch (kind) {
  case 0:
    lua_pushnil(L);
    break;
  case 1:
    lua_pushboolean(L, (int)(fz_byte(in) & 1));
    break;
  case 2:
    lua_pushinteger(L, (lua_Integer)(int8_t)fz_byte(in));
    break;
  case 3:
    lua_pushinteger(L, integers[fz_byte(in) % N_INTEGERS]);
    break;
  case 4:
    lua_pushnumber(L, (lua_Number)fz_double(in));
    break;
  case 5:
  case 6:
    lua_pushstring(L, words[fz_byte(in) % N_WORDS]);
    break;
  case 7: {
    char buf[300];
    size_t len = fz_bytes(in, buf, sizeof buf);
    lua_pushlstring(L, buf, len);
    break;
  }
  case 8:
    lua_pushcfunction(L, returns_nothing);
    break;
  case 9:
    lua_newuserdatauv(L, 8, 0);
    break;
  case 10:
  case 11:
    push_table(L, in, depth, kind == 11);
    break;
  }
}

/* ---------------------------------------------------------------- calls */

/* Calls each reading method the handle at the top has, each under pcall, with a boolean
 * from the input (filenames(random)). */
static void call_readers(lua_State *L, fz_input *in) {
  static const char *const readers[] = {
      "filename",  "lock_filename", "locked", "identity", "name", "maximum", "filename_pattern",
      "directory", "filenames",     "slot",   "fd",       "held", "owner",   "count"};
  int handle = lua_gettop(L);
  if (luaL_callmeta(L, handle, "__tostring")) lua_pop(L, 1);
  for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
    if (lua_getfield(L, handle, readers[i]) != LUA_TFUNCTION) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, handle);
    lua_pushboolean(L, (int)(fz_byte(in) & 1));
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
  }
}

static int run(lua_State *L) {
  static const char *const functions[] = {"new_lock",      "new_rlock", "new_bounded",
                                          "new_semaphore", "read_pid",  "lock_holders",
                                          "file_identity"};
  fz_input *in = lua_touserdata(L, 1);
  int core = lua_gettop(L) + 1;
  luaL_requiref(L, "portalock.core", luaopen_portalock_core, 0);
  while (in->size > 0) {
    const char *fn = functions[fz_byte(in) % (sizeof functions / sizeof functions[0])];
    lua_getfield(L, core, fn);
    int nargs = (int)(fz_byte(in) % 4);
    for (int i = 0; i < nargs; i++)
      push_value(L, in, 0);
    if (lua_pcall(L, nargs, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TUSERDATA)
      call_readers(L, in);
    lua_pop(L, 1); /* the result or the error */
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input in = {data, size};
  budget b = {0, 0};
  lua_State *L = lua_newstate(capped_alloc, &b);
  if (L == NULL) return 0;
  unsigned setup = fz_byte(&in);
  if (setup % 4 == 1) lua_gc(L, LUA_GCINC, 0, 1000, 0); /* collect all the time */
  if (setup % 4 == 2) lua_gc(L, LUA_GCGEN, 0, 0);
  if (setup >= 192) {
    /* Capped memory, with the collector stopped: Lua drops a finalizer whose call cannot
     * be set up for lack of memory, which would show as a leak that is not the binding's.
     * Finalizers run at lua_close, with the cap lifted. */
    lua_gc(L, LUA_GCSTOP);
    b.limit = b.used + 1024 * (size_t)(setup - 191);
  }
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, &in);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK && lua_type(L, -1) != LUA_TSTRING && !lua_isnil(L, -1))
    fz_fail("an error that is not a string: %s", luaL_typename(L, -1));
  b.limit = 0; /* closing must not fail */
  lua_close(L);
  return 0;
}
