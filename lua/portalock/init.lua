--- portalock: cross-process locks on kernel file locks.
-- The public module: flags and the low-level lock()/unlock(), the Lock family, RLock,
-- with(), read_pid(), the error classes and the scheduler hook. The C layer is
-- portalock.core; waiting, validation and bookkeeping live in the sibling modules.
local core = require "portalock.core"
local atomic = require "portalock.atomic"
local bounded = require "portalock.bounded"
local check = require "portalock.check"
local config = require "portalock.config"
local errors = require "portalock.errors"
local lock = require "portalock.lock"
local lockable = require "portalock.lockable"
local redis = require "portalock.redis"
local rlock = require "portalock.rlock"
local semaphore = require "portalock.semaphore"
local wait = require "portalock.wait"

local unpack = table.unpack or unpack -- luacheck: compat

local M = {
  _VERSION = core._VERSION,
  LOCK_SH = core.LOCK_SH,
  LOCK_EX = core.LOCK_EX,
  LOCK_NB = core.LOCK_NB,
  LOCK_UN = core.LOCK_UN,
  LockException = errors.LockException,
  AlreadyLocked = errors.AlreadyLocked,
  Lock = lock.Lock,
  TemporaryFileLock = lock.TemporaryFileLock,
  PidFileLock = lock.PidFileLock,
  RLock = rlock.RLock,
  NamedBoundedSemaphore = bounded.NamedBoundedSemaphore,
  BoundedSemaphore = bounded.BoundedSemaphore,
  Semaphore = semaphore.Semaphore,
  Lockable = lockable.Lockable,
  RedisLock = redis.RedisLock,
  RedisSemaphore = redis.RedisSemaphore,
  open_atomic = atomic.open_atomic,
  config = config,
  ConfigError = errors.ConfigError,
}

--- Flag values by name: Python's portalocker.LockFlags names and the LOCK_* names.
M.LockFlags = {
  SHARED = core.LOCK_SH, EXCLUSIVE = core.LOCK_EX, NON_BLOCKING = core.LOCK_NB, UNBLOCK = core.LOCK_UN,
  LOCK_SH = core.LOCK_SH, LOCK_EX = core.LOCK_EX, LOCK_NB = core.LOCK_NB, LOCK_UN = core.LOCK_UN,
}

-- lock(file, flags[, backend]) locks an open io handle or descriptor: returns `file`, or
-- nil, err. unlock(file[, backend]) unlocks what lock() locked: returns true, or nil, err.
-- They are C closures (the whole call is the cost of an uncontended lock): they check the
-- arguments as they go and call `refuse` only for a bad one, to raise check.lua's message.
local function refuse(func, file, flags, backend)
  error(check.file(func, file, "file") or (func == "lock" and check.flags(func, flags, "flags"))
    or (backend ~= nil and check.backend(func, backend, "backend"))
    or check.bad(func, "file", file, "refused by the C core"), 3)
end

local function failed(errtab)
  return nil, errors.from_core(errtab)
end

M.lock, M.unlock = core.flag_functions(refuse, failed)

--- The PID in a PID file, or nil when it is missing or malformed (ASCII digits only).
function M.read_pid(filename)
  local problem = check.filename("read_pid", filename, "filename")
  if problem then
    error(problem, 2)
  end
  return core.read_pid(filename)
end

--- Plugs in a scheduler so that waits inside its coroutines yield instead of blocking:
--- `sleep(seconds)` must yield the running coroutine and resume it after about that long.
--- nil removes it.
function M.set_scheduler(sleep)
  local problem = sleep ~= nil and check.func("set_scheduler", sleep, "sleep")
  if problem then
    error(problem, 2)
  end
  wait.set_scheduler(sleep)
end

local function pack(...)
  return {n = select("#", ...), ...}
end

local function check_with(obj, fn)
  local meta = getmetatable(obj)
  if type(meta) ~= "table" or type(meta.__close) ~= "function" or type(obj.acquire) ~= "function" then
    return check.bad("with", "obj", obj, "must be a portalock lock object")
  end
  return check.func("with", fn, "fn")
end

--- Acquires `obj` (raising its error when that fails), calls fn(handle, ...), releases on
--- success and on error (the error is re-raised unchanged) and returns fn's results.
--- On error the object is closed as by `__close` (an RLock drops every hold of the owner).
function M.with(obj, fn, ...)
  local problem = check_with(obj, fn)
  if problem then
    error(problem, 2)
  end
  local handle, err = obj:acquire()
  if not handle then
    error(err, 2)
  end
  local results = pack(pcall(fn, handle, ...))
  if not results[1] then
    pcall(getmetatable(obj).__close, obj, results[2])
    error(results[2], 0)
  end
  local ok, release_err = obj:release()
  if not ok then
    error(release_err, 2)
  end
  return unpack(results, 2, results.n)
end

return M
