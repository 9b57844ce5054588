--- Lock, TemporaryFileLock and PidFileLock; also the pieces RLock shares (configure,
-- acquire_with, object_metatable).
local core = require "portalock.core"
local check = require "portalock.check"
local errors = require "portalock.errors"
local holding = require "portalock.holding"
local owner = require "portalock.owner"
local wait = require "portalock.wait"

local M = {}

--- The defaults of a Lock's options: portalocker's (fail_when_locked's is Lock's own; the
--- other kinds of the family choose theirs in KINDS), taken from the core where it has them.
M.DEFAULTS = {
  mode = core.DEFAULT_MODE, timeout = core.DEFAULT_TIMEOUT,
  check_interval = core.DEFAULT_CHECK_INTERVAL, flags = core.DEFAULT_FLAGS,
  backend = core.DEFAULT_BACKEND, fail_when_locked = false,
}
local DEFAULTS = M.DEFAULTS

local ACQUIRE_OPTIONS = {"timeout", "check_interval", "fail_when_locked"}
local LOCK_OPTIONS = {"mode", "timeout", "check_interval", "fail_when_locked", "flags", "backend", "perm"}
-- TemporaryFileLock and PidFileLock choose their own mode.
local FIXED_MODE_OPTIONS = {"timeout", "check_interval", "fail_when_locked", "flags", "backend", "perm"}

-- What distinguishes the kinds of the Lock family (RLock describes itself the same way).
local KINDS = {
  Lock = {core_kind = "lock", options = LOCK_OPTIONS, fail_when_locked = DEFAULTS.fail_when_locked},
  TemporaryFileLock = {core_kind = "temporary", options = FIXED_MODE_OPTIONS, mode = "w",
    default_filename = ".lock", fail_when_locked = true, exclusive_only = true},
  PidFileLock = {core_kind = "pidfile", options = FIXED_MODE_OPTIONS, mode = "a",
    default_filename = ".pid", fail_when_locked = true, exclusive_only = true},
}

local pick = check.pick

--- Validates constructor arguments for the class `name` described by `kind`. Returns the
--- filename, the options for the C layer and the per-acquire defaults, or nil, message.
function M.configure(name, kind, filename, opts)
  filename = pick(filename, kind.default_filename)
  local problem = check.filename(name, filename, "filename") or check.options(name, opts, kind.options)
  if problem then
    return nil, problem
  end
  opts = opts or {}
  local core_opts = {
    mode = kind.mode or pick(opts.mode, DEFAULTS.mode),
    timeout = pick(opts.timeout, DEFAULTS.timeout),
    check_interval = pick(opts.check_interval, DEFAULTS.check_interval),
    fail_when_locked = pick(opts.fail_when_locked, kind.fail_when_locked),
    flags = pick(opts.flags, DEFAULTS.flags),
    backend = pick(opts.backend, DEFAULTS.backend),
    perm = opts.perm,
  }
  problem = check.combination(name, core_opts.mode, core_opts.flags, core_opts.backend, kind.exclusive_only)
  if problem then
    return nil, problem
  end
  local defaults = {
    timeout = core_opts.timeout,
    check_interval = core_opts.check_interval,
    fail_when_locked = core_opts.fail_when_locked,
  }
  return filename, core_opts, defaults
end

--- The open mode with the least access that a Lock with options `opts` needs, the way
--- flock(1) opens its file: read-only for a flock(2) lock, which any open descriptor can
--- take; writable for an exclusive fcntl lock ("ofd", "posix"), as check.combination asks.
function M.least_mode(opts)
  local backend, flags = pick(opts.backend, DEFAULTS.backend), pick(opts.flags, DEFAULTS.flags)
  return (backend ~= "flock" and check.is_exclusive(flags)) and "a" or "r"
end

