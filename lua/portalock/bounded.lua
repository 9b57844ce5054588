--- NamedBoundedSemaphore and BoundedSemaphore: at most `maximum` holders at once across
-- processes, one flock'ed slot file per holder, named as Python's portalocker names them.
-- The C core names the slots and sweeps them in a random order (one sweep per step); the
-- waiting between sweeps is portalock.wait's, so schedulers and OpenResty yield as usual.
--
-- acquire returns the held *slot*: a small read-only object (filename, number, semaphore,
-- locked(), fileno(), release(), __close) standing for the slot's Lock. The slot's
-- descriptor belongs to the semaphore's C handle, not to an io handle: release() releases
-- it, and so does the collection of the semaphore object (like a holder that exits).
local core = require "portalock.core"
local check = require "portalock.check"
local errors = require "portalock.errors"
local lock = require "portalock.lock"
local nginx = require "portalock.nginx"
local wait = require "portalock.wait"

local M = {}

local OPTIONS = {"name", "filename_pattern", "directory", "timeout", "check_interval", "fail_when_locked",
  "perm"}
local ACQUIRE_OPTIONS = {"timeout", "check_interval", "fail_when_locked"}

-- A string C can take (no NUL); the rules of names and patterns are the core's (its errors
-- come back from core.new_bounded). An empty directory is refused here: the core would take
-- it as the working directory.
local function check_string(func, value, name, allow_empty)
  if type(value) ~= "string" then
    return check.bad(func, name, value, "must be a string")
  elseif value:find("\0", 1, true) then
    return check.bad(func, name, value, "must not contain NUL bytes")
  elseif value == "" and not allow_empty then
    return check.bad(func, name, value, "must not be empty")
  end
end

local CHECKS = {
  name = function(func, value, name) return check_string(func, value, name, true) end,
  filename_pattern = function(func, value, name) return check_string(func, value, name, true) end,
  directory = function(func, value, name) return check_string(func, value, name, false) end,
  timeout = check.timeout,
  check_interval = check.check_interval,
  fail_when_locked = check.boolean,
  perm = check.perm,
}

local function check_options(func, opts, allowed)
  local checks = {}
  for i, name in ipairs(allowed) do
    checks[i] = {name, CHECKS[name]}
  end
  return check.options_with(func, opts, checks)
end

local check_maximum = check.rule("bounded_maximum", "must be a number (an integer count)")

local pick = check.pick

-- ---------------------------------------------------------------- the held slot

local Slot = {}
local SlotMeta = lock.object_metatable(Slot, {
  filename = function(self) return self._filename end,
  number = function(self) return self._number end,
  semaphore = function(self) return self._sem end,
})

local function current(slot)
  local sem = slot._sem
  return rawget(sem, "_slot") == slot and sem._h:locked()
end

--- True while this slot is the semaphore's current hold.
function Slot:locked()
  return current(self) and true or false
end

--- The descriptor that holds the slot (owned by the semaphore), or nil.
function Slot:fileno()
  if current(self) then
    return self._sem._h:fd()
  end
end

--- Releases the semaphore's hold if this slot is still it; else a no-op.
function Slot:release()
  if current(self) then
    return self._sem:release()
  end
  return true
end

SlotMeta.__tostring = function(self)
  return string.format("portalock.%s slot %d ('%s'): %s", self._sem._class, self._number,
    self._filename, self:locked() and "held" or "not held")
end

SlotMeta.__close = function(self)
  local ok, err = self:release()
  if not ok then
    error(err)
  end
end

-- ---------------------------------------------------------------- the semaphore

local Semaphore = {}
local SemaphoreMeta = lock.object_metatable(Semaphore, {
  maximum = function(self) return self._h:maximum() end,
  name = function(self) return self._h:name() end,
  filename_pattern = function(self) return self._h:filename_pattern() end,
  directory = function(self) return self._h:directory() end,
  timeout = function(self) return self._defaults.timeout end,
  check_interval = function(self) return self._defaults.check_interval end,
  lock = function(self)
    local slot = rawget(self, "_slot")
    if slot and current(slot) then
      return slot
    end
  end,
})

local function check_semaphore(self, method)
  local problem = lock.check_self(self, SemaphoreMeta, "NamedBoundedSemaphore", method)
  if problem then
    error(problem, 3)
  end
end

-- Forgets a hold the process no longer has (a forked child: the core detached it).
local function refresh(self)
  if nginx.inside then
    nginx.reclaim(self) -- held by an nginx request that has ended
  end
  local slot = rawget(self, "_slot")
  if slot and not self._h:locked() then
    rawset(self, "_slot", false)
  end
  return rawget(self, "_slot")
