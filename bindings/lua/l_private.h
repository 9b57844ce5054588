/* Shared pieces of the portalock.core Lua module. */
#ifndef PORTALOCK_L_PRIVATE_H
#define PORTALOCK_L_PRIVATE_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* fdopen, fileno under -std=c11 */
#endif

#include <stdio.h>

#include "compat.h"
#include "portalock.h"

#if defined(__GNUC__) || defined(__clang__)
#define PL_EXPORT __attribute__((visibility("default")))
#else
#define PL_EXPORT
#endif

/* The module's entry point: what `require "portalock.core"` calls in portalock/core.so, and
   what portalock_lua_preload (l_embed.c) registers in package.preload. */
PL_EXPORT int luaopen_portalock_core(lua_State *L);

#define PL_LOCK_MT "portalock.core.lock"
#define PL_RLOCK_MT "portalock.core.rlock"

typedef struct l_lock {
  portalock_lock_t *lock; /* NULL once freed */
} l_lock;

typedef struct l_rlock {
  portalock_rlock_t *rlock; /* NULL once freed */
} l_rlock;

/* Pushes `nil, errtab` for a failed call and returns 2; raises for PORTALOCK_INVALID. */
int pl_push_failure(lua_State *L, const portalock_error *err);

/* The FILE* inside the io handle at `idx`; raises if it is not an open io handle. */
FILE *pl_tofile(lua_State *L, int idx);
/* A descriptor from an integer or an open io handle at `idx`. */
int pl_tofd(lua_State *L, int idx);
/* The non-raising forms, for functions whose front end words the error: 1 with *out set when
   the value at `idx` is a number with an integer value in min..INT_MAX (a string is not; on
   Lua 5.1 every number is a float), or an integer >= 0 or an open io handle; else 0.
   `mt` indexes a copy of the io library's handle metatable, or is 0 to look it up by name:
   the copy saves a registry lookup (a string comparison) on every call. */
int pl_int_arg(lua_State *L, int idx, int min, int *out);
int pl_fd_arg(lua_State *L, int idx, int mt, int *fd);
/* The descriptor of the optional io handle at `idx` that an attempt locks on (Lua 5.1 and
   LuaJIT), or -1 when none is given. */
int pl_target_fd(lua_State *L, int idx);
/* Pushes the io handle that owns the held lock's descriptor and hands the lock over to it:
   a new stream (5.2+), or the handle at `given_handle_idx` the lock was taken on. */
int pl_push_lock_handle(lua_State *L, portalock_lock_t *lock, int given_handle_idx);
/* 1 when this build makes io handles itself (luaL_Stream, Lua 5.2+). */
int pl_makes_streams(void);

/* Options from the table at `idx` (a positive index), nil meaning "not given". A string
   option is left on the stack, anchored there until the C function returns (so the stack
   grows by one per string read); anything but a string raises an error naming the option. */
const char *pl_opt_string(lua_State *L, int idx, const char *key);
double pl_opt_number(lua_State *L, int idx, const char *key, double fallback);
int pl_opt_int(lua_State *L, int idx, const char *key, int fallback);

portalock_backend pl_checkbackend(lua_State *L, int idx);
void pl_checkoptions(lua_State *L, int idx, portalock_lock_options *opts);
/* The Lock behind a lock or rlock handle at `idx`. */
portalock_lock_t *pl_checklock(lua_State *L, int idx);
/* Pushes the results of a step: true | false, fd|nil, next_attempt, holder_pid|nil | nil,
 * errtab. holder_pid: the live process the contended lock names (a PidFileLock's), if any. */
int pl_push_step(lua_State *L, portalock_status status, const portalock_wait *wait,
                 const portalock_error *err);
/* "ready", "timeout" or "interrupted" for a portalock_sleep or portalock_wait_step result. */
int pl_push_wait_result(lua_State *L, int woke);
/* Pushes a new acquisition (anchoring the handle at index 1), or `nil, errtab` when `status`
   says begin failed (raising for PORTALOCK_INVALID). */
int pl_push_acquisition(lua_State *L, portalock_status status, const portalock_acquisition *acq,
                        const portalock_error *err);

/* Each adds its functions to the module table on top of the stack. */
void pl_open_options(lua_State *L);
void pl_open_flags(lua_State *L);
void pl_open_wait(lua_State *L);
void pl_open_acquisition(lua_State *L);
void pl_open_lock(lua_State *L);
void pl_open_rlock(lua_State *L);
void pl_open_pidfile(lua_State *L);
void pl_open_bounded(lua_State *L);
void pl_open_semaphore(lua_State *L);
void pl_open_atomic(lua_State *L);
void pl_open_status(lua_State *L);
void pl_open_command(lua_State *L);
void pl_open_errno(lua_State *L);
void pl_open_budget(lua_State *L);
void pl_open_readfile(lua_State *L);
#ifdef PORTALOCK_HAVE_REDIS
void pl_open_redis(lua_State *L); /* RedisLock and RedisSemaphore: only when built with hiredis */
void pl_open_redis_protocol(lua_State *L); /* their protocol, for a transport in Lua */
#endif
/* A Redis token in Lua: a decimal string on every version (nil for 0, no grant); the check
 * raises an argument error at `idx` for anything else. These are l_redis.c's, shared with
 * l_redis_protocol.c, and declared outside the #ifdef: the fuzz target fuzz_lua_options
 * compiles both files without PORTALOCK_HAVE_REDIS. */
void pl_push_redis_token(lua_State *L, uint64_t token);
uint64_t pl_check_redis_token(lua_State *L, int idx);
/* Who holds and waits for a name, as session:status(name) gives it (l_redis.c). */
void pl_push_redis_status(lua_State *L, const portalock_redis_status *status);

/* Methods shared by lock and rlock handles (defined in l_lock.c). */
extern const luaL_Reg pl_lock_common_methods[];
int pl_lock_tostring(lua_State *L);

#endif