--- The private fields every lock object of the family starts with.
function M.fields(class_name, handle, core_opts, defaults)
  return {
    _class = class_name,
    _h = handle,
    _fh = false,
    _identity = false,
    _filename = handle:filename(),
    _path = handle:lock_filename(),
    _exclusive = check.is_exclusive(core_opts.flags),
    _fmode = core_opts.mode,
    _defaults = defaults,
    _reentrant = false, -- present, so that reading it never calls the metatable's __index
  }
end

--- A metatable for objects whose public fields are read-only: `methods` plus `getters`
--- (name -> function(self)).
function M.object_metatable(methods, getters)
  local meta = {}
  meta.__index = function(self, key)
    local method = methods[key]
    if method ~= nil then
      return method
    end
    local getter = getters[key]
    return getter and getter(self)
  end
  meta.__newindex = function(self, key)
    error(string.format("cannot assign field %s of a %s: its fields are read-only",
      tostring(key), rawget(self, "_class")), 2)
  end
  meta.__tostring = function(self)
    return string.format("portalock.%s('%s'): %s", self._class, self._filename,
      self:locked() and "held" or "not held")
  end
  return meta
end

--- Checks `self` for a method call; returns a message on misuse.
function M.check_self(self, meta, family, method)
  if getmetatable(self) ~= meta then
    return check.bad(method, "self", self,
      string.format("expected a %s; call it as obj:%s(...)", family, method))
  end
end

--- Checks per-call acquire options; returns the effective settings or nil, message.
--- Without options they are the object's defaults (callers may skip the call then).
function M.acquire_settings(self, opts)
  if opts == nil then
    return self._defaults
  end
  local problem = check.options("acquire", opts, ACQUIRE_OPTIONS)
  if problem then
    return nil, problem
  end
  local defaults = self._defaults
  return {
    timeout = pick(opts.timeout, defaults.timeout),
    check_interval = pick(opts.check_interval, defaults.check_interval),
    fail_when_locked = pick(opts.fail_when_locked, defaults.fail_when_locked),
  }
end

-- The step result for a lock held within this process, which the C core is not asked about;
-- `spare` is passed on (see attempt).
local function in_state(self, same_owner, spare)
  local holder_pid = self._class == "PidFileLock" and core.pid_file_holder(self._filename) or nil
  return "in_state", same_owner, nil, holder_pid, spare
end

-- One attempt for the waiting loop (see wait.wait for what it returns): a step of the
-- acquisition `acq`, which applies the policy.
-- Returns also the target that the next attempt is to use: on 5.1 and LuaJIT the target of an
-- attempt that did not get the lock is kept for the next one (`spare`), so that a waiter woken
-- by a release tries the lock at once instead of first opening an io handle (an fopen of
-- /dev/null); acquire_with closes the one left at the end.
local function attempt(self, token, acq, spare)
  holding.refresh(self)
  if self._fh then
    return in_state(self, false, spare)
  end
  local conflict = holding.conflict(self, token)
  if conflict then
    return in_state(self, conflict == "self", spare)
  end
  local target, err = spare, nil
  if not target then
    target, err = holding.target(self)
  end
  if target == nil then
    return "failed", err
  end
  local status, detail, next_attempt = acq:step(target or nil)
  if status == "acquired" then
    local fh
    fh, err = holding.take(self, token, target)
    if not fh then
      return "failed", err
    end
    return "acquired"
  end
  if status == "sleep" then
    return "sleep", detail, next_attempt, nil, target
  end
  holding.discard(target)
  return "failed", errors.from_core(detail)
end

local function begin(self, settings, token)
  if self._reentrant then
    return self._h:begin(token, settings.timeout, settings.check_interval,
      settings.fail_when_locked)
  end
  return self._h:begin(settings.timeout, settings.check_interval, settings.fail_when_locked)
end