end

--- Sweeps the slots in a random order until one is free or the timeout ends. Returns the
--- held slot, or nil, err (AlreadyLocked when every slot stayed held). fail_when_locked is
--- accepted and ignored: a semaphore always waits up to its timeout (0 = one sweep).
function Semaphore:acquire(opts)
  check_semaphore(self, "acquire")
  local problem = check_options("acquire", opts, ACQUIRE_OPTIONS)
  if problem then
    error(problem, 2)
  end
  opts = opts or {}
  local held = refresh(self)
  if held then
    -- Inside nginx the holder is likely another request (or light thread) sharing the object.
    local hint = nginx.current_request() and "; inside nginx, make the object in the request "
      .. "handler: one object holds one slot" or ""
    error(string.format("%s '%s' already holds slot %d ('%s'): release it before acquiring again%s",
      self._class, self.name, held._number, held._filename, hint), 2)
  end
  local h = self._h
  local acq = h:begin(pick(opts.timeout, self._defaults.timeout),
    pick(opts.check_interval, self._defaults.check_interval))
  local ok, err = wait.acquire_steps(self.name, acq, self._key)
  if not ok then
    return nil, err
  end
  local request = nginx.current_request()
  if request then
    nginx.track(self, request, Semaphore.release)
  end
  local number = h:slot()
  local files = h:filenames()
  local slot = setmetatable({_class = "slot", _sem = self, _number = number,
    _filename = files and files[number + 1] or ""}, SlotMeta)
  rawset(self, "_slot", slot)
  return slot
end

--- Releases the held slot; a no-op when none is held. true, or nil, err.
function Semaphore:release()
  check_semaphore(self, "release")
  if not refresh(self) then
    return true
  end
  rawset(self, "_slot", false)
  local ok, errtab = self._h:release()
  if nginx.inside then
    nginx.untrack(self)
  end
  return errors.result(ok, errtab)
end

function Semaphore:locked()
  check_semaphore(self, "locked")
  return refresh(self) and true or false
end

--- The slot paths in slot order (a list), or nil, err when no directory is usable.
function Semaphore:get_filenames()
  check_semaphore(self, "get_filenames")
  return errors.result(self._h:filenames())
end

--- The slot paths in a random order from the OS random source (the order a sweep uses).
function Semaphore:get_random_filenames()
  check_semaphore(self, "get_random_filenames")
  return errors.result(self._h:filenames(true))
end

SemaphoreMeta.__close = function(self)
  local ok, err = self:release()
  if not ok then
    error(err)
  end
end

SemaphoreMeta.__tostring = function(self)
  return string.format("portalock.%s('%s', %d): %s", self._class, self.name, self.maximum,
    self:locked() and "held" or "not held")
end

local function constructor(class, default_name)
  return function(maximum, opts)
    local problem = check_maximum(class, maximum, "maximum") or check_options(class, opts, OPTIONS)
    if problem then
      error(problem, 2)
    end
    opts = opts or {}
    local defaults = {
      timeout = pick(opts.timeout, core.DEFAULT_TIMEOUT),
      check_interval = pick(opts.check_interval, core.DEFAULT_CHECK_INTERVAL),
    }
    local ok, handle, errtab = pcall(core.new_bounded, maximum, {
      name = pick(opts.name, default_name),
      filename_pattern = opts.filename_pattern,
      directory = opts.directory,
      timeout = defaults.timeout,
      check_interval = defaults.check_interval,
      perm = opts.perm,
    })
    if not ok then
      error(class .. ": " .. tostring(handle), 2)
    elseif not handle then
      error(errors.from_core(errtab), 2)
    end
    -- What identifies the semaphore to this worker's queue of waiters (portalock.nginx).
    local key = "bounded:" .. handle:directory() .. "/" .. handle:name()
    return setmetatable({_class = class, _h = handle, _defaults = defaults, _slot = false,
      _key = key}, SemaphoreMeta)
  end
end

--- NamedBoundedSemaphore(maximum, opts): without opts.name, a fresh random name.
M.NamedBoundedSemaphore = constructor("NamedBoundedSemaphore", nil)
--- BoundedSemaphore(maximum, opts): the default name "bounded_semaphore" (kept for
--- compatibility with portalocker; unrelated programs share its slots).
M.BoundedSemaphore = constructor("BoundedSemaphore", "bounded_semaphore")

return M
