/*
 * portalock.core's side of open_atomic: a userdata handle around portalock_atomic_t.
 *
 * The handle is not an io file: writes go, through a small buffer in the userdata, to the
 * temporary's descriptor (portalock_atomic_write), so that no stdio stream and no io handle
 * the user could close or keep ever owns the temporary. The userdata carries __gc (every
 * runtime: collection of an uncommitted handle removes the temporary) and __close (5.4).
 * The raw functions below never raise for a failed call: they return `nil, errtab`, with
 * errtab.kind == "Invalid" for misuse, and the Lua front end (portalock.atomic) raises or
 * wraps. __index is core.atomic_methods, which the front end fills.
 *
 *   atomic_open(filename, replace) -> handle | nil, errtab
 *   atomic_write(h, s) -> true | nil, errtab          (a failure poisons the handle)
 *   atomic_flush(h) -> true | nil, errtab
 *   atomic_seek(h, whence, offset) -> position | nil, errtab
 *   atomic_commit(h) -> true | nil, errtab            (errtab.published, errtab.kept)
 *   atomic_abort(h) -> true | nil, errtab
 *   atomic_info(h) -> state ("open" | "kept" | "closed"), filename, temp_path | nil, poisoned
 */
#include "l_private.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define PL_ATOMIC_MT "portalock.core.atomic"
#define PL_ATOMIC_BUFSIZE 8192

typedef struct l_atomic {
  portalock_atomic_t *atomic; /* NULL once freed */
  size_t used;                /* buffered bytes not yet written */
  char buf[PL_ATOMIC_BUFSIZE];
} l_atomic;

static l_atomic *check_atomic(lua_State *L) {
  return (l_atomic *)luaL_checkudata(L, 1, PL_ATOMIC_MT);
}

static int push_error(lua_State *L, const portalock_error *err, int published, const char *kept) {
  lua_pushnil(L);
  lua_createtable(L, 0, 6);
  lua_pushstring(L,
                 err->status == PORTALOCK_INVALID ? "Invalid" : portalock_status_name(err->status));
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, err->message);
  lua_setfield(L, -2, "message");
  if (err->errnum != 0) {
    lua_pushinteger(L, err->errnum);
    lua_setfield(L, -2, "errno");
  }
  if (err->path[0] != '\0') {
    lua_pushstring(L, err->path);
    lua_setfield(L, -2, "path");
  }
  if (published) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "published");
  }
  if (kept != NULL) {
    lua_pushstring(L, kept);
    lua_setfield(L, -2, "kept");
  }
  return 2;
}

static int push_invalid(lua_State *L, const char *what) {
  portalock_error err;
  memset(&err, 0, sizeof err);
  err.status = PORTALOCK_INVALID;
  snprintf(err.message, sizeof err.message,
           "attempt to %s an atomic handle that is already committed or aborted", what);
  return push_error(L, &err, 0, NULL);
}

/* A usable handle, or NULL after pushing the misuse error (the caller returns 2). */
static portalock_atomic_t *usable(lua_State *L, l_atomic *h, const char *what) {
  if (h->atomic == NULL || !portalock_atomic_is_open(h->atomic)) {
    push_invalid(L, what);
    return NULL;
  }
  return h->atomic;
}

/* nil, err for a system failure of `what` on the temporary (errno `errnum`). */
static int push_failure(lua_State *L, portalock_atomic_t *a, const char *what, int errnum,
                        const char *why) {
  portalock_error err;
  memset(&err, 0, sizeof err);
  err.status = PORTALOCK_LOCK_EXCEPTION;
  err.errnum = errnum;
  snprintf(err.path, sizeof err.path, "%s", portalock_atomic_temp_path(a));
  snprintf(err.message, sizeof err.message, "%s '%s': %s", what, portalock_atomic_temp_path(a),
           why != NULL ? why : strerror(errnum));
  return push_error(L, &err, 0, NULL);
}

/* An earlier write failed: nothing more may look as if it succeeded. */
static int push_poisoned(lua_State *L, portalock_atomic_t *a, const char *what) {
  return push_failure(L, a, what, 0, "an earlier write failed; commit() will abort");
}

/* Writes out the buffer; a failure poisons the handle (the buffer is dropped). */
static portalock_status drain(l_atomic *h, portalock_error *err) {
  size_t n = h->used;
  h->used = 0;
  if (n == 0) return PORTALOCK_OK;
  return portalock_atomic_write(h->atomic, h->buf, n, err);
}

static int l_atomic_open(lua_State *L) {
  const char *filename = luaL_checkstring(L, 1);
  portalock_atomic_options opts;
  portalock_atomic_options_init(&opts);
  opts.replace = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  l_atomic *h = (l_atomic *)lua_newuserdatauv(L, sizeof(l_atomic), 0);
  h->atomic = NULL;
  h->used = 0;
  luaL_setmetatable(L, PL_ATOMIC_MT);
  portalock_error err;
  if (portalock_atomic_open(&h->atomic, filename, &opts, &err) != PORTALOCK_OK)
    return push_error(L, &err, 0, NULL);
  return 1;
}