--- Acquires a lock that `token` does not hold yet. Returns the io handle or nil, err.
--- Every attempt, the first too, is a step of the acquisition: its policy (give up at the
--- first contention, queue in the kernel, poll) decides what an attempt opens.
function M.acquire_with(self, settings, token)
  local acq = begin(self, settings, token)
  local how = wait.begin(acq)
  local status, detail, next_attempt, holder_pid, spare
  if not wait.queued(how, self._path) then -- else it waits behind this nginx worker's waiters
    status, detail, next_attempt, holder_pid, spare = attempt(self, token, acq)
    if status == "acquired" then
      return self._fh
    elseif status == "failed" then
      return nil, detail
    end
  end
  -- Only a wait that blocks keeps a target for its next attempt: one that yields may be
  -- abandoned while it sleeps, and its target would stay open until a garbage collection.
  local keeps = not core.STREAMS and not how.yields
  local function discard()
    holding.discard(spare)
    spare = nil
  end
  if not keeps then
    discard()
  end
  local ok, err = wait.wait(self._path, function()
    local step, step_detail, step_next_attempt, step_holder_pid
    step, step_detail, step_next_attempt, step_holder_pid, spare = attempt(self, token, acq, spare)
    if not keeps then
      discard()
    end
    return step, step_detail, step_next_attempt, step_holder_pid
  end, acq, nil, how, discard, status, detail, next_attempt, holder_pid)
  discard()
  if ok then
    return self._fh
  end
  return nil, err
end

--- The read-only fields every object of the family has: its filename and the per-acquire
--- defaults it was made with (timeout, check_interval, fail_when_locked); plus `extra`.
function M.family_getters(extra)
  local getters = {filename = function(self) return self._filename end}
  for _, name in ipairs(ACQUIRE_OPTIONS) do
    getters[name] = function(self) return self._defaults[name] end
  end
  for name, getter in pairs(extra) do
    getters[name] = getter
  end
  return getters
end

local Lock = {}
local LockMeta = M.object_metatable(Lock, M.family_getters({
  lock_filename = function(self)
    if self._class == "PidFileLock" then
      return self._path
    end
  end,
}))

-- Raises (at the method's caller) unless `self` is a Lock; the methods test the metatable
-- inline first, so that a correct call costs no extra function call.
local function check_lock(self, method)
  local problem = M.check_self(self, LockMeta, "Lock", method)
  if problem then
    error(problem, 3)
  end
end

--- Acquires; returns the io handle holding the lock, or nil, err. Re-acquiring from the
--- coroutine that holds it returns the same handle.
function Lock:acquire(opts)
  if getmetatable(self) ~= LockMeta then
    check_lock(self, "acquire")
  end
  local settings = self._defaults
  if opts ~= nil then
    local problem
    settings, problem = M.acquire_settings(self, opts)
    if not settings then
      error(problem, 2)
    end
  end
  local token = owner.current_token()
  holding.refresh(self)
  if self._fh and holding.holder(self) == token then
    return self._fh
  end
  return M.acquire_with(self, settings, token)
end

--- Flushes, unlocks and closes the handle; a no-op when not held.
function Lock:release()
  if getmetatable(self) ~= LockMeta then
    check_lock(self, "release")
  end
  holding.refresh(self)
  if not self._fh then
    return true
  end
  return holding.finish(self, self._h.release)
end

function Lock:locked()
  if getmetatable(self) ~= LockMeta then
    check_lock(self, "locked")
  end
  holding.refresh(self)
  return self._fh ~= false
end

LockMeta.__close = function(self)
  local ok, err = self:release()
  if not ok then
    error(err)
  end
end

local function constructor(name)
  local kind = KINDS[name]
  return function(filename, opts)
    local path, core_opts, defaults = M.configure(name, kind, filename, opts)
    if not path then
      error(core_opts, 2)
    end
    local handle, errtab = core.new_lock(kind.core_kind, path, core_opts)
    if not handle then
      error(errors.from_core(errtab), 2)
    end
    return setmetatable(M.fields(name, handle, core_opts, defaults), LockMeta)
  end
end

M.Lock = constructor("Lock")
M.TemporaryFileLock = constructor("TemporaryFileLock")
M.PidFileLock = constructor("PidFileLock")

return M
