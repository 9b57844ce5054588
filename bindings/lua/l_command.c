/* Running a command that inherits held lock descriptors (the `portalock lock` and
   `portalock run` commands). */
#include "l_private.h"

#include <signal.h>
#include <string.h>

#define PL_KEEP_MAX 64 /* more descriptors than any command line hands over */

/* Reads the arguments (argv, keep) of command_run, command_run_watching and command_exec: the
   NULL-terminated argv (its strings anchored in the table at 1, the array in a userdata on the
   stack) and the descriptors of `keep` (an array of io handles or descriptors) into keep[]. Returns
   argv. */
static const char **pl_command_args(lua_State *L, int *keep, size_t *nkeep) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t argc = lua_rawlen(L, 1);
  *nkeep = lua_rawlen(L, 2);
  luaL_argcheck(L, argc >= 1, 1, "names no command");
  luaL_argcheck(L, *nkeep <= PL_KEEP_MAX, 2, "too many descriptors");
  /* Userdata rather than malloc: an error raised half-way leaves nothing to free. */
  const char **argv = lua_newuserdata(L, (argc + 1) * sizeof *argv);
  for (size_t i = 0; i < argc; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, 1, lua_pushfstring(L, "entry %d is not a string", (int)i + 1));
    /* Anchored in the table at 1: read raw (no metamethod), and no Lua allocation (so no
       collection step or finalizer that could change the table) happens until the command
       has run or the exec has failed. */
    argv[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[argc] = NULL;
  for (size_t i = 0; i < *nkeep; i++) {
    lua_rawgeti(L, 2, (int)i + 1);
    keep[i] = pl_tofd(L, lua_gettop(L));
    lua_pop(L, 1);
  }
  fflush(NULL); /* what the caller printed comes before what the command prints */
  return argv;
}

/* command_run(argv, keep) -> exit_code | nil, err. `argv` is an array of strings, `keep` an
   array of io handles or descriptors that the command inherits. Blocks until the command
   ends; see portalock_command_run. */
static int c_command_run(lua_State *L) {
  int keep[PL_KEEP_MAX];
  size_t nkeep;
  const char **argv = pl_command_args(L, keep, &nkeep);
  int exit_code = 0;
  portalock_error err;
  portalock_status st = portalock_command_run(argv, keep, nkeep, &exit_code, &err);
  if (st != PORTALOCK_OK) return pl_push_failure(L, &err);
  lua_pushinteger(L, exit_code);
  return 1;
}

/* command_run_watching(argv, keep, watch [, grace]) -> exit_code, watch_fired | nil, err:
   command_run that also ends the command (SIGTERM, then SIGKILL after `grace` seconds,
   default COMMAND_GRACE) once `watch` (an io handle or descriptor) becomes readable;
   watch_fired is true then. See portalock_command_run_watching. */
static int c_command_run_watching(lua_State *L) {
  int keep[PL_KEEP_MAX];
  size_t nkeep;
  int watch = pl_tofd(L, 3);
  double grace = luaL_optnumber(L, 4, PORTALOCK_COMMAND_GRACE);
  const char **argv = pl_command_args(L, keep, &nkeep);
  int exit_code = 0, fired = 0;
  portalock_error err;
  portalock_status st =
      portalock_command_run_watching(argv, keep, nkeep, watch, grace, &exit_code, &fired, &err);
  if (st != PORTALOCK_OK) return pl_push_failure(L, &err);
  lua_pushinteger(L, exit_code);
  lua_pushboolean(L, fired);
  return 2;
}

/* command_exec(argv, keep) -> nil, err: replaces the process with the command (arguments as
   for command_run); returns only when it cannot start. See portalock_command_exec. */
static int c_command_exec(lua_State *L) {
  int keep[PL_KEEP_MAX];
  size_t nkeep;
  const char **argv = pl_command_args(L, keep, &nkeep);
  portalock_error err;
  portalock_command_exec(argv, keep, nkeep, &err);
  return pl_push_failure(L, &err);
}

/* default_sigint(): SIGINT back to its default action. The stand-alone interpreter catches
   it to raise "interrupted!" in Lua; a command-line tool should die of it instead. */
static int c_default_sigint(lua_State *L) {
  (void)L;
  signal(SIGINT, SIG_DFL);
  return 0;
}

static const luaL_Reg command_functions[] = {{"command_run", c_command_run},
                                             {"command_run_watching", c_command_run_watching},
                                             {"command_exec", c_command_exec},
                                             {"default_sigint", c_default_sigint},
                                             {NULL, NULL}};

void pl_open_command(lua_State *L) {
  lua_pushnumber(L, PORTALOCK_COMMAND_GRACE);
  lua_setfield(L, -2, "COMMAND_GRACE");
  luaL_setfuncs(L, command_functions, 0);
}
