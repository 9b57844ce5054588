--- Lockable: the pyATS-style mixin. An object gets a reentrant lock (an RLock on a file,
-- owned by the running coroutine) that excludes across processes and across coroutines of
-- one Lua state; `Lockable.locked(fn)` wraps a method so it runs holding that lock.
--
--   local Account = portalock.Lockable.mixin({})   -- adds acquire, release, __close
--   Account.__index = Account
--   function Account.new(path)
--     return portalock.Lockable.init(setmetatable({}, Account), {filename = path .. ".lock"})
--   end
--   Account.deposit = portalock.Lockable.locked(function(self, n) ... end)
--
-- A plain table without a metatable can be made Lockable on its own with
-- `Lockable.init(obj, opts)`, which gives it those methods. Objects of one Lua state whose
-- lock files are the same path (and that choose no `owner`) share one RLock, so their
-- locked methods may call each other.
local check = require "portalock.check"
local core = require "portalock.core"
local rlock = require "portalock.rlock"

local unpack = table.unpack or unpack -- luacheck: compat

local M = {}

-- obj -> {rlock, filename, timeout, check_interval}; objects weakly.
local states = setmetatable({}, {__mode = "k"})
-- absolute lock file path -> RLock shared by the objects that use it.
local shared = setmetatable({}, {__mode = "v"})

local function check_name(func, value, name)
  if type(value) ~= "string" or value == "" or value:find("[/%z]") or value == "." or value == ".." then
    return check.bad(func, name, value, 'must be a non-empty string without "/" or NUL, not "." or ".."')
  end
end

local INIT_OPTIONS = {
  {"filename", check.filename}, {"name", check_name}, {"directory", check.filename},
  {"timeout", check.timeout}, {"check_interval", check.check_interval}, {"owner", check.func},
}
local ACQUIRE_OPTIONS = {
  {"blocking", check.boolean}, {"timeout", check.timeout}, {"check_interval", check.check_interval},
}

local pick = check.pick

local function state_of(self, method)
  local state = (type(self) == "table" or type(self) == "userdata") and states[self]
  if not state then
    error(check.bad(method, "self", self, "not a Lockable object (make it one with "
      .. "portalock.Lockable.init(obj, opts), and call methods as obj:method(...))"), 3)
  end
  return state
end

-- true | false, err (AlreadyLocked) | nil, err
local function acquire(state, opts)
  local blocking = pick(opts.blocking, true)
  local fh, err = state.rlock:acquire({
    timeout = blocking and pick(opts.timeout, state.timeout) or 0,
    check_interval = pick(opts.check_interval, state.check_interval),
    fail_when_locked = not blocking,
  })
  if fh then
    return true
  elseif err.kind == "AlreadyLocked" then
    return false, err
  end
  return nil, err
end

local methods = {}

--- Takes one hold for the running coroutine: true; false, err when the lock stays held by
--- another owner until the timeout (default math.huge; `blocking = false`: one try); nil, err
--- on a system failure.
function methods.acquire(self, opts)
  local state = state_of(self, "acquire")
  local problem = check.options_with("acquire", opts, ACQUIRE_OPTIONS)
  if problem then
    error(problem, 2)
  end
  return acquire(state, opts or {})
end

--- Drops one hold of the running coroutine: true or nil, err. Raises when the caller does
--- not hold the lock.
function methods.release(self)
  local state = state_of(self, "release")
  local ok, result, err = pcall(state.rlock.release, state.rlock)
  if not ok then
    error("cannot release Lockable object: " .. tostring(result):gsub("^cannot release ", ""), 2)
  elseif not result then
    return nil, err
  end
  return true
end

-- Drops one hold if the running coroutine has one: `<close>` and `with()` on error.
local function close(self)
  local state = states[self]
  if not state then
    return
  end
  local ok, result, err = pcall(state.rlock.release, state.rlock)
  if ok and not result then
    error(err)
  end
end

local function install(target)
  for name, method in pairs(methods) do
    if rawget(target, name) == nil then
      rawset(target, name, method)
    end
  end
