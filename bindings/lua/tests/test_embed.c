/*
 * A program that hosts Lua, linked with libportalock_lua<tag>.a and a static Lua: several
 * lua_States in one process, each registered with portalock_lua_preload, contend for locks
 * as processes do, whether in threads of their own or in one thread; lua_close releases what
 * a state's objects held. The scripts run with no portalock file reachable on disk.
 */
#include "testutil.h"

#ifdef PORTALOCK_HAVE_REDIS
#include "redis_server.h"
#endif

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "portalock_lua.h"

/* Cells the states share through the `host` table: host.add(i, d) adds and returns the new
 * value, host.set(i, v), host.get(i), host.raise_max(i, v) keeps the largest value seen. */
#define CELLS 9
static atomic_long cells[CELLS];

static int cell_index(lua_State *L) {
  lua_Integer i = luaL_checkinteger(L, 1);
  luaL_argcheck(L, i >= 0 && i < CELLS, 1, "no such cell");
  return (int)i;
}

static int host_add(lua_State *L) {
  int i = cell_index(L);
  long delta = (long)luaL_checkinteger(L, 2);
  lua_pushinteger(L, (lua_Integer)(atomic_fetch_add(&cells[i], delta) + delta));
  return 1;
}

static int host_get(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)atomic_load(&cells[cell_index(L)]));
  return 1;
}

static int host_set(lua_State *L) {
  atomic_store(&cells[cell_index(L)], (long)luaL_checkinteger(L, 2));
  return 0;
}

static int host_raise_max(lua_State *L) {
  int i = cell_index(L);
  long v = (long)luaL_checkinteger(L, 2), seen = atomic_load(&cells[i]);
  while (v > seen && !atomic_compare_exchange_weak(&cells[i], &seen, v)) {
  }
  return 0;
}

/* Gives the other threads a chance to run between a read and a write. */
static int host_yield(lua_State *L) {
  (void)L;
  sched_yield();
  return 0;
}

static int host_sleep(lua_State *L) {
  tu_sleep(luaL_checknumber(L, 1));
  return 0;
}

static const luaL_Reg host_functions[] = {
    {"add", host_add},     {"get", host_get},     {"set", host_set}, {"raise_max", host_raise_max},
    {"yield", host_yield}, {"sleep", host_sleep}, {NULL, NULL}};

/* A state as a host makes one: the standard libraries, portalock, the `host` table, and
 * package paths that lead nowhere, so that only the compiled-in module can be found. */
static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  CHECK(L != NULL);
  luaL_openlibs(L);
  CHECK_INT(portalock_lua_preload(L), 0);
  lua_newtable(L);
  for (const luaL_Reg *f = host_functions; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, -2, f->name);
  }
  lua_setglobal(L, "host");
  lua_pushstring(L, tu_scratch());
  lua_setglobal(L, "scratch");
  lua_getglobal(L, "package");
  lua_pushstring(L, "/nonexistent/?.lua");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, "/nonexistent/?.so");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  return L;
}

/* Runs `script` in L; fails the test with Lua's message if it raises. */
static void run(lua_State *L, const char *what, const char *script) {
  if (luaL_dostring(L, script) != 0) {
    tu_fail(__FILE__, __LINE__, "%s: %s", what, lua_tostring(L, -1));
  }
}

typedef struct job {
  const char *what;
  const char *script;
} job;

/* A thread with a state of its own, closed when the script ends. */
static void *run_job(void *arg) {
  const job *j = arg;
  lua_State *L = new_state();
  run(L, j->what, j->script);
  lua_close(L);
  return NULL;
}

static void run_threads(const job *jobs, int n) {
  pthread_t threads[8];
  CHECK(n <= 8);
  for (int i = 0; i < n; i++) {
    CHECK_INT(pthread_create(&threads[i], NULL, run_job, (void *)&jobs[i]), 0);
  }
  for (int i = 0; i < n; i++) {
    CHECK_INT(pthread_join(threads[i], NULL), 0);
  }
}

static void reset_cells(void) {
  for (int i = 0; i < CELLS; i++) {
    atomic_store(&cells[i], 0);
  }
}

/* Cell 0 is a counter incremented in two steps (read, yield, write), cell 1 counts the
 * states inside the lock: any overlap loses increments and shows an occupancy above 1. */
static const char increments[] =
    "local portalock = require 'portalock'\n"
    "local lock = portalock.Lock(scratch .. '/counter.lock', {timeout = 60})\n"
    "for _ = 1, 200 do\n"
    "  assert(lock:acquire())\n"
    "  host.raise_max(2, host.add(1, 1))\n"
    "  local v = host.get(0); host.yield(); host.set(0, v + 1)\n"
    "  host.add(1, -1)\n"
    "  assert(lock:release())\n"
    "end\n";

