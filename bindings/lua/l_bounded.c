/*
 * Bounded-semaphore handles: portalock.core.new_bounded(maximum, opts). The handle owns the
 * held slot's descriptor (no io handle does), so its finalizer releases the slot, like a
 * holder that exits. The waiting loop lives in Lua (portalock.wait) over handle:try().
 */
#include "l_private.h"

#define PL_BOUNDED_MT "portalock.core.bounded"

typedef struct l_bounded {
  portalock_bounded_semaphore_t *sem; /* NULL once freed */
} l_bounded;

static portalock_bounded_semaphore_t *check_bounded(lua_State *L) {
  l_bounded *b = (l_bounded *)luaL_checkudata(L, 1, PL_BOUNDED_MT);
  luaL_argcheck(L, b->sem != NULL, 1, "bounded semaphore handle already freed");
  return b->sem;
}

static int b_new(lua_State *L) {
  lua_Number maximum = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  portalock_bounded_semaphore_options opts;
  portalock_bounded_semaphore_options_init(&opts);
  /* the strings stay on the stack until this function returns (see pl_opt_string) */
  opts.name = pl_opt_string(L, 2, "name");
  opts.filename_pattern = pl_opt_string(L, 2, "filename_pattern");
  opts.directory = pl_opt_string(L, 2, "directory");
  opts.timeout = pl_opt_number(L, 2, "timeout", opts.timeout);
  opts.check_interval = pl_opt_number(L, 2, "check_interval", opts.check_interval);
  opts.perm = pl_opt_int(L, 2, "perm", opts.perm);
  /* the core's rule, asked before the number becomes a long */
  char buf[PORTALOCK_MESSAGE_MAX];
  const char *problem =
      portalock_rule_problem(PORTALOCK_RULE_BOUNDED_MAXIMUM, maximum, buf, sizeof buf);
  if (problem != NULL)
    return luaL_error(L, "bad argument 'maximum' (%f): %s", (double)maximum, problem);
  long m = (long)maximum;
  l_bounded *b = (l_bounded *)lua_newuserdatauv(L, sizeof(l_bounded), 0);
  b->sem = NULL;
  luaL_setmetatable(L, PL_BOUNDED_MT);
  portalock_error err;
  if (portalock_bounded_semaphore_new(&b->sem, m, &opts, &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  return 1;
}

/* try() -> true, slot number | false, nil, next_attempt, nil | nil, errtab (raises on misuse). */
static int b_try(lua_State *L) {
  portalock_bounded_semaphore_t *sem = check_bounded(L);
  portalock_wait wait;
  portalock_error err;
  portalock_status st = portalock_bounded_semaphore_try(sem, &wait, &err);
  int n = pl_push_step(L, st, &wait, &err);
  if (st == PORTALOCK_OK) {
    lua_pushinteger(L, (lua_Integer)portalock_bounded_semaphore_slot(sem));
    n++;
  }
  return n;
}

static int b_release(lua_State *L) {
  portalock_error err;
  if (portalock_bounded_semaphore_release(check_bounded(L), &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int b_locked(lua_State *L) {
  lua_pushboolean(L, portalock_bounded_semaphore_locked(check_bounded(L)));
  return 1;
}

/* The held slot's number, or nil. */
static int b_slot(lua_State *L) {
  long slot = portalock_bounded_semaphore_slot(check_bounded(L));
  if (slot < 0) return 0;
  lua_pushinteger(L, (lua_Integer)slot);
  return 1;
}

/* The descriptor holding the slot, or nil. */
static int b_fd(lua_State *L) {
  int fd = portalock_bounded_semaphore_fd(check_bounded(L));
  if (fd < 0) return 0;
  lua_pushinteger(L, fd);
  return 1;
}

static int b_maximum(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)portalock_bounded_semaphore_maximum(check_bounded(L)));
  return 1;
}

static int b_name(lua_State *L) {
  lua_pushstring(L, portalock_bounded_semaphore_name(check_bounded(L)));
  return 1;
}

static int b_pattern(lua_State *L) {
  lua_pushstring(L, portalock_bounded_semaphore_filename_pattern(check_bounded(L)));
  return 1;
}

/* The directory (deciding the default), or nil, errtab when none is usable. */
static int b_directory(lua_State *L) {
  portalock_bounded_semaphore_t *sem = check_bounded(L);
  const char *dir = portalock_bounded_semaphore_directory(sem);
  if (dir == NULL) {
    portalock_error err;
    snprintf(err.message, sizeof err.message,
             "bounded semaphore '%s': no usable temporary directory",
             portalock_bounded_semaphore_name(sem));
    err.status = PORTALOCK_LOCK_EXCEPTION;
    err.errnum = 0;
    err.lost = 0;
    err.holder_pid = 0;
    err.path[0] = '\0';
    return pl_push_failure(L, &err);
  }
  lua_pushstring(L, dir);
  return 1;
}

/* filenames([random]) -> the slot paths in slot order, or in a random order; nil, errtab
   when the directory cannot be decided or the random source fails. */
static int b_filenames(lua_State *L) {
  portalock_bounded_semaphore_t *sem = check_bounded(L);
  int random = lua_toboolean(L, 2);
  if (portalock_bounded_semaphore_directory(sem) == NULL) return b_directory(L);
  long n = portalock_bounded_semaphore_maximum(sem);
  long *order = NULL;
  if (random) {
    /* A userdata, not malloc: a Lua allocation that raises below leaves nothing to free. */
    order = (long *)lua_newuserdatauv(L, (size_t)n * sizeof *order, 0);
    portalock_error err;
    if (portalock_bounded_semaphore_random_order(sem, order, &err) != PORTALOCK_OK)
      return pl_push_failure(L, &err);
  }
  lua_createtable(L, (int)n, 0);
  for (long i = 0; i < n; i++) {
    const char *path = portalock_bounded_semaphore_filename(sem, order ? order[i] : i);
    lua_pushstring(L, path != NULL ? path : "");
    lua_rawseti(L, -2, (int)(i + 1));
  }
  return 1;
}

static int b_tostring(lua_State *L) {
  portalock_bounded_semaphore_t *sem = check_bounded(L);
  lua_pushfstring(L, "portalock.core bounded semaphore '%s' (%s)",
                  portalock_bounded_semaphore_name(sem),
                  portalock_bounded_semaphore_locked(sem) ? "held" : "not held");
  return 1;
}

static int b_gc(lua_State *L) {
  l_bounded *b = (l_bounded *)luaL_checkudata(L, 1, PL_BOUNDED_MT);
  if (b->sem != NULL) {
    portalock_bounded_semaphore_free(b->sem);
    b->sem = NULL;
  }
  return 0;
}

/* h:begin(timeout, check_interval) -> an acquisition (l_acquisition.c) */
static int b_begin(lua_State *L) {
  portalock_bounded_semaphore_t *sem = check_bounded(L);
  portalock_acquisition acq;
  portalock_error err;
  portalock_status st = portalock_bounded_semaphore_begin(&acq, sem, luaL_checknumber(L, 2),
                                                          luaL_checknumber(L, 3), &err);
  return pl_push_acquisition(L, st, &acq, &err);
}

static int b_wait_done(lua_State *L) {
  portalock_bounded_semaphore_wait_done(check_bounded(L));
  return 0;
}

static const luaL_Reg bounded_methods[] = {{"try", b_try},
                                           {"begin", b_begin},
                                           {"wait_done", b_wait_done},
                                           {"release", b_release},
                                           {"locked", b_locked},
                                           {"slot", b_slot},
                                           {"fd", b_fd},
                                           {"maximum", b_maximum},
                                           {"name", b_name},
                                           {"filename_pattern", b_pattern},
                                           {"directory", b_directory},
                                           {"filenames", b_filenames},
                                           {NULL, NULL}};

static const luaL_Reg bounded_metamethods[] = {
    {"__gc", b_gc}, {"__tostring", b_tostring}, {NULL, NULL}};

/* default_temp_directory() -> the absolute default directory, or nil, errtab. */
static int b_default_temp_directory(lua_State *L) {
  char dir[PORTALOCK_PATH_MAX];
  portalock_error err;
  if (portalock_default_temp_directory(dir, sizeof dir, &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  lua_pushstring(L, dir);
  return 1;
}

static const luaL_Reg bounded_functions[] = {
    {"new_bounded", b_new}, {"default_temp_directory", b_default_temp_directory}, {NULL, NULL}};

void pl_open_bounded(lua_State *L) {
  lua_pushinteger(L, PORTALOCK_BOUNDED_MAXIMUM);
  lua_setfield(L, -2, "BOUNDED_MAXIMUM");
  luaL_newmetatable(L, PL_BOUNDED_MT);
  luaL_setfuncs(L, bounded_metamethods, 0);
  lua_newtable(L);
  luaL_setfuncs(L, bounded_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, bounded_functions, 0);
}