end

--- Makes `Class` (a table used as the metatable and/or __index of its instances) carry the
--- Lockable methods and `__close`. Each instance still needs Lockable.init. Returns Class.
function M.mixin(Class)
  if type(Class) ~= "table" then
    error(check.bad("Lockable.mixin", "Class", Class, "must be a table"), 2)
  end
  install(Class)
  if rawget(Class, "__close") == nil then
    rawset(Class, "__close", close)
  end
  return Class
end

local function lock_path(opts)
  if opts.filename and opts.name then
    return nil, "bad argument 'opts' to 'Lockable.init': give either 'filename' or 'name', not both"
  elseif opts.filename then
    return opts.filename
  elseif opts.name then
    -- The bounded semaphores' default directory, decided by the core.
    local dir = opts.directory
    if not dir then
      local err
      dir, err = core.default_temp_directory()
      if not dir then
        return nil, "Lockable.init: " .. err.message
      end
    end
    return dir .. "/" .. opts.name .. ".lock"
  end
  return nil, "bad argument 'opts' to 'Lockable.init': needs 'filename' (the lock file) or 'name' "
    .. "(for <directory or the temporary directory>/<name>.lock)"
end

--- Gives `obj` its lock. opts: filename, or name (+ directory); timeout (default math.huge)
--- and check_interval (core.DEFAULT_CHECK_INTERVAL) for acquire and locked methods; owner
--- (see RLock). A table without a metatable also gets the methods and a metatable with
--- __close. Returns obj.
function M.init(obj, opts)
  local problem
  if type(obj) ~= "table" then
    problem = check.bad("Lockable.init", "obj", obj, "must be a table")
  elseif states[obj] then
    problem = check.bad("Lockable.init", "obj", obj, "is already Lockable")
  elseif opts == nil then
    problem = "bad argument 'opts' to 'Lockable.init': needs a table with 'filename' or 'name'"
  else
    problem = check.options_with("Lockable.init", opts, INIT_OPTIONS)
  end
  local path
  if not problem then
    path, problem = lock_path(opts)
  end
  if problem then
    error(problem, 2)
  end
  local lock = rlock.RLock(path, {owner = opts.owner})
  if not opts.owner then
    lock = shared[lock.filename] or lock
    shared[lock.filename] = lock
  end
  states[obj] = {
    rlock = lock,
    timeout = pick(opts.timeout, math.huge),
    check_interval = pick(opts.check_interval, core.DEFAULT_CHECK_INTERVAL),
  }
  if getmetatable(obj) == nil then
    setmetatable(obj, {__index = methods, __close = close})
  elseif obj.acquire == nil then
    install(obj)
  end
  return obj
end

local function pack(...)
  return {n = select("#", ...), ...}
end

--- Wraps a method: the result runs fn(self, ...) holding self's lock (reentrant: it may
--- call other locked methods), releases on return and on error (re-raised), and returns
--- fn's results. A lock that cannot be had raises the error (AlreadyLocked only with a
--- finite timeout, or when another coroutine holds it and no scheduler is plugged in).
function M.locked(fn)
  if type(fn) ~= "function" then
    error(check.bad("Lockable.locked", "fn", fn, "must be a function"), 2)
  end
  return function(self, ...)
    local state = state_of(self, "a locked method")
    local ok, err = acquire(state, {})
    if not ok then
      error(err, 2)
    end
    local results = pack(pcall(fn, self, ...))
    local released, release_ok, release_err = pcall(state.rlock.release, state.rlock)
    if not results[1] then
      error(results[2], 0)
    elseif not released then
      error(release_ok, 2)
    elseif not release_ok then
      error(release_err, 2)
    end
    return unpack(results, 2, results.n)
  end
end

M.Lockable = setmetatable({init = M.init, mixin = M.mixin, locked = M.locked}, {
  __newindex = function() error("portalock.Lockable is read-only", 2) end,
})

return {Lockable = M.Lockable}