static void test_exclusion_between_threads(void) {
  tu_group("a Lock excludes the states of four threads");
  reset_cells();
  job jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (job){"increments", increments};
  }
  run_threads(jobs, 4);
  CHECK_INT(atomic_load(&cells[0]), 800);
  CHECK_INT(atomic_load(&cells[2]), 1);
}

/* Cell 3 counts the holders of a slot, cell 4 keeps the most seen at once. */
static const char slots[] =
    "local portalock = require 'portalock'\n"
    "local sem = portalock.NamedBoundedSemaphore(2, {name = 'gpu', directory = scratch,\n"
    "                                                 timeout = 60})\n"
    "for _ = 1, 20 do\n"
    "  assert(sem:acquire())\n"
    "  host.raise_max(4, host.add(3, 1)); host.sleep(0.002); host.add(3, -1)\n"
    "  sem:release()\n"
    "end\n";

static void test_bounded_semaphore_between_threads(void) {
  tu_group("a NamedBoundedSemaphore of 2 admits 2 of four threads' states at once, never 3");
  reset_cells();
  job jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (job){"slots", slots};
  }
  run_threads(jobs, 4);
  CHECK_INT(atomic_load(&cells[4]), 2);
}

/* Cell 5: 1 once the holder has its lock, 2 just before it releases. The waiter's blocking
 * wait must not stop the holder's thread, and must end with the release. */
static const char holder[] = "local portalock = require 'portalock'\n"
                             "local lock = portalock.Lock(scratch .. '/handover.lock')\n"
                             "assert(lock:acquire())\n"
                             "host.set(5, 1)\n"
                             "host.sleep(0.3)\n"
                             "host.set(5, 2)\n"
                             "assert(lock:release())\n";

static const char waiter[] =
    "local portalock = require 'portalock'\n"
    "while host.get(5) == 0 do host.sleep(0.001) end\n"
    "local lock = portalock.Lock(scratch .. '/handover.lock', {timeout = 30})\n"
    "local fh, err = lock:acquire{timeout = 0}\n"
    "assert(not fh and err.kind == 'AlreadyLocked', tostring(err))\n"
    "assert(lock:acquire())\n"
    "assert(host.get(5) == 2, 'acquired before the holder released')\n"
    "assert(lock:release())\n";

static void test_blocking_wait_between_threads(void) {
  tu_group("a state's blocking wait ends when another thread's state releases");
  reset_cells();
  job jobs[2] = {{"holder", holder}, {"waiter", waiter}};
  run_threads(jobs, 2);
  CHECK_INT(atomic_load(&cells[5]), 2);
}

static const char hold_everything[] =
    "local portalock = require 'portalock'\n"
    "held = {lock = portalock.Lock(scratch .. '/closed.lock'),\n"
    "        rlock = portalock.RLock(scratch .. '/closed.rlock'),\n"
    "        sem = portalock.NamedBoundedSemaphore(1, {name = 'closed', directory = scratch})}\n"
    "assert(held.lock:acquire()); assert(held.rlock:acquire()); assert(held.sem:acquire())\n";

/* `expect` is "held" or "free": what a try on each of hold_everything's locks finds. */
static const char try_everything[] =
    "local expect = ...\n"
    "local portalock = require 'portalock'\n"
    "local objects = {portalock.Lock(scratch .. '/closed.lock'),\n"
    "                 portalock.RLock(scratch .. '/closed.rlock'),\n"
    "                 portalock.NamedBoundedSemaphore(1, {name = 'closed', directory = scratch})}\n"
    "for i, obj in ipairs(objects) do\n"
    "  local got, err = obj:acquire{timeout = 0}\n"
    "  if expect == 'held' then\n"
    "    assert(not got and err.kind == 'AlreadyLocked', i .. ': ' .. tostring(err))\n"
    "  else\n"
    "    assert(got, i .. ': ' .. tostring(err)); obj:release()\n"
    "  end\n"
    "end\n";

static void try_all(lua_State *L, const char *expect) {
  CHECK_INT(luaL_loadstring(L, try_everything), 0);
  lua_pushstring(L, expect);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    tu_fail(__FILE__, __LINE__, "expected %s: %s", expect, lua_tostring(L, -1));
  }
}

static void test_closing_a_state_releases(void) {
  tu_group("lua_close releases what the state's Lock, RLock and semaphore held");
  lua_State *holder_state = new_state(), *other = new_state();
  run(holder_state, "hold_everything", hold_everything);
  try_all(other, "held");
  lua_close(holder_state);
  try_all(other, "free");
  lua_close(other);
}

/* posix record locks belong to the process, not to a state: a second state is refused at
 * once (waiting for its own process could never end), and the first keeps its lock. */