static int l_atomic_write(lua_State *L) {
  l_atomic *h = check_atomic(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  portalock_atomic_t *a = usable(L, h, "write to");
  if (a == NULL) return 2;
  if (portalock_atomic_is_poisoned(a)) return push_poisoned(L, a, "write to");
  portalock_error err;
  if (len <= sizeof h->buf - h->used) {
    memcpy(h->buf + h->used, s, len);
    h->used += len;
  } else if (drain(h, &err) != PORTALOCK_OK) {
    return push_error(L, &err, 0, NULL);
  } else if (len < sizeof h->buf) {
    memcpy(h->buf, s, len);
    h->used = len;
  } else if (portalock_atomic_write(a, s, len, &err) != PORTALOCK_OK) {
    return push_error(L, &err, 0, NULL);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_atomic_flush(lua_State *L) {
  l_atomic *h = check_atomic(L);
  portalock_atomic_t *a = usable(L, h, "flush");
  if (a == NULL) return 2;
  if (portalock_atomic_is_poisoned(a)) return push_poisoned(L, a, "flush");
  portalock_error err;
  if (drain(h, &err) != PORTALOCK_OK) return push_error(L, &err, 0, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_atomic_seek(lua_State *L) {
  static const char *const names[] = {"set", "cur", "end", NULL};
  static const int whences[] = {SEEK_SET, SEEK_CUR, SEEK_END};
  l_atomic *h = check_atomic(L);
  int whence = whences[luaL_checkoption(L, 2, "cur", names)];
  lua_Number offset = luaL_optnumber(L, 3, 0);
  /* off_t is 64 bits: anything beyond would be undefined behaviour in the cast below */
  luaL_argcheck(L, offset >= -9.2e18 && offset <= 9.2e18, 3, "offset out of range");
  portalock_atomic_t *a = usable(L, h, "seek in");
  if (a == NULL) return 2;
  portalock_error err;
  if (drain(h, &err) != PORTALOCK_OK) return push_error(L, &err, 0, NULL);
  off_t pos = lseek(portalock_atomic_fd(a), (off_t)offset, whence);
  if (pos < 0) return push_failure(L, a, "seek in", errno, NULL);
  lua_pushnumber(L, (lua_Number)pos);
  return 1;
}

static int l_atomic_commit(lua_State *L) {
  l_atomic *h = check_atomic(L);
  portalock_atomic_t *a = usable(L, h, "commit");
  if (a == NULL) return 2;
  portalock_error err;
  drain(h, &err); /* a failure poisons the handle, and the commit below then aborts */
  int published = 0;
  if (portalock_atomic_commit(a, &published, &err) != PORTALOCK_OK)
    return push_error(L, &err, published, published ? NULL : portalock_atomic_temp_path(a));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_atomic_abort(lua_State *L) {
  l_atomic *h = check_atomic(L);
  h->used = 0;
  if (h->atomic == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  portalock_error err;
  if (portalock_atomic_abort(h->atomic, &err) != PORTALOCK_OK) return push_error(L, &err, 0, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_atomic_info(lua_State *L) {
  l_atomic *h = check_atomic(L);
  const char *temp = h->atomic ? portalock_atomic_temp_path(h->atomic) : NULL;
  if (h->atomic != NULL && portalock_atomic_is_open(h->atomic))
    lua_pushliteral(L, "open");
  else if (temp != NULL)
    lua_pushliteral(L, "kept");
  else
    lua_pushliteral(L, "closed");
  if (h->atomic != NULL)
    lua_pushstring(L, portalock_atomic_filename(h->atomic));
  else
    lua_pushnil(L);
  if (temp != NULL)
    lua_pushstring(L, temp);
  else
    lua_pushnil(L);
  lua_pushboolean(L, h->atomic != NULL && portalock_atomic_is_poisoned(h->atomic));
  return 4;
}

/* __gc: an uncommitted handle's temporary is removed (portalock_atomic_free aborts). */
static int l_atomic_gc(lua_State *L) {
  l_atomic *h = (l_atomic *)luaL_checkudata(L, 1, PL_ATOMIC_MT);
  portalock_atomic_free(h->atomic);
  h->atomic = NULL;
  h->used = 0;
  return 0;
}

/* __close (5.4): aborts an uncommitted handle, whether the block ends normally or not. */
static int l_atomic_close(lua_State *L) {
  l_atomic *h = (l_atomic *)luaL_checkudata(L, 1, PL_ATOMIC_MT);
  h->used = 0;
  if (h->atomic != NULL) portalock_atomic_abort(h->atomic, NULL);
  return 0;
}

static int l_atomic_tostring(lua_State *L) {
  l_atomic *h = (l_atomic *)luaL_checkudata(L, 1, PL_ATOMIC_MT);
  const char *state = "closed";
  if (h->atomic != NULL && portalock_atomic_is_open(h->atomic))
    state = portalock_atomic_is_poisoned(h->atomic) ? "poisoned" : "open";
  lua_pushfstring(L, "portalock atomic handle (%s, %s): %p",
                  h->atomic ? portalock_atomic_filename(h->atomic) : "?", state, (void *)h);
  return 1;
}

static const luaL_Reg atomic_functions[] = {
    {"atomic_open", l_atomic_open},     {"atomic_write", l_atomic_write},
    {"atomic_flush", l_atomic_flush},   {"atomic_seek", l_atomic_seek},
    {"atomic_commit", l_atomic_commit}, {"atomic_abort", l_atomic_abort},
    {"atomic_info", l_atomic_info},     {NULL, NULL}};

void pl_open_atomic(lua_State *L) {
  luaL_setfuncs(L, atomic_functions, 0);
  luaL_newmetatable(L, PL_ATOMIC_MT);
  lua_pushcfunction(L, l_atomic_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_atomic_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_atomic_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L); /* the methods: filled by the Lua front end */
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, -3, "atomic_methods"); /* module.atomic_methods */
  lua_pop(L, 1);
}