static void test_posix_locks_belong_to_the_process(void) {
  tu_group("a posix-backend lock held by one state is refused to another, with EDEADLK");
  lua_State *holder_state = new_state(), *other = new_state();
  run(holder_state, "hold a posix lock",
      "held = require('portalock').Lock(scratch .. '/posix.lock', {backend = 'posix'})\n"
      "assert(held:acquire())\n");
  run(other, "try it",
      "local portalock = require 'portalock'\n"
      "local lock = portalock.Lock(scratch .. '/posix.lock', {backend = 'posix', timeout = 5})\n"
      "local got, err = lock:acquire()\n"
      "assert(not got and err.kind == 'LockException', tostring(err))\n"
      "assert(err.errno == require('portalock.core').ERRNO.EDEADLK, tostring(err.errno))\n");
  run(holder_state, "still held", "assert(held:locked())\n");
  lua_close(holder_state);
  lua_close(other);
}

/* Cell 6 counts the states inside a posix lock, cell 7 keeps the most seen at once, cell 8
 * counts the grants. Two states trying one file at the same moment must not both get it: the
 * kernel grants a process a second posix lock on a file it holds, so only the process's own
 * record of its posix locks can refuse it. */
static const char posix_tries[] =
    "local portalock = require 'portalock'\n"
    "local EDEADLK = require('portalock.core').ERRNO.EDEADLK\n"
    "local lock = portalock.Lock(scratch .. '/posix-race.lock', {backend = 'posix'})\n"
    "for _ = 1, 3000 do\n"
    "  local got, err = lock:acquire{timeout = 0}\n"
    "  if got then\n"
    "    host.add(8, 1)\n"
    "    host.raise_max(7, host.add(6, 1)); host.yield()\n"
    "    host.add(6, -1)\n"
    "    assert(lock:release())\n"
    "  else\n"
    "    assert(err.kind == 'LockException' and err.errno == EDEADLK, tostring(err))\n"
    "  end\n"
    "end\n";

static void test_posix_lock_between_threads(void) {
  tu_group("a posix-backend lock is granted to one of two threads' states at a time");
  reset_cells();
  job jobs[2] = {{"posix_tries", posix_tries}, {"posix_tries", posix_tries}};
  run_threads(jobs, 2);
  CHECK(atomic_load(&cells[8]) > 0);
  CHECK_INT(atomic_load(&cells[7]), 1);
}

static void test_nothing_on_disk(void) {
  tu_group("require finds every module in package.preload, none on disk");
  lua_State *L = new_state();
  run(L, "preload",
      "local portalock = require 'portalock'\n"
      "assert(portalock.Lock and portalock.open_atomic, 'the public API')\n"
      "assert(package.loaded['portalock.core']._VERSION == portalock._VERSION)\n"
      "for _, name in ipairs{'portalock.cli', 'portalock.config', 'portalock.cli.args'} do\n"
      "  assert(type(require(name)) == 'table', name)\n"
      "end\n"
      "assert(not pcall(require, 'portalock.nosuch'))\n");
  lua_close(L);
}

#ifdef PORTALOCK_HAVE_REDIS
/* `expect` as in try_everything, for a RedisLock on the test's own redis-server. */
static const char try_redis[] =
    "local expect = ...\n"
    "local lock = require('portalock').RedisLock('embed-closed', {redis = redis_url})\n"
    "local got, err = lock:acquire(0)\n"
    "if expect == 'held' then\n"
    "  assert(not got and err.kind == 'AlreadyLocked', tostring(err))\n"
    "else\n"
    "  assert(got, tostring(err)); lock:release()\n"
    "end\n";

static void run_with(lua_State *L, const char *script, const char *expect) {
  CHECK_INT(luaL_loadstring(L, script), 0);
  lua_pushstring(L, expect);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    tu_fail(__FILE__, __LINE__, "expected %s: %s", expect, lua_tostring(L, -1));
  }
}

static void test_closing_a_state_ends_its_redis_grant(void) {
  tu_group("lua_close ends the grant of the state's RedisLock");
  if (rs_start() != 0) {
    printf("  skipped: redis-server could not be started\n");
    return;
  }
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", rs_port);
  lua_State *holder_state = new_state(), *other = new_state();
  for (lua_State **L = (lua_State *[]){holder_state, other, NULL}; *L; L++) {
    lua_pushstring(*L, url);
    lua_setglobal(*L, "redis_url");
  }
  run(holder_state, "hold a RedisLock",
      "held = require('portalock').RedisLock('embed-closed', {redis = redis_url})\n"
      "assert(held:acquire())\n");
  run_with(other, try_redis, "held");
  lua_close(holder_state);
  run_with(other, try_redis, "free");
  lua_close(other);
  rs_stop();
}
#endif

int main(void) {
  tu_init("embed");
  test_nothing_on_disk();
  test_exclusion_between_threads();
  test_bounded_semaphore_between_threads();
  test_blocking_wait_between_threads();
  test_closing_a_state_releases();
  test_posix_locks_belong_to_the_process();
  test_posix_lock_between_threads();
#ifdef PORTALOCK_HAVE_REDIS
  test_closing_a_state_ends_its_redis_grant();
#endif
  return tu_done();
}
